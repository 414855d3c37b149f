"""The instance lifecycle as a pure function of the clock and the paid-until moment.

active (now < paid_until) → expired (data plane refused, data kept, for RETENTION_DAYS
calendar days) → released (data purged, name free). Boundaries are half-open: at
exactly paid_until the instance is expired, at exactly paid_until + 7 days released.
Renewal while expired restores `active` by moving paid_until; released is final.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from lookalike.domain.calendar import RETENTION_DAYS, add_calendar_days, ensure_utc

EXPIRY_NOTICES: Final[tuple[int, ...]] = (7, 3, 1)  # days before paid_until, most distant first


class InstanceState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    RELEASED = "released"


def release_at(paid_until: datetime) -> datetime:
    """When an unrenewed instance is released: paid_until + 7 calendar days."""
    return add_calendar_days(paid_until, RETENTION_DAYS)


def days_left(now: datetime, moment: datetime) -> int:
    """Whole days from `now` until `moment`, a started day counting as one ("released in 1 day" three
    hours before, never "in 0 days"); 0 once it has passed."""
    return max(0, math.ceil((moment - now) / timedelta(days=1)))


def state_at(now: datetime, paid_until: datetime) -> InstanceState:
    now = ensure_utc(now, "now")
    paid_until = ensure_utc(paid_until, "paid_until")
    if now < paid_until:
        return InstanceState.ACTIVE
    if now < release_at(paid_until):
        return InstanceState.EXPIRED
    return InstanceState.RELEASED


def due_notices(now: datetime, paid_until: datetime) -> list[int]:
    """The expiry notices (days before paid_until) whose moment has come while still active.

    All due ones are returned, most distant first; the caller records which it has sent,
    so a sweep that runs late (or twice) still sends each exactly once.
    """
    now = ensure_utc(now, "now")
    paid_until = ensure_utc(paid_until, "paid_until")
    if now >= paid_until:
        return []
    return [d for d in EXPIRY_NOTICES if now >= add_calendar_days(paid_until, -d)]


def next_transition(now: datetime, paid_until: datetime) -> datetime | None:
    """The next moment after `now` when the state or a notice changes (for a sweep); None if released."""
    now = ensure_utc(now, "now")
    paid_until = ensure_utc(paid_until, "paid_until")
    moments = [add_calendar_days(paid_until, -d) for d in EXPIRY_NOTICES]
    moments += [paid_until, release_at(paid_until)]
    later = [m for m in moments if m > now]
    return min(later) if later else None
