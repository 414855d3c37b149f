"""Redis stores against a real Redis: GCRA equal to the pure function, nonces, locks, and two replicas.

The server comes from LOOKALIKE_TEST_REDIS_URL (scripts/test-servers starts one). Without it these tests
skip locally, but fail under CI=true so CI can never silently skip them.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Tenant, make_settings, make_tenant
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain.errors import LookalikeError
from lookalike.domain.ratelimit import RateDecision, gcra
from lookalike.service.container import Services, build_services, open_database
from lookalike.service.lifecycle import SweepReport
from lookalike.storage.locks import RedisLockStore, SqlLockStore
from lookalike.storage.redis_stores import RedisNonceStore, RedisRateLimitStore, connect

EPOCH = 1_800_000_000.0  # realistic TATs: float noise at epoch magnitudes is what the gcra slack is for


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("LOOKALIKE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("LOOKALIKE_TEST_REDIS_URL is not set under CI: run scripts/test-servers first")
        pytest.skip('LOOKALIKE_TEST_REDIS_URL not set (eval "$(scripts/test-servers start)")')
    return url


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = connect(redis_url)
    yield c
    c.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key namespace of this test alone (the Redis is shared with other tests and other runs)."""
    p = f"lookalike-test:{uuid.uuid4().hex}:"
    yield p
    keys = list(client.scan_iter(match=p + "*", count=1000))
    if keys:
        client.delete(*keys)


# --- rate limits ---


def pure_run(rate: float, burst: float, arrivals: list[float]) -> list[RateDecision]:
    """What InMemoryRateLimitStore does: the TAT moves only when a request is admitted."""
    tat: float | None = None
    out = []
    for now in arrivals:
        d = gcra(tat, now, rate, burst)
        if d.allowed:
            tat = d.new_tat
        out.append(d)
    return out


