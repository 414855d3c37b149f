"""The attribute columns of lookalike.storage.tables, generated from the slots, are the ones the migrations
create: the same names, order, types, lengths and NOT NULL, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lookalike.domain.attributes import MAX_STR_ATTR, SLOTS
from lookalike.storage.db import make_engine, migrate, sqlite_url
from lookalike.storage.tables import INT_ATTR_COLUMNS, STR_ATTR_COLUMNS, images


def test_the_attribute_columns_are_the_migrated_ones(tmp_path: Path, database_url: str | None) -> None:
    engine = make_engine(database_url or sqlite_url(tmp_path))
    try:
        migrate(engine)
        migrated = {c["name"]: c for c in sa.inspect(engine).get_columns("images")}
    finally:
        engine.dispose()
    names = [slot.name for slot in SLOTS]
    assert [c.name for c in images.c if c.name in names] == names
    assert [c for c in migrated if c in names] == names
    assert (tuple(names[:4]), tuple(names[4:])) == (INT_ATTR_COLUMNS, STR_ATTR_COLUMNS)
    for slot in SLOTS:
        ours, theirs = images.c[slot.name], migrated[slot.name]
        assert not ours.nullable and not theirs["nullable"], slot.name
        if slot.kind == "int":
            assert isinstance(ours.type, sa.BigInteger) and isinstance(theirs["type"], sa.BigInteger)
            assert ours.default is not None and ours.default.arg == 0
        else:
            assert isinstance(ours.type, sa.String) and isinstance(theirs["type"], sa.String)
            assert ours.type.length == theirs["type"].length == MAX_STR_ATTR
            assert ours.default is not None and ours.default.arg == ""
