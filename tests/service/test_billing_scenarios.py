"""Billing scenarios on the whole service graph, with every expected number worked out by hand.

Catalogue (USD, minor units = cents): 100k-1qps $300.00/month (trial), 2.5m-5qps $800.00/month,
2.5m-10qps $1,500.00/month; a year costs 10 months. January 2027 has 31 days.

Main scenario (account tops up $2,000.00 = 200000):
  2027-01-01T00:00Z buy 2.5m-5qps, 1 month       -80000   balance 120000   cycle 01-01 → 02-01
  2027-01-16T00:00Z upgrade to 2.5m-10qps        -36129   balance  83871   (150000−80000)×16/31 = 36129.03
  2027-01-24T00:00Z downgrade to 2.5m-5qps       +18065   balance 101936   (150000−80000)×8/31  = 18064.516
  2027-02-01T00:00Z expired (data kept, data plane refused)
  A: 2027-02-05T00:00Z renew 2.5m-5qps, 1 month  -80000   balance  21936   cycle 02-05 → 03-05
  B: 2027-02-08T00:00Z released (02-01 + 7 calendar days): pictures purged, name free
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from lookalike.clock import ManualClock
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, Instance
from lookalike.service.container import Services
from lookalike.storage.tables import images, ledger, subscriptions
from photos import encode, load_photo


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


PHOTOS = ("coffee", "rocket", "astronaut")


@pytest.fixture(scope="module")
def pictures() -> dict[str, bytes]:
    return {name: encode(load_photo(name)) for name in PHOTOS}


# --- helpers ---
def ledger_of(services: Services, account_id: str) -> list[tuple[str, int]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.kind, ledger.c.amount)
            .where(ledger.c.account_id == account_id)
            .order_by(ledger.c.id)
        ).all()
    return [(r.kind, int(r.amount)) for r in rows]


def event_kinds(services: Services, account_id: str) -> list[str]:
    return [ev["kind"] for ev in services.billing.receipts.events(account_id)]


def image_rows(services: Services, instance_id: str) -> int:
    with services.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(images).where(images.c.instance_id == instance_id)
            ).scalar_one()
        )


def instance(services: Services, name: str) -> Instance:
    found = services.instances_repo.get_by_name(name)
    assert found is not None, f"no live instance {name!r}"
    return found


def status(services: Services, name: str) -> dict[str, Any]:
    return services.billing.subscriptions.instance_status(instance(services, name))


def error_code(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(LookalikeError) as caught:
        call(*args, **kwargs)
    return caught.value.code


def admitted_searches(services: Services, account: Account, name: str, tries: int = 30) -> int:
    """Searches admitted back to back at a frozen clock: the rate limiter's burst = the package QPS."""
    passed = 0
    for _ in range(tries):
        try:
            services.images.search_by_filter(account, name, "int_attr >= 0")
            passed += 1
        except LookalikeError as err:
            assert err.code == "DeniedRequest"
    return passed


def add_pictures(services: Services, account: Account, name: str, pictures: dict[str, bytes]) -> None:
    for pic_name, data in pictures.items():
        services.images.add_image(account, name, product_id=f"p-{pic_name}", pic_name=pic_name, picture=data)


def new_account(services: Services, name: str, top_up: int = 0) -> Account:
    account, _ = services.accounts.create_account(name)
    if top_up:
        services.billing.payments.top_up(account.id, top_up, idempotency_key=f"topup-{name}")
    return account


# --- the main scenario ---
@dataclass
class Main:
    account: Account
    instance_id: str


