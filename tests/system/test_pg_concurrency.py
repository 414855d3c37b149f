"""Money calls and lifecycle sweeps racing in real concurrent transactions on PostgreSQL.

SQLite serializes writers (BEGIN IMMEDIATE), so these races only mean something on a server database:
the tests skip on SQLite and run in scripts/test's PostgreSQL pass. Every racer starts at one barrier and
has its own pooled connection, so the transactions really interleave (row locks, unique-key waits).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from lookalike.clock import ManualClock
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.container import Services
from lookalike.service.lifecycle import LifecycleService
from lookalike.storage.billing_repo import SqlBillingStore
from lookalike.storage.locks import SqlLockStore
from lookalike.storage.tables import events, ledger, orders

T = TypeVar("T")
RACERS = 8
START = datetime(2027, 1, 1, tzinfo=UTC)
PRICE = 80000  # 2.5m-5qps, one month (cents)


@pytest.fixture(autouse=True)
def _postgres_only(services: Services) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers; run with LOOKALIKE_TEST_DATABASE_URL (scripts/test)")


def race(call: Callable[[int], T], racers: int = RACERS) -> list[T | LookalikeError]:
    """Run call(0..racers-1) in threads released together; each result or LookalikeError, by racer."""
    barrier = threading.Barrier(racers)
    results: list[T | LookalikeError | None] = [None] * racers
    crashes: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except LookalikeError as err:
            results[i] = err
        except BaseException as exc:  # anything else (a 500 in production) fails the test below
            crashes.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not crashes, crashes
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def without_replay_flag(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "replayed"}


def ledger_rows(services: Services, account_id: str) -> list[tuple[str, int]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.kind, ledger.c.amount)
            .where(ledger.c.account_id == account_id)
            .order_by(ledger.c.id)
        ).all()
    return [(r.kind, int(r.amount)) for r in rows]


def event_counts(services: Services, account_id: str) -> Counter[str]:
    with services.engine.connect() as conn:
        kinds = conn.execute(select(events.c.kind).where(events.c.account_id == account_id)).scalars()
        return Counter(kinds)


def account_with(services: Services, name: str, balance: int) -> Account:
    account, _ = services.accounts.create_account(name)
    if balance:
        services.billing.payments.top_up(account.id, balance, idempotency_key=f"seed-{name}")
    return account


def test_same_key_top_up_from_many_threads_credits_once(services: Services, clock: ManualClock) -> None:
    clock.set(START)
    account = account_with(services, "payer", 0)
    results = race(lambda _i: services.billing.payments.top_up(account.id, 5000, idempotency_key="pay-1"))
    bodies = [r for r in results if isinstance(r, dict)]
    assert len(bodies) == RACERS, results
    assert sum(1 for b in bodies if not b.get("replayed")) == 1  # one did it, the others replayed it
    assert all(without_replay_flag(b) == without_replay_flag(bodies[0]) for b in bodies)
    assert ledger_rows(services, account.id) == [("topup", 5000)]
    assert services.billing.payments.balance(account.id) == 5000


def test_same_key_buy_from_many_threads_charges_once(services: Services, clock: ManualClock) -> None:
    clock.set(START)
    account = account_with(services, "buyer", 3 * PRICE)
    results = race(
        lambda _i: services.billing.orders.buy(account, "shop", "2.5m-5qps", idempotency_key="buy-1")
    )
    bodies = [r for r in results if isinstance(r, dict)]
    assert len(bodies) == RACERS, results
    assert all(without_replay_flag(b) == without_replay_flag(bodies[0]) for b in bodies)
    assert ledger_rows(services, account.id) == [("topup", 3 * PRICE), ("charge", -PRICE)]
    with services.engine.connect() as conn:
        kinds = conn.execute(select(orders.c.kind).where(orders.c.account_id == account.id)).scalars().all()
    assert sorted(kinds) == ["buy", "topup"]


def test_different_keys_racing_never_overdraw(services: Services, clock: ManualClock) -> None:
    clock.set(START)
    affordable = 3
    account = account_with(services, "spender", affordable * PRICE + PRICE // 2)
    results = race(
        lambda i: services.billing.orders.buy(account, f"shop{i}", "2.5m-5qps", idempotency_key=f"buy-{i}")
    )
    won = [r for r in results if isinstance(r, dict)]
    refused = [r.code for r in results if isinstance(r, LookalikeError)]
    assert len(won) == affordable and refused == ["InsufficientBalance"] * (RACERS - affordable)
    assert services.billing.payments.balance(account.id) == PRICE // 2
    charges = [amount for kind, amount in ledger_rows(services, account.id) if kind == "charge"]
    assert charges == [-PRICE] * affordable
    live = [i for i in range(RACERS) if services.instances_repo.get_by_name(f"shop{i}") is not None]
    assert len(live) == affordable


def test_many_accounts_racing_for_the_last_trial_seat_one_wins(
    services: Services, clock: ManualClock
) -> None:
    clock.set(START)
    services.billing.trials.set_seats(1)
    racers = [account_with(services, f"racer{i}", 0) for i in range(RACERS)]
    results = race(lambda i: services.billing.trials.trial(racers[i], f"try{i}", idempotency_key="trial"))
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert sorted(r.code for r in results if isinstance(r, LookalikeError)) == ["TrialUnavailable"] * (
        RACERS - 1
    )
    assert services.billing.trials.seats() == {"total": 1, "used": 1, "left": 0}


def test_same_name_bought_by_racing_accounts_exists_once(services: Services, clock: ManualClock) -> None:
    """The partial unique index on live names decides; the losers get a clean error, not a 500."""
    clock.set(START)
    racers = [account_with(services, f"rival{i}", PRICE) for i in range(RACERS)]
    results = race(
        lambda i: services.billing.orders.buy(racers[i], "contested", "2.5m-5qps", idempotency_key="k")
    )
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert {r.code for r in results if isinstance(r, LookalikeError)} == {"InstanceAlreadyExists"}
    charged = [a for a in racers if services.billing.payments.balance(a.id) == 0]
    assert len(charged) == 1  # only the winner paid


class NoLock:
    """A lock store that always grants: both sweepers run at once, as if the lease had expired mid-sweep."""

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        return True

    def release(self, name: str, holder: str) -> None:
        return None


@pytest.mark.parametrize("lease", [True, False], ids=["with-lease", "without-lease"])
def test_two_sweepers_racing_expire_renew_and_release_once(
    services: Services, clock: ManualClock, lease: bool
) -> None:
    clock.set(START)
    renewing = account_with(services, "renewing", 2 * PRICE)
    services.billing.orders.buy(renewing, "auto", "2.5m-5qps", idempotency_key="b")
    services.billing.subscriptions.set_auto_renew(renewing, "auto", True)
    lapsing = account_with(services, "lapsing", PRICE)
    services.billing.orders.buy(lapsing, "lapse", "2.5m-5qps", idempotency_key="b")

    def sweepers() -> list[LifecycleService]:
        # With the lease: each sweeper its own SqlLockStore on the job_leases row.
        return [
            LifecycleService(
                SqlBillingStore(services.engine),
                clock,
                services.billing.subscriptions,
                services.indexes,
                SqlLockStore(services.engine, clock) if lease else NoLock(),
            )
            for _ in range(RACERS)
        ]

    clock.set(datetime(2027, 2, 1, 3, tzinfo=UTC))  # past the end of the first cycle
    group = sweepers()
    race(lambda i: group[i].sweep())
    assert ledger_rows(services, renewing.id) == [
        ("topup", 2 * PRICE),
        ("charge", -PRICE),
        ("charge", -PRICE),
    ]
    assert event_counts(services, renewing.id)["renewed"] == 1
    assert event_counts(services, renewing.id)["expired"] == 0
    assert event_counts(services, lapsing.id)["expired"] == 1

    clock.set(datetime(2027, 2, 8, 1, tzinfo=UTC))  # seven calendar days after expiry: release
    group = sweepers()
    race(lambda i: group[i].sweep())
    assert event_counts(services, lapsing.id)["released"] == 1
    assert services.instances_repo.get_by_name("lapse") is None
    assert event_counts(services, renewing.id)["released"] == 0
    with services.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(ledger)).scalar_one()
    assert total == 5  # two top-ups, two buys, one auto-renewal: nothing charged twice
