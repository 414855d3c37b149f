"""Calendar arithmetic for billing periods, in UTC.

A month is a calendar month: the day of month is kept and clamped to the month's
last day (Jan 31 + 1 month = Feb 28, or Feb 29 in a leap year). Multi-month
periods are always computed from the anchor, never by chaining single months, so
Jan 31 + 2 months = Mar 31 (chaining would give Mar 28). A year is 12 months.

Every function refuses naive datetimes (ValueError) and returns UTC datetimes; an
aware non-UTC input is converted to UTC first, because "calendar month" is defined in UTC.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

RETENTION_DAYS: Final = 7  # an expired instance is kept this many calendar days, then released


class PeriodUnit(StrEnum):
    MONTH = "month"
    YEAR = "year"


def ensure_utc(moment: datetime, name: str = "datetime") -> datetime:
    """Return `moment` in UTC; ValueError if it is naive (an unknown zone would silently shift bills)."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def add_months(anchor: datetime, months: int) -> datetime:
    """`anchor` plus `months` calendar months (may be negative), day clamped to the month's end."""
    anchor = ensure_utc(anchor, "anchor")
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise OverflowError(f"{anchor.isoformat()} + {months} months is out of range")
    last_day = _stdlib_calendar.monthrange(year, month0 + 1)[1]
    return anchor.replace(year=year, month=month0 + 1, day=min(anchor.day, last_day))


def add_period(anchor: datetime, unit: PeriodUnit, count: int) -> datetime:
    """`anchor` plus `count` periods of `unit`; a year is 12 calendar months from the anchor."""
    unit = PeriodUnit(unit)
    return add_months(anchor, count * 12 if unit is PeriodUnit.YEAR else count)


def add_calendar_days(moment: datetime, days: int) -> datetime:
    """`moment` plus `days` calendar days; in UTC every day is exactly 24 hours (no DST)."""
    return ensure_utc(moment, "moment") + timedelta(days=days)