def run_main_scenario_to_expiry(services: Services, clock: ManualClock, pictures: dict[str, bytes]) -> Main:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "acme", top_up=200000)

    quote = services.billing.quotes.quote(account, "buy", package_id="2.5m-5qps")
    assert quote.total.amount == 80000
    bought = services.billing.orders.buy(account, "shop", "2.5m-5qps", idempotency_key="buy-1")
    assert bought["total"] == 80000
    assert bought["cycle"]["start"] == "2027-01-01T00:00:00+00:00"
    assert bought["cycle"]["end"] == "2027-02-01T00:00:00+00:00"
    assert services.billing.payments.balance(account.id) == 120000
    instance_id = bought["instance_id"]
    assert admitted_searches(services, account, "shop") == 5
    clock.advance(2)
    add_pictures(services, account, "shop", pictures)
    assert status(services, "shop")["usage"] == 3

    # Upgrade on Jan 16: 16 of 31 days remain.
    clock.set(at(2027, 1, 16))
    up_quote = services.billing.quotes.quote(account, "change", package_id="2.5m-10qps", instance_name="shop")
    assert up_quote.total.amount == 36129
    up = services.billing.subscriptions.change(account, "shop", "2.5m-10qps", idempotency_key="up-1")
    assert up["total"] == 36129
    assert up["lines"][0]["proration"] == "16/31"
    assert services.billing.payments.balance(account.id) == 83871
    now = status(services, "shop")
    assert (now["package_id"], now["qps"], now["capacity"]) == ("2.5m-10qps", 10, 2500000)
    assert now["cycle_start"] == "2027-01-01T00:00:00+00:00"
    assert now["cycle_end"] == "2027-02-01T00:00:00+00:00"
    assert admitted_searches(services, account, "shop") == 10

    # Downgrade on Jan 24: 8 of 31 days remain; the refund goes to the balance.
    clock.set(at(2027, 1, 24))
    down_quote = services.billing.quotes.quote(
        account, "change", package_id="2.5m-5qps", instance_name="shop"
    )
    assert down_quote.total.amount == -18065
    down = services.billing.subscriptions.change(account, "shop", "2.5m-5qps", idempotency_key="down-1")
    assert down["total"] == -18065
    assert down["lines"][0]["proration"] == "8/31"
    assert services.billing.payments.balance(account.id) == 101936
    assert status(services, "shop")["qps"] == 5
    assert admitted_searches(services, account, "shop") == 5
    assert ledger_of(services, account.id) == [
        ("topup", 200000),
        ("charge", -80000),
        ("charge", -36129),
        ("refund", 18065),
    ]

    # One second before the end: still active; at the end: expired.
    clock.set(at(2027, 1, 31, 23, 59, 59))
    services.lifecycle.sweep()
    assert status(services, "shop")["state"] == "active"
    clock.set(at(2027, 2, 1))
    report = services.lifecycle.sweep()
    assert report.expired == ["shop"]
    assert "expired" in event_kinds(services, account.id)
    assert (
        error_code(services.images.search_by_filter, account, "shop", "int_attr >= 0")
        == "InstanceStatusError"
    )
    assert (
        error_code(
            services.images.add_image,
            account,
            "shop",
            product_id="x",
            pic_name="x",
            picture=pictures["coffee"],
        )
        == "InstanceStatusError"
    )
    detail = services.images.detail(account, "shop")
    assert detail.total_count == 3
    assert detail.instance.status == "expired"
    expired = status(services, "shop")
    assert expired["state"] == "expired"
    assert expired["release_at"] == "2027-02-08T00:00:00+00:00"
    assert image_rows(services, instance_id) == 3
    return Main(account, instance_id)


def test_main_scenario_branch_a_renewal_restores_everything(
    services: Services, clock: ManualClock, pictures: dict[str, bytes]
) -> None:
    main = run_main_scenario_to_expiry(services, clock, pictures)
    clock.set(at(2027, 2, 5))
    services.lifecycle.sweep()  # still expired, not released
    quote = services.billing.quotes.quote(main.account, "renew", package_id="2.5m-5qps", instance_name="shop")
    assert quote.total.amount == 80000
    renewed = services.billing.subscriptions.renew(
        main.account, "shop", "2.5m-5qps", idempotency_key="renew-1"
    )
    assert renewed["total"] == 80000
    assert renewed["cycle"]["start"] == "2027-02-05T00:00:00+00:00"
    assert renewed["cycle"]["end"] == "2027-03-05T00:00:00+00:00"
    assert services.billing.payments.balance(main.account.id) == 21936
    after = status(services, "shop")
    assert after["state"] == "active"
    assert (after["cycle_start"], after["cycle_end"]) == (
        "2027-02-05T00:00:00+00:00",
        "2027-03-05T00:00:00+00:00",
    )
    assert after["paid_until"] == "2027-03-05T00:00:00+00:00"
    assert after["usage"] == 3
    found = services.images.search_by_pic(main.account, "shop", pictures["coffee"])
    assert found.hits[0].record.pic_name == "coffee"
    assert {hit.record.pic_name for hit in found.hits} == set(PHOTOS)
    # The release date passes without effect: the instance is paid until March 5.
    clock.set(at(2027, 2, 8))
    report = services.lifecycle.sweep()
    assert report.released == [] and report.expired == []
    assert image_rows(services, main.instance_id) == 3
    assert ledger_of(services, main.account.id)[-1] == ("charge", -80000)


