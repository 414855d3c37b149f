"""Compile a filter tree (lookalike.domain.filters) into a SQLAlchemy WHERE clause.

Every value travels as a bound parameter; nothing from the filter text is pasted into SQL.
The attribute columns are NOT NULL (unset ints are 0, unset strings ""), so SQL's
three-valued logic never differs from the Python evaluator. String equality relies on
the column's collation being binary: SQLite's default is, and so is PostgreSQL's
deterministic default collation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true

from lookalike.domain.filters import And, Compare, InList, Node


def compile_filter(node: Node, columns: Mapping[str, ColumnElement[Any]]) -> ColumnElement[bool]:
    """SQL condition equivalent to ``evaluate(node, row)``.

    ``columns`` maps each field name the tree references (see ``referenced_fields``)
    to its column; a missing field raises KeyError.
    """
    if isinstance(node, Compare):
        column = columns[node.field]
        if not _storable(node.value):
            return false() if node.op == "=" else true()  # strings only take = and !=
        if node.op == "=":
            return column == node.value
        if node.op == "!=":
            return column != node.value
        if node.op == ">":
            return column > node.value
        if node.op == ">=":
            return column >= node.value
        if node.op == "<":
            return column < node.value
        if node.op == "<=":
            return column <= node.value
        raise ValueError(f"unknown operator {node.op!r}")
    if isinstance(node, InList):
        column = columns[node.field]
        # in_()/not_in() bind the list as one "expanding" parameter, so long lists stay cheap to cache.
        values = [v for v in node.values if _storable(v)]
        if not values:
            return true() if node.negated else false()
        return column.not_in(values) if node.negated else column.in_(values)
    compiled = [compile_filter(item, columns) for item in node.items]
    return and_(*compiled) if isinstance(node, And) else or_(*compiled)


def _storable(value: object) -> bool:
    """False for a string with a NUL: no stored value holds one (validation refuses them, PostgreSQL text
    cannot), so it equals no row; and PostgreSQL refuses NUL even as a bound parameter, so it must not
    reach the query."""
    return not (isinstance(value, str) and "\x00" in value)