@given(
    rate=st.one_of(st.sampled_from([1.0, 5.0, 10.0, 50.0, 1000.0]), st.floats(0.05, 2000.0)),
    burst=st.one_of(st.just(1.0), st.floats(0.01, 5.0)),
    base=st.sampled_from([0.0, 12.5, EPOCH]),
    gaps=st.lists(st.one_of(st.just(0.0), st.floats(0.0, 0.3), st.floats(0.0, 5.0)), min_size=1, max_size=40),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_redis_decisions_equal_the_pure_gcra_bit_for_bit(
    client: redis.Redis, prefix: str, rate: float, burst: float, base: float, gaps: list[float]
) -> None:
    store = RedisRateLimitStore(client, prefix)
    key = uuid.uuid4().hex
    arrivals, now = [], base
    for gap in gaps:
        now += gap
        arrivals.append(now)
    got = [store.acquire(key, rate, t, burst) for t in arrivals]
    assert got == pure_run(rate, burst, arrivals)


@pytest.mark.parametrize("rate", [1, 5, 20, 200, 1000])
def test_concurrent_acquires_at_one_instant_admit_exactly_rate(
    client: redis.Redis, prefix: str, rate: int
) -> None:
    store = RedisRateLimitStore(client, prefix)
    attempts_per_thread = max(3, rate * 3 // 8 + 1)
    admitted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        n = sum(store.acquire("hot", rate, EPOCH + 0.25).allowed for _ in range(attempts_per_thread))
        with lock:
            admitted.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 8 * attempts_per_thread > rate
    assert sum(admitted) == rate


def test_refusal_writes_nothing_and_the_key_expires_after_its_tat(client: redis.Redis, prefix: str) -> None:
    store = RedisRateLimitStore(client, prefix, expiry_slack_s=0.5)
    assert store.acquire("k", 2, EPOCH).allowed  # TAT = now + 0.5 s
    assert store.acquire("k", 2, EPOCH).allowed  # TAT = now + 1 s
    tat = client.get(prefix + "k")
    refused = store.acquire("k", 2, EPOCH)
    assert not refused.allowed and refused.retry_after == pytest.approx(0.5)
    assert client.get(prefix + "k") == tat
    # PX = (TAT - now) + slack = 1 s + 0.5 s
    assert 1000 < client.pttl(prefix + "k") <= 1500


def test_lost_script_cache_falls_back_to_loading_the_script(client: redis.Redis, prefix: str) -> None:
    store = RedisRateLimitStore(client, prefix)
    assert store.acquire("k", 1, EPOCH).allowed
    client.script_flush()  # as after a Redis restart or failover: EVALSHA answers NOSCRIPT
    assert not store.acquire("k", 1, EPOCH).allowed
    assert store.acquire("k", 1, EPOCH + 1).allowed


def test_a_dead_redis_fails_fast_with_a_503_not_a_hang() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    dead = connect("redis://127.0.0.1:1/0")
    started = time.monotonic()
    with pytest.raises(LookalikeError) as info:
        RedisRateLimitStore(dead).acquire("k", 1, EPOCH)
    assert info.value.code == "InternalError" and info.value.http_status == 503
    assert "Redis" in info.value.message
    with pytest.raises(LookalikeError):
        RedisNonceStore(dead).remember("n", EPOCH, 60)
    with pytest.raises(LookalikeError):
        RedisLockStore(dead).acquire("l", "me", 60)
    assert time.monotonic() - started < 10


# --- nonces ---


def test_a_nonce_is_remembered_once_until_its_ttl(client: redis.Redis, prefix: str) -> None:
    nonces = RedisNonceStore(client, prefix)
    assert nonces.remember("key\nabc", EPOCH, 0.2)
    assert not nonces.remember("key\nabc", EPOCH, 0.2)
    assert nonces.remember("key\nother", EPOCH, 0.2)
    time.sleep(0.3)
    assert nonces.remember("key\nabc", EPOCH + 0.3, 0.2)


def test_concurrent_remembers_of_one_nonce_admit_exactly_one(client: redis.Redis, prefix: str) -> None:
    nonces = RedisNonceStore(client, prefix)
    results: list[bool] = []
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        results.append(nonces.remember("key\nrace", EPOCH, 60))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 15 + [True]


# --- locks ---


def test_redis_lock_claim_extend_and_compare_and_delete(client: redis.Redis, prefix: str) -> None:
    locks = RedisLockStore(client, prefix)
    assert locks.acquire("job", "a", 30)
    assert not locks.acquire("job", "b", 30)
    client.pexpire(prefix + "job", 5_000)
    assert locks.acquire("job", "a", 30)  # the holder extends
    assert client.pttl(prefix + "job") > 25_000
    locks.release("job", "b")  # not b's: left alone
    assert client.get(prefix + "job") == b"a"
    locks.release("job", "a")
    assert client.get(prefix + "job") is None
    assert locks.acquire("job", "b", 30)


def test_redis_lock_expires_and_a_stale_holder_cannot_release_the_new_one(
    client: redis.Redis, prefix: str
) -> None:
    locks = RedisLockStore(client, prefix)
    assert locks.acquire("job", "a", 0.1)
    time.sleep(0.2)
    assert locks.acquire("job", "b", 30)
    locks.release("job", "a")
    assert not locks.acquire("job", "a", 30)


def test_sql_lock_store_wraps_job_leases(tmp_path: Path, database_url: str | None) -> None:
    engine = open_database(make_settings(tmp_path / "data", database_url))
    clock = ManualClock()
    locks = SqlLockStore(engine, clock)
    try:
        assert locks.acquire("job", "a", 60)
        assert not locks.acquire("job", "b", 60)
        assert locks.acquire("job", "a", 60)
        locks.release("job", "b")
        assert not locks.acquire("job", "b", 60)
        clock.advance(61)  # expired: anyone may take it
        assert locks.acquire("job", "b", 60)
        locks.release("job", "b")
        assert locks.acquire("job", "a", 60)
    finally:
        engine.dispose()


# --- two replicas through build_services ---


@pytest.fixture
def replicas(
    settings: Settings, redis_url: str, prefix: str
) -> Iterator[tuple[Services, Services, ManualClock]]:
    """Two Services ("replicas") on one data dir / database, sharing one Redis and one (frozen) time."""
    shared = replace(settings, redis_url=redis_url, redis_prefix=prefix)
    clock = ManualClock()
    a = build_services(shared, clock=clock, background=False)
    b = build_services(shared, clock=clock, background=False)
    yield a, b, clock
    b.close()
    a.close()


def test_replicas_share_the_search_rate_limit(replicas: tuple[Services, Services, ManualClock]) -> None:
    a, b, clock = replicas
    qps = 5
    tenant = make_tenant(a, "shared", "shop", qps=qps)
    admitted = 0
    for i in range(4 * qps):  # one burst window (1 s) at a frozen instant, alternating replicas
        replica = (a, b)[i % 2]
        try:
            replica.images.search_by_filter(tenant.account, "shop", "int_attr >= 0")
            admitted += 1
        except LookalikeError as err:
            assert err.code == "DeniedRequest"
    assert admitted == qps
    clock.advance(1.0)
    assert sum(_admits(s, tenant) for s in (b, a, b, a, b, a)) == qps


def _admits(services: Services, tenant: Tenant) -> bool:
    try:
        services.images.search_by_filter(tenant.account, "shop", "int_attr >= 0")
        return True
    except LookalikeError:
        return False


def test_a_nonce_used_on_one_replica_is_refused_on_the_other(
    replicas: tuple[Services, Services, ManualClock],
) -> None:
    from lookalike.api.app import create_app

    a, b, _ = replicas
    assert isinstance(a.nonces, RedisNonceStore)
    assert create_app(a, close_on_shutdown=False).state.nonce_store is a.nonces  # what signing.py uses
    now = a.request_clock.timestamp()
    nonce = f"AKID\n{uuid.uuid4()}"
    assert a.nonces.remember(nonce, now, 900)
    assert not b.nonces.remember(nonce, now, 900)
    assert not a.nonces.remember(nonce, now, 900)


def test_only_one_of_two_concurrent_sweeps_holds_the_lock(
    replicas: tuple[Services, Services, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, _ = replicas
    make_tenant(a, "swept", "shop")  # one instance, so the sweep has a row to work on
    inside, let_go = threading.Event(), threading.Event()
    original = a.lifecycle._sweep_one

    def slow_sweep_one(row: object, report: object) -> None:
        inside.set()
        assert let_go.wait(10)
        original(row, report)  # type: ignore[arg-type]

    monkeypatch.setattr(a.lifecycle, "_sweep_one", slow_sweep_one)
    reports: dict[str, SweepReport] = {}
    first = threading.Thread(target=lambda: reports.setdefault("a", a.lifecycle.sweep()))
    first.start()
    assert inside.wait(10)  # a holds the lock and is mid-sweep
    assert b.lifecycle.sweep().ran is False
    let_go.set()
    first.join(10)
    assert reports["a"].ran is True
    assert b.lifecycle.sweep().ran is True  # a handed the lock back