def test_main_scenario_branch_b_release_purges_and_frees_the_name(
    services: Services, clock: ManualClock, pictures: dict[str, bytes]
) -> None:
    main = run_main_scenario_to_expiry(services, clock, pictures)
    clock.set(at(2027, 2, 7, 23, 59, 59))
    assert services.lifecycle.sweep().released == []
    assert image_rows(services, main.instance_id) == 3
    clock.set(at(2027, 2, 8))
    report = services.lifecycle.sweep()
    assert report.released == ["shop"]
    assert image_rows(services, main.instance_id) == 0
    assert event_kinds(services, main.account.id).count("released") == 1
    assert services.instances_repo.get_by_name("shop") is None
    assert error_code(services.images.detail, main.account, "shop") == "InvalidInstance"
    assert (
        error_code(
            services.billing.subscriptions.renew, main.account, "shop", "2.5m-5qps", idempotency_key="late"
        )
        == "InvalidInstance"
    )
    # Sweeping again changes nothing.
    assert services.lifecycle.sweep().released == []
    assert event_kinds(services, main.account.id).count("released") == 1
    # The name is free: buying it again makes a new, empty instance.
    again = services.billing.orders.buy(main.account, "shop", "2.5m-5qps", idempotency_key="buy-2")
    assert again["instance_id"] != main.instance_id
    assert status(services, "shop")["usage"] == 0
    assert services.billing.payments.balance(main.account.id) == 101936 - 80000


# --- trials ---
def test_trial_is_free_for_one_month_with_the_small_package_limits(
    services: Services, clock: ManualClock
) -> None:
    clock.set(at(2027, 3, 10, 12))
    account = new_account(services, "trier")
    assert services.billing.quotes.quote(account, "trial").total.amount == 0
    body = services.billing.trials.trial(account, "try", idempotency_key="t-1")
    assert body["total"] == 0
    assert body["cycle"]["end"] == "2027-04-10T12:00:00+00:00"
    assert ledger_of(services, account.id) == [("trial", 0)]
    now = status(services, "try")
    assert (now["package_id"], now["capacity"], now["qps"], now["state"]) == (
        "100k-1qps",
        100000,
        1,
        "active",
    )
    eff = services.billing.entitlements.effective(instance(services, "try"))
    assert (eff.capacity, eff.search_qps) == (100000, 1)
    assert admitted_searches(services, account, "try") == 1
    # Once per account, whatever the name.
    assert (
        error_code(services.billing.trials.trial, account, "try2", idempotency_key="t-2")
        == "TrialUnavailable"
    )
    assert services.instances_repo.get_by_name("try2") is None
    assert services.billing.payments.balance(account.id) == 0


