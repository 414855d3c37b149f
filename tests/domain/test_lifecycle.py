"""Instance lifecycle: active → expired (7 calendar days, data kept) → released; expiry notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.lifecycle import (
    EXPIRY_NOTICES,
    InstanceState,
    days_left,
    due_notices,
    next_transition,
    release_at,
    state_at,
)

PAID_UNTIL = datetime(2027, 2, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_release_seven_calendar_days_after_expiry() -> None:
    assert release_at(PAID_UNTIL) == utc(2027, 2, 8)
    assert release_at(utc(2028, 2, 25)) == utc(2028, 3, 3)  # across a leap day


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (utc(2027, 1, 1), InstanceState.ACTIVE),
        (PAID_UNTIL - US, InstanceState.ACTIVE),
        (PAID_UNTIL, InstanceState.EXPIRED),  # exactly at paid_until: already expired
        (utc(2027, 2, 5), InstanceState.EXPIRED),
        (utc(2027, 2, 8) - US, InstanceState.EXPIRED),
        (utc(2027, 2, 8), InstanceState.RELEASED),  # exactly +7 days: released
        (utc(2030, 1, 1), InstanceState.RELEASED),
    ],
)
def test_state_boundaries(now: datetime, state: InstanceState) -> None:
    assert state_at(now, PAID_UNTIL) is state


def test_renewal_moves_paid_until_and_restores_active() -> None:
    # Expired on Feb 5; renewal for a month from then sets paid_until = Mar 5.
    assert state_at(utc(2027, 2, 5), PAID_UNTIL) is InstanceState.EXPIRED
    assert state_at(utc(2027, 2, 5), utc(2027, 3, 5)) is InstanceState.ACTIVE


def test_naive_refused() -> None:
    with pytest.raises(ValueError):
        state_at(datetime(2027, 1, 1), PAID_UNTIL)
    with pytest.raises(ValueError):
        due_notices(utc(2027, 1, 1), datetime(2027, 2, 1))


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (utc(2027, 1, 24) - US, []),
        (utc(2027, 1, 25), [7]),
        (utc(2027, 1, 28) - US, [7]),
        (utc(2027, 1, 29), [7, 3]),
        (utc(2027, 1, 31), [7, 3, 1]),
        (PAID_UNTIL - US, [7, 3, 1]),
        (PAID_UNTIL, []),  # expired: the expiry event replaces notices
    ],
)
def test_due_notices(now: datetime, due: list[int]) -> None:
    assert due_notices(now, PAID_UNTIL) == due


def test_next_transition_walks_the_schedule() -> None:
    moments = []
    now = utc(2027, 1, 1)
    while (nxt := next_transition(now, PAID_UNTIL)) is not None:
        moments.append(nxt)
        now = nxt
    assert moments == [utc(2027, 1, 25), utc(2027, 1, 29), utc(2027, 1, 31), PAID_UNTIL, utc(2027, 2, 8)]


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(moments, moments)
def test_states_are_ordered_in_time(a: datetime, b: datetime) -> None:
    early, late = sorted((a, b))
    order = list(InstanceState)
    paid_until = utc(2050, 6, 15)
    assert order.index(state_at(early, paid_until)) <= order.index(state_at(late, paid_until))


@given(moments, moments)
def test_notices_only_while_active_and_grow_over_time(now: datetime, paid_until: datetime) -> None:
    due = due_notices(now, paid_until)
    assert due == [d for d in EXPIRY_NOTICES if d in due]  # ordered, subset
    if due:
        assert state_at(now, paid_until) is InstanceState.ACTIVE
        assert set(due) >= set(due_notices(now - timedelta(hours=1), paid_until))


@given(st.integers(-10 * 86400, 10 * 86400))
def test_days_left_counts_a_started_day_as_one(seconds: int) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    left = days_left(now, now + timedelta(seconds=seconds))
    assert left == (0 if seconds <= 0 else (seconds + 86399) // 86400)
    assert left >= 1 or seconds <= 0  # never "released in 0 days" before the moment
