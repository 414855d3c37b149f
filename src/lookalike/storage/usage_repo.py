"""Search usage per instance and minute in SQL (table search_usage), written by every replica."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Executable, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.elements import KeyedColumnElement

from lookalike.domain.usage import MinuteUsage
from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import search_usage


class UsageRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, pieces: Sequence[MinuteUsage]) -> None:
        """Add counts to their minutes in one transaction: searches and throttled are summed, the busiest
        second is the larger of the two. An upsert, so two replicas writing the same minute at the same
        moment both count (no read-modify-write race)."""
        if not pieces:
            return
        dialect = self._engine.dialect.name
        with self._engine.begin() as conn:
            for piece in sorted(pieces, key=lambda p: (p.instance_id, p.minute)):  # one lock order
                conn.execute(_upsert(dialect, piece))

    def since(self, instance_ids: Sequence[str], first_minute: datetime) -> list[MinuteUsage]:
        """Every stored minute of these instances from `first_minute` on, oldest first."""
        if not instance_ids:
            return []
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(search_usage)
                .where(search_usage.c.instance_id.in_(list(instance_ids)))
                .where(search_usage.c.minute >= first_minute)
                .order_by(search_usage.c.instance_id, search_usage.c.minute)
            ).all()
        return [
            MinuteUsage(r.instance_id, as_utc(r.minute), r.searches, r.throttled, r.peak_per_second)
            for r in rows
        ]

    def delete_before(self, minute: datetime) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(delete(search_usage).where(search_usage.c.minute < minute))
        return result.rowcount


KEY = [search_usage.c.instance_id, search_usage.c.minute]


def _upsert(dialect: str, piece: MinuteUsage) -> Executable:
    values = {
        "instance_id": piece.instance_id,
        "minute": piece.minute,
        "searches": piece.searches,
        "throttled": piece.throttled,
        "peak_per_second": piece.peak_per_second,
    }
    if dialect == "postgresql":
        pg = postgresql.insert(search_usage).values(values)
        return pg.on_conflict_do_update(index_elements=KEY, set_=_merged(pg.excluded))
    if dialect == "sqlite":
        lite = sqlite.insert(search_usage).values(values)
        return lite.on_conflict_do_update(index_elements=KEY, set_=_merged(lite.excluded))
    raise RuntimeError(f"search usage needs SQLite or PostgreSQL, not {dialect}")


def _merged(new: ReadOnlyColumnCollection[str, KeyedColumnElement[Any]]) -> dict[str, ColumnElement[Any]]:
    table = search_usage.c
    return {
        "searches": table.searches + new.searches,
        "throttled": table.throttled + new.throttled,
        # CASE, not max()/GREATEST(): the one spelling both databases accept.
        "peak_per_second": case(
            (new.peak_per_second > table.peak_per_second, new.peak_per_second),
            else_=table.peak_per_second,
        ),
    }