def test_trial_seats_exhausted(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    services.billing.trials.set_seats(1)
    first, second = new_account(services, "first"), new_account(services, "second")
    services.billing.trials.trial(first, "first-trial", idempotency_key="t")
    assert (
        error_code(services.billing.trials.trial, second, "second-trial", idempotency_key="t")
        == "TrialUnavailable"
    )
    assert services.instances_repo.get_by_name("second-trial") is None
    assert services.billing.trials.seats() == {"total": 1, "used": 1, "left": 0}
    # The operator adds a seat: the second account may now take it (its earlier refusal stored nothing).
    services.billing.trials.set_seats(2)
    services.billing.trials.trial(second, "second-trial", idempotency_key="t")
    assert services.billing.trials.seats() == {"total": 2, "used": 2, "left": 0}


def test_two_threads_racing_for_the_last_seat_one_wins(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    services.billing.trials.set_seats(1)
    racers = [new_account(services, f"racer{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(i: int) -> None:
        barrier.wait()
        try:
            services.billing.trials.trial(racers[i], f"race{i}", idempotency_key="t")
            result = "won"
        except LookalikeError as err:
            result = err.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["TrialUnavailable", "won"]
    assert services.billing.trials.seats() == {"total": 1, "used": 1, "left": 0}
    live = [n for n in ("race0", "race1") if services.instances_repo.get_by_name(n) is not None]
    assert len(live) == 1


# --- periods ---
def test_yearly_buy_costs_ten_months_and_lasts_a_year(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "yearly", top_up=1000000)
    assert (
        services.billing.quotes.quote(account, "buy", package_id="2.5m-5qps", unit="year").total.amount
        == 800000
    )
    body = services.billing.orders.buy(account, "yr", "2.5m-5qps", unit="year", idempotency_key="y")
    assert body["total"] == 800000
    assert body["total_text"] == "8000.00"
    assert body["cycle"]["end"] == "2028-01-01T00:00:00+00:00"
    assert services.billing.payments.balance(account.id) == 200000
    assert status(services, "yr")["paid_until"] == "2028-01-01T00:00:00+00:00"
    # A whole year later it expires, not a day before.
    clock.set(at(2027, 12, 31, 23, 59, 59))
    services.lifecycle.sweep()
    assert status(services, "yr")["state"] == "active"
    clock.set(at(2028, 1, 1))
    assert services.lifecycle.sweep().expired == ["yr"]


@pytest.mark.parametrize(
    "bought,paid_until",
    [
        (at(2027, 1, 31), "2027-02-28T00:00:00+00:00"),
        (at(2028, 1, 31), "2028-02-29T00:00:00+00:00"),
        (at(2027, 3, 31, 8, 30), "2027-04-30T08:30:00+00:00"),
    ],
)
def test_month_end_arithmetic(
    services: Services, clock: ManualClock, bought: datetime, paid_until: str
) -> None:
    clock.set(bought)
    account = new_account(services, "monthend", top_up=80000)
    body = services.billing.orders.buy(account, "me", "2.5m-5qps", idempotency_key="b")
    assert body["cycle"]["end"] == paid_until
    assert status(services, "me")["paid_until"] == paid_until


# --- money refused ---
def test_insufficient_balance_changes_nothing(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "poor", top_up=79999)
    orders_before = services.billing.receipts.orders(account.id)
    assert error_code(services.billing.orders.buy, account, "cheap", "2.5m-5qps", idempotency_key="b") == (
        "InsufficientBalance"
    )
    assert services.billing.payments.balance(account.id) == 79999
    assert services.billing.receipts.orders(account.id) == orders_before
    assert ledger_of(services, account.id) == [("topup", 79999)]
    assert services.instances_repo.get_by_name("cheap") is None
    with services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscriptions)).scalar_one() == 0
    # The refusal stored no idempotency record and the name is still free: one more cent and it works.
    services.billing.payments.top_up(account.id, 1, idempotency_key="cent")
    body = services.billing.orders.buy(account, "cheap", "2.5m-5qps", idempotency_key="b")
    assert "replayed" not in body
    assert services.billing.payments.balance(account.id) == 0


def test_downgrade_below_stored_count_is_refused_and_changes_nothing(
    services: Services, clock: ManualClock, pictures: dict[str, bytes]
) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "full", top_up=200000)
    services.billing.catalogues.create_private_package(
        account.id, capacity=2, qps=1, monthly=1000, yearly=10000, package_id="tiny-2"
    )
    services.billing.orders.buy(account, "full", "2.5m-5qps", idempotency_key="b")
    add_pictures(services, account, "full", pictures)
    clock.set(at(2027, 1, 10))
    before = (
        status(services, "full"),
        services.billing.receipts.orders(account.id),
        ledger_of(services, account.id),
    )
    assert error_code(
        services.billing.quotes.quote, account, "change", package_id="tiny-2", instance_name="full"
    ) == ("CapacityBelowUsage")
    assert error_code(
        services.billing.subscriptions.change, account, "full", "tiny-2", idempotency_key="c"
    ) == ("CapacityBelowUsage")
    assert error_code(
        services.billing.subscriptions.renew, account, "full", "tiny-2", idempotency_key="r"
    ) == ("CapacityBelowUsage")
    after = (
        status(services, "full"),
        services.billing.receipts.orders(account.id),
        ledger_of(services, account.id),
    )
    assert after == before
    assert services.billing.payments.balance(account.id) == 120000
    # With one picture deleted the downgrade fits: 9 Jan days of 31 have passed, 22 remain.
    # (1000 − 80000) × 22/31 = −56064.516… → refund 56065.
    services.images.delete_images(account, "full", product_id="p-coffee")
    body = services.billing.subscriptions.change(account, "full", "tiny-2", idempotency_key="c2")
    assert body["total"] == -56065
    assert services.billing.payments.balance(account.id) == 176065
    eff = services.billing.entitlements.effective(instance(services, "full"))
    assert (eff.capacity, eff.search_qps) == (2, 1)


# --- auto-renew ---
def test_auto_renew_with_balance_is_seamless_and_charged_once(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "auto", top_up=160000)
    services.billing.orders.buy(account, "auto", "2.5m-5qps", idempotency_key="b")
    services.billing.subscriptions.set_auto_renew(account, "auto", True)
    assert status(services, "auto")["auto_renew"] is True
    # The sweep runs three hours late: the new cycle still starts exactly where the old one ended.
    clock.set(at(2027, 2, 1, 3))
    report = services.lifecycle.sweep()
    assert report.renewed == ["auto"] and report.expired == []
    now = status(services, "auto")
    assert now["state"] == "active"
    assert (now["cycle_start"], now["cycle_end"]) == (
        "2027-02-01T00:00:00+00:00",
        "2027-03-01T00:00:00+00:00",
    )
    assert services.billing.payments.balance(account.id) == 0
    clock.advance(60)
    again = services.lifecycle.sweep()
    assert again.renewed == [] and again.expired == []
    assert ledger_of(services, account.id) == [("topup", 160000), ("charge", -80000), ("charge", -80000)]
    assert "expired" not in event_kinds(services, account.id)
    assert event_kinds(services, account.id).count("renewed") == 1


def test_auto_renew_without_balance_expires_then_renews_after_a_top_up(
    services: Services, clock: ManualClock
) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "broke", top_up=80000)
    services.billing.orders.buy(account, "broke", "2.5m-5qps", idempotency_key="b")
    services.billing.subscriptions.set_auto_renew(account, "broke", True)
    clock.set(at(2027, 2, 1))
    report = services.lifecycle.sweep()
    assert report.renewed == [] and report.expired == ["broke"]
    kinds = event_kinds(services, account.id)
    assert kinds.count("auto_renew_failed") == 1 and kinds.count("expired") == 1
    failed = [ev for ev in services.billing.receipts.events(account.id) if ev["kind"] == "auto_renew_failed"]
    assert failed[0]["data"]["code"] == "InsufficientBalance"
    clock.set(at(2027, 2, 2))
    services.lifecycle.sweep()
    assert event_kinds(services, account.id).count("auto_renew_failed") == 1  # reported once
    assert status(services, "broke")["state"] == "expired"
    # A top-up within the seven days: the next sweep renews, the new cycle starting then.
    clock.set(at(2027, 2, 3))
    services.billing.payments.top_up(account.id, 80000, idempotency_key="more")
    report = services.lifecycle.sweep()
    assert report.renewed == ["broke"]
    now = status(services, "broke")
    assert now["state"] == "active"
    assert (now["cycle_start"], now["cycle_end"]) == (
        "2027-02-03T00:00:00+00:00",
        "2027-03-03T00:00:00+00:00",
    )
    assert services.billing.payments.balance(account.id) == 0
    clock.set(at(2027, 2, 8))
    assert services.lifecycle.sweep().released == []


