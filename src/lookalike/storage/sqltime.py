"""Datetimes read back from SQL. SQLite returns naive values; everything Lookalike stores is UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
