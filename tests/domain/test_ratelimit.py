"""GCRA decisions (pure) and the in-memory store."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from lookalike.domain.ratelimit import gcra
from lookalike.storage.ratelimit_store import InMemoryRateLimitStore


def run(rate: float, arrivals: list[float]) -> list[bool]:
    tat: float | None = None
    passed = []
    for now in arrivals:
        decision = gcra(tat, now, rate)
        if decision.allowed:
            tat = decision.new_tat
        passed.append(decision.allowed)
    return passed


@given(rate=st.integers(1, 50))
def test_a_burst_of_one_second_lets_rate_requests_through_then_refuses(rate: int) -> None:
    passed = run(rate, [0.0] * (rate + 3))
    assert passed == [True] * rate + [False] * 3


@given(
    rate=st.integers(1, 30),
    gaps=st.lists(st.floats(0, 0.5, allow_nan=False), min_size=1, max_size=200),
)
@settings(max_examples=200)
def test_no_window_of_one_second_admits_more_than_two_seconds_worth(rate: int, gaps: list[float]) -> None:
    arrivals, now = [], 0.0
    for gap in gaps:
        now += gap
        arrivals.append(now)
    passed = [t for t, ok in zip(arrivals, run(rate, arrivals), strict=True) if ok]
    # Over any span T, GCRA admits at most burst + rate*T requests.
    for i, start in enumerate(passed):
        in_window = sum(1 for t in passed[i:] if t - start <= 1.0)
        assert in_window <= 2 * rate + 1


@given(rate=st.integers(1, 30), wait=st.floats(0.0, 5.0, allow_nan=False))
def test_retry_after_is_exactly_when_the_next_request_passes(rate: int, wait: float) -> None:
    tat: float | None = None
    now = 0.0
    for _ in range(rate):
        tat = gcra(tat, now, rate).new_tat
    refused = gcra(tat, now, rate)
    assert not refused.allowed and refused.retry_after > 0
    assert gcra(tat, now + refused.retry_after, rate).allowed
    later = gcra(tat, now + wait, rate)
    assert later.allowed == (wait >= refused.retry_after - 1e-9)


@given(rate=st.integers(1, 30))
def test_remaining_counts_down_to_zero(rate: int) -> None:
    tat: float | None = None
    remaining = []
    for _ in range(rate):
        decision = gcra(tat, 10.0, rate)
        tat = decision.new_tat
        remaining.append(decision.remaining)
    assert remaining == list(range(rate - 1, -1, -1))


def test_store_is_exact_under_threads() -> None:
    store = InMemoryRateLimitStore()
    allowed = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(50):
            ok = store.acquire("k", 20, 100.0).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 20  # the clock does not move: exactly one second of burst
    assert store.acquire("other", 20, 100.0).allowed