# --- notices ---
def test_expiry_notices_are_sent_once_each(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "noticed", top_up=80000)
    services.billing.orders.buy(account, "noticed", "2.5m-5qps", idempotency_key="b")

    def notices() -> list[str]:
        return [k for k in event_kinds(services, account.id) if k.startswith("expiring_in_")]

    schedule = [
        (at(2027, 1, 24, 23, 59, 59), []),
        (at(2027, 1, 25), ["expiring_in_7d"]),
        (at(2027, 1, 28), ["expiring_in_7d"]),
        (at(2027, 1, 29), ["expiring_in_7d", "expiring_in_3d"]),
        (at(2027, 1, 31), ["expiring_in_7d", "expiring_in_3d", "expiring_in_1d"]),
        (at(2027, 1, 31, 23), ["expiring_in_7d", "expiring_in_3d", "expiring_in_1d"]),
        (at(2027, 2, 1), ["expiring_in_7d", "expiring_in_3d", "expiring_in_1d"]),
    ]
    for moment, expected in schedule:
        clock.set(moment)
        services.lifecycle.sweep()
        services.lifecycle.sweep()
        assert notices() == expected, moment


def test_a_late_sweep_sends_every_due_notice_once(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "late", top_up=80000)
    services.billing.orders.buy(account, "late", "2.5m-5qps", idempotency_key="b")
    clock.set(at(2027, 1, 31, 12))
    assert services.lifecycle.sweep().notices == 3
    assert services.lifecycle.sweep().notices == 0
    kinds = sorted(k for k in event_kinds(services, account.id) if k.startswith("expiring_in_"))
    assert kinds == ["expiring_in_1d", "expiring_in_3d", "expiring_in_7d"]


