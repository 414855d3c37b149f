"""compile_filter against a real SQLite database, checked by an independent reference evaluator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
)

from lookalike.domain.filters import (
    INT_FIELDS,
    STR_FIELDS,
    And,
    Compare,
    InList,
    Node,
    Or,
    evaluate,
    parse_filter,
    to_text,
)
from lookalike.storage.filter_sql import compile_filter

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
FIELDS = sorted(INT_FIELDS) + sorted(STR_FIELDS)

metadata = MetaData()
records_table = Table(
    "records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    *(Column(name, BigInteger, nullable=False) for name in sorted(INT_FIELDS)),
    *(Column(name, Text, nullable=False) for name in sorted(STR_FIELDS)),
)
COLUMNS: Mapping[str, ColumnElement[Any]] = {name: records_table.c[name] for name in FIELDS}

Record = dict[str, Any]


@cache
def _engine() -> Engine:
    # One in-memory database for the module; each example clears the table in its own transaction.
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    return engine


@pytest.fixture
def conn() -> Iterator[Connection]:
    with _engine().connect() as connection:
        yield connection


def _select_ids(node: Node, records: Sequence[Record]) -> set[int]:
    with _engine().begin() as connection:
        connection.execute(delete(records_table))
        if records:
            connection.execute(insert(records_table), [{"id": i, **r} for i, r in enumerate(records)])
        rows = connection.execute(select(records_table.c.id).where(compile_filter(node, COLUMNS)))
        return {row.id for row in rows}


def reference(node: Node, record: Record) -> bool:
    """Written separately from lookalike's evaluate on purpose: this is the test oracle."""
    match node:
        case Compare(field=field, op=op, value=value):
            have = record[field]
            outcomes: dict[str, bool] = {
                "=": have == value,
                "!=": have != value,
                ">": have > value,
                ">=": have >= value,
                "<": have < value,
                "<=": have <= value,
            }
            return outcomes[op]
        case InList(field=field, values=values, negated=negated):
            hit = any(record[field] == v for v in values)
            return not hit if negated else hit
        case And(items=items):
            return all(reference(item, record) for item in items)
        case Or(items=items):
            return any(reference(item, record) for item in items)
    raise AssertionError(f"unknown node {node!r}")


# Small pools so that comparisons actually hit (and sit on the boundaries); the int64
# extremes check the range edges, the strings case, spacing, quoting and Unicode normalisation.
small_ints = st.one_of(st.integers(-3, 3), st.sampled_from([INT64_MIN, INT64_MAX]))
small_strs = st.sampled_from(["", "a", "A", "a ", "红色 T恤", 'x"y', "\\", "\u00e9", "e\u0301"])

int_fields = st.sampled_from(sorted(INT_FIELDS))
str_fields = st.sampled_from(sorted(STR_FIELDS))

leaves: st.SearchStrategy[Node] = st.one_of(
    st.builds(Compare, int_fields, st.sampled_from([">", ">=", "<", "<=", "=", "!="]), small_ints),
    st.builds(Compare, str_fields, st.sampled_from(["=", "!="]), small_strs),
    st.builds(InList, int_fields, st.lists(small_ints, min_size=1, max_size=4).map(tuple), st.booleans()),
    st.builds(InList, str_fields, st.lists(small_strs, min_size=1, max_size=4).map(tuple), st.booleans()),
)


def _branches(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(And, items), st.builds(Or, items))


trees: st.SearchStrategy[Node] = st.recursive(leaves, _branches, max_leaves=6)

records: st.SearchStrategy[Record] = st.fixed_dictionaries(
    {name: small_ints for name in sorted(INT_FIELDS)} | {name: small_strs for name in sorted(STR_FIELDS)}
)


@settings(max_examples=200, deadline=None)
@given(trees, st.lists(records, min_size=1, max_size=16))
def test_sql_and_evaluate_agree_with_the_reference(node: Node, rows: list[Record]) -> None:
    expected = {i for i, r in enumerate(rows) if reference(node, r)}
    assert {i for i, r in enumerate(rows) if evaluate(node, r)} == expected
    assert _select_ids(node, rows) == expected
    # The same through the text form, as a request would arrive.
    parsed = parse_filter(to_text(node))
    assert parsed is not None
    assert _select_ids(parsed, rows) == expected


def _row(**values: Any) -> Record:
    return {name: 0 for name in INT_FIELDS} | {name: "" for name in STR_FIELDS} | values


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "=", "!="])
@pytest.mark.parametrize("value", [-1, 0, 1])
def test_each_int_operator_on_its_boundary(op: str, value: int) -> None:
    rows = [_row(int_attr3=v) for v in (-2, -1, 0, 1, 2)]
    node = Compare("int_attr3", op, value)
    assert _select_ids(node, rows) == {i for i, r in enumerate(rows) if reference(node, r)}


def test_string_equality_is_exact_and_case_sensitive() -> None:
    rows = [_row(str_attr="Red"), _row(str_attr="red"), _row(str_attr="red "), _row(str_attr="红色 T恤")]
    assert _select_ids(Compare("str_attr", "=", "red"), rows) == {1}
    assert _select_ids(Compare("str_attr", "!=", "red"), rows) == {0, 2, 3}
    assert _select_ids(InList("str_attr", ("RED", "红色 T恤"), False), rows) == {3}


def test_unset_values_match_zero_and_empty_string() -> None:
    rows = [_row(), _row(int_attr2=3, str_attr4="x")]
    node = parse_filter('int_attr2 = 0 AND str_attr4 = ""')
    assert node is not None
    assert _select_ids(node, rows) == {0}


def test_largest_in_list_a_filter_can_hold() -> None:
    # 4096 characters fit about 2000 values; each becomes its own bound parameter.
    text = "int_attr in (" + ",".join(str(i % 10) for i in range(2040)) + ")"
    assert len(text) <= 4096
    node = parse_filter(text)
    assert node is not None
    rows = [_row(int_attr=v) for v in (3, 10, -1)]
    assert _select_ids(node, rows) == {0}
    negated = InList("int_attr", tuple(range(5000)), True)
    assert _select_ids(negated, rows) == {2}


def test_values_are_bound_never_pasted(conn: Connection) -> None:
    hostile = "'; DROP TABLE records; --"
    node = parse_filter(f'str_attr = "{hostile}" OR str_attr2 in ("{hostile}") OR int_attr > 123456789')
    assert node is not None
    clause = compile_filter(node, COLUMNS)
    compiled = clause.compile(conn)
    assert hostile not in str(compiled)
    assert "123456789" not in str(compiled)
    assert hostile in compiled.params.values()
    assert _select_ids(node, [_row(str_attr2=hostile)]) == {0}


def test_unknown_column_mapping_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        compile_filter(Compare("int_attr", "=", 1), {})
