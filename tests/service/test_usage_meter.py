"""The search usage meter: counts per instance and UTC minute, kept in memory and added to SQL."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from conftest import grant_instance
from lookalike.clock import ManualClock
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Instance
from lookalike.domain.usage import MinuteUsage, UsageTally, minute_start
from lookalike.service.container import Services
from lookalike.service.limits import Operation, RateLimiter
from lookalike.service.usage import SearchUsageMeter
from lookalike.storage.ratelimit_store import InMemoryRateLimitStore
from lookalike.storage.usage_repo import UsageRepository

START = datetime(2026, 3, 2, 10, 0, 10, tzinfo=UTC)  # ten seconds into a minute


@pytest.fixture
def shop(services: Services, clock: ManualClock) -> Instance:
    clock.set(START)
    account, _key = services.accounts.create_account("acme")
    return grant_instance(services, account.id, "shop", capacity=1000, qps=3)


def searches(limiter: RateLimiter, instance: Instance, n: int) -> tuple[int, int]:
    """`n` searches through the rate limiter: (allowed, refused)."""
    allowed = refused = 0
    for _ in range(n):
        try:
            limiter.check(instance, Operation.SEARCH)
            allowed += 1
        except LookalikeError:
            refused += 1
    return allowed, refused


def test_counts_per_minute_throttled_and_peak(services: Services, clock: ManualClock, shop: Instance) -> None:
    limiter = RateLimiter(InMemoryRateLimitStore(), clock, services.usage)
    assert searches(limiter, shop, 5) == (3, 2)  # 3 QPS: a burst of 3 passes in the first second
    clock.advance(1)
    assert searches(limiter, shop, 2) == (2, 0)
    clock.advance(2)
    assert searches(limiter, shop, 1) == (1, 0)
    limiter.check(shop, Operation.DETAIL)  # not a search: not counted
    clock.advance(60)  # the next minute
    assert searches(limiter, shop, 1) == (1, 0)

    window = services.usage.window([shop.id], minutes=60)[shop.id]  # no explicit flush: a read flushes
    assert len(window.minutes) == 60
    *_, before, last = window.minutes
    assert last.minute == minute_start(clock.timestamp())
    assert (before.minute, before.searches, before.throttled, before.peak_per_second) == (
        minute_start(START.timestamp()),
        6,
        2,
        3,
    )
    assert (last.searches, last.throttled, last.peak_per_second) == (1, 0, 1)
    assert (window.searches, window.throttled, window.peak_per_second, window.throttled_minutes) == (
        7,
        2,
        3,
        1,
    )
    assert all(m.searches == m.throttled == m.peak_per_second == 0 for m in window.minutes[:-2])


def test_flushes_in_pieces_add_up(services: Services, clock: ManualClock, shop: Instance) -> None:
    meter, now = services.usage, clock.timestamp()
    for _ in range(2):
        meter.record(shop.id, now, True)
    meter.flush()
    for _ in range(3):
        meter.record(shop.id, now + 1, True)  # a busier second, same minute
    meter.record(shop.id, now + 1, False)
    meter.flush()
    meter.flush()  # nothing new: adds nothing
    meter.record(shop.id, now, True)  # the first second again: now 3, not busier than the peak
    row = meter.window([shop.id], minutes=1)[shop.id].minutes[0]
    assert (row.searches, row.throttled, row.peak_per_second) == (6, 1, 3)


def test_two_replicas_on_one_database_add_up(services: Services, clock: ManualClock, shop: Instance) -> None:
    """Two meters (two replicas) share the rows. The busiest second is the larger of the two replicas'
    (a lower bound of the combined one: each replica only sees its own share of a second)."""
    replica_a = SearchUsageMeter(UsageRepository(services.engine), clock)
    replica_b = SearchUsageMeter(UsageRepository(services.engine), clock)
    now = clock.timestamp()
    for _ in range(4):
        replica_a.record(shop.id, now, True)
    replica_a.record(shop.id, now, False)
    for _ in range(2):
        replica_b.record(shop.id, now, True)
    for _ in range(3):
        replica_b.record(shop.id, now, False)
    replica_a.close()  # close writes what is left
    replica_b.flush()
    other = grant_instance(services, shop.account_id, "other", capacity=10, qps=1)
    found = services.usage.window([shop.id, other.id], minutes=5)
    row = found[shop.id].minutes[-1]
    assert (row.searches, row.throttled, row.peak_per_second) == (6, 4, 4)
    assert found[other.id].searches == 0


def test_old_minutes_are_outside_the_window_and_pruned(
    services: Services, clock: ManualClock, shop: Instance
) -> None:
    meter = services.usage
    meter.record(shop.id, clock.timestamp(), True)
    meter.flush()
    clock.advance(timedelta(minutes=60))  # that minute is now the 61st back
    assert meter.window([shop.id], minutes=60)[shop.id].searches == 0
    assert meter.window([shop.id], minutes=61)[shop.id].minutes[0].searches == 1
    assert meter.prune() == 0  # kept for a week
    clock.advance(timedelta(days=7))
    assert meter.prune() == 1
    assert meter.window([shop.id], minutes=61 + 7 * 24 * 60)[shop.id].searches == 0


def test_background_timer_flushes(services: Services, clock: ManualClock, shop: Instance) -> None:
    meter = SearchUsageMeter(UsageRepository(services.engine), clock)
    repo = UsageRepository(services.engine)
    meter.record(shop.id, clock.timestamp(), True)
    meter.start(interval_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while not repo.since([shop.id], START - timedelta(minutes=1)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r.searches for r in repo.since([shop.id], START - timedelta(minutes=1))] == [1]
    finally:
        meter.close()


# --- the pure tally ---
EVENTS = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 300, allow_nan=False), st.booleans(), st.booleans()),
    max_size=80,
)


@hsettings(max_examples=200, deadline=None)
@given(EVENTS)
def test_tally_drained_pieces_add_up_to_what_was_recorded(
    events: list[tuple[str, float, bool, bool]],
) -> None:
    """However the records are split by drains (some of which fail and are restored), summing the
    drained deltas and taking the largest drained peak gives exact per-minute counts."""
    base = START.timestamp()
    tally = UsageTally()
    stored: dict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0, 0])
    seconds: Counter[tuple[str, int]] = Counter()
    expected: dict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0, 0])
    clock = base
    for instance_id, step, allowed, drain in sorted(events, key=lambda e: e[1]):
        clock = base + step  # decisions arrive in time order
        tally.record(instance_id, clock, allowed)
        key = (instance_id, minute_start(clock))
        if allowed:
            expected[key][0] += 1
            seconds[(instance_id, int(clock))] += 1
            expected[key][2] = max(expected[key][2], seconds[(instance_id, int(clock))])
        else:
            expected[key][1] += 1
        if drain:
            pieces = tally.drain(clock)
            if int(clock) % 3 == 0:  # this write "failed"
                tally.restore(pieces)
            else:
                apply(stored, pieces)
    apply(stored, tally.drain(clock + 3600))
    assert {k: v for k, v in stored.items() if any(v)} == {k: v for k, v in expected.items() if any(v)}
    assert tally.open_minutes == 0


def apply(stored: dict[tuple[str, datetime], list[int]], pieces: list[MinuteUsage]) -> None:
    for piece in pieces:
        row = stored[(piece.instance_id, piece.minute)]
        row[0] += piece.searches
        row[1] += piece.throttled
        row[2] = max(row[2], piece.peak_per_second)


@given(st.floats(0, 4e9, allow_nan=False))
def test_minute_start_holds_the_moment(timestamp: float) -> None:
    start = minute_start(timestamp)
    assert start.second == 0 and start.microsecond == 0 and start.tzinfo is UTC
    assert start.timestamp() <= timestamp < start.timestamp() + 60