# --- idempotency ---
def test_idempotent_replay_and_conflict(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "idem")
    top = services.billing.payments.top_up(account.id, 200000, idempotency_key="top")
    top_again = services.billing.payments.top_up(account.id, 200000, idempotency_key="top")
    assert top_again["order_id"] == top["order_id"] and top_again["replayed"] is True
    first = services.billing.orders.buy(account, "idem", "2.5m-5qps", idempotency_key="k1")
    clock.advance(5)
    second = services.billing.orders.buy(account, "idem", "2.5m-5qps", idempotency_key="k1")
    assert second["order_id"] == first["order_id"]
    assert second["instance_id"] == first["instance_id"]
    assert second["replayed"] is True and "replayed" not in first
    assert ledger_of(services, account.id) == [("topup", 200000), ("charge", -80000)]
    assert len(services.billing.receipts.orders(account.id)) == 2
    # Same key, other parameters.
    assert error_code(services.billing.orders.buy, account, "idem", "2.5m-10qps", idempotency_key="k1") == (
        "IdempotencyConflict"
    )
    assert (
        error_code(services.billing.payments.top_up, account.id, 5, idempotency_key="top")
        == "IdempotencyConflict"
    )
    assert error_code(services.billing.orders.buy, account, "idem2", "2.5m-5qps", idempotency_key=None) == (
        "IdempotencyKeyRequired"
    )
    clock.set(at(2027, 1, 16))
    change = services.billing.subscriptions.change(account, "idem", "2.5m-10qps", idempotency_key="c")
    change_again = services.billing.subscriptions.change(account, "idem", "2.5m-10qps", idempotency_key="c")
    assert change_again["order_id"] == change["order_id"] and change_again["total"] == 36129
    assert ledger_of(services, account.id) == [("topup", 200000), ("charge", -80000), ("charge", -36129)]
    assert services.billing.payments.balance(account.id) == 83871


# --- private quotations ---
def test_private_quotation_is_visible_only_to_its_account(services: Services, clock: ManualClock) -> None:
    clock.set(at(2027, 1, 1))
    owner = new_account(services, "owner", top_up=100000)
    other = new_account(services, "other", top_up=100000)
    package = services.billing.catalogues.create_private_package(
        owner.id, capacity=3000000, qps=7, monthly=99900, yearly=999000, package_id="vip-3m-7"
    )
    assert package.private_for == owner.id
    assert "vip-3m-7" in {
        p.id for p in services.billing.catalogues.catalogue_for(owner.id).visible_to(owner.id)
    }
    assert "vip-3m-7" not in {
        p.id for p in services.billing.catalogues.catalogue_for(other.id).visible_to(other.id)
    }
    assert error_code(services.billing.quotes.quote, other, "buy", package_id="vip-3m-7") == "InvalidPackage"
    assert (
        error_code(services.billing.orders.buy, other, "steal", "vip-3m-7", idempotency_key="b")
        == "InvalidPackage"
    )
    assert services.billing.payments.balance(other.id) == 100000
    assert services.billing.quotes.quote(owner, "buy", package_id="vip-3m-7").total.amount == 99900
    services.billing.orders.buy(owner, "vip", "vip-3m-7", idempotency_key="b")
    eff = services.billing.entitlements.effective(instance(services, "vip"))
    assert (eff.capacity, eff.search_qps) == (3000000, 7)
    assert services.billing.payments.balance(owner.id) == 100
    assert admitted_searches(services, owner, "vip") == 7


# --- renewal while active ---
def test_renewal_with_another_package_takes_effect_at_the_next_cycle(
    services: Services, clock: ManualClock
) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "renewer", top_up=380000)
    services.billing.orders.buy(account, "renewer", "2.5m-5qps", idempotency_key="b")
    clock.set(at(2027, 1, 10))
    quote = services.billing.quotes.quote(
        account, "renew", package_id="2.5m-10qps", count=2, instance_name="renewer"
    )
    assert quote.total.amount == 300000
    body = services.billing.subscriptions.renew(
        account, "renewer", "2.5m-10qps", count=2, idempotency_key="r"
    )
    # 2 months of $1,500.00; the new cycle starts where the current one ends.
    assert body["total"] == quote.total.amount == 300000
    assert body["cycle"]["start"] == "2027-02-01T00:00:00+00:00"
    assert body["cycle"]["end"] == "2027-04-01T00:00:00+00:00"
    assert ledger_of(services, account.id)[-1] == ("charge", -300000)
    assert services.billing.payments.balance(account.id) == 0
    before = status(services, "renewer")
    assert (before["package_id"], before["qps"]) == ("2.5m-5qps", 5)
    assert before["paid_until"] == "2027-04-01T00:00:00+00:00"
    assert [u["package_id"] for u in before["upcoming"]] == ["2.5m-10qps"]
    assert admitted_searches(services, account, "renewer") == 5
    clock.set(at(2027, 1, 31, 23, 59, 59))
    services.lifecycle.sweep()
    assert status(services, "renewer")["qps"] == 5
    clock.set(at(2027, 2, 1))
    report = services.lifecycle.sweep()
    assert report.expired == [] and report.renewed == []
    after = status(services, "renewer")
    assert (after["state"], after["package_id"], after["qps"]) == ("active", "2.5m-10qps", 10)
    assert (after["cycle_start"], after["cycle_end"]) == (
        "2027-02-01T00:00:00+00:00",
        "2027-04-01T00:00:00+00:00",
    )
    assert admitted_searches(services, account, "renewer") == 10


def test_renewal_into_a_smaller_package_cannot_start_over_capacity(
    services: Services, clock: ManualClock, pictures: dict[str, bytes]
) -> None:
    clock.set(at(2027, 1, 1))
    account = new_account(services, "shrink", top_up=200000)
    services.billing.catalogues.create_private_package(
        account.id, capacity=2, qps=1, monthly=1000, yearly=10000, package_id="tiny-2"
    )
    services.billing.orders.buy(account, "shrink", "2.5m-5qps", idempotency_key="b")
    first, *rest = pictures.items()
    add_pictures(services, account, "shrink", dict([first]))
    services.billing.subscriptions.renew(
        account, "shrink", "tiny-2", idempotency_key="r"
    )  # 1 stored <= 2: accepted
    clock.advance(2)
    try:
        add_pictures(services, account, "shrink", dict(rest))
    except LookalikeError as err:
        assert err.code in {"InstanceOverQuota", "CapacityBelowUsage"}
    clock.set(at(2027, 2, 1))
    services.lifecycle.sweep()
    now = status(services, "shrink")
    assert now["package_id"] == "tiny-2"
    assert now["usage"] <= now["capacity"]
