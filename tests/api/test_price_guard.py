"""The price guard: an order carrying the total the customer confirmed (`max_total`) is re-priced inside the
charging transaction and refused whole (PriceChanged, 409) when it now costs more: proration moved on, or
the operator reloaded a dearer catalogue between quote and confirm. At or below the confirmed total it
goes through and charges the actual total; idempotent replays ignore `max_total`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import make_settings
from lookalike.api.app import create_app
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain.catalogue import default_catalogue_text
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.container import Services

START = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture
def catalogue_file(tmp_path: Path) -> Path:
    """The default catalogue as an operator's file, so a test can raise a price and reload it."""
    path = tmp_path / "catalogue.json"
    path.write_text(default_catalogue_text(), encoding="utf-8")
    return path


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path, database_url: str | None, catalogue_file: Path) -> Settings:
    return make_settings(
        tmp_path / "data", database_url, model_cache_dir=model_cache, catalogue_path=catalogue_file
    )


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, close_on_shutdown=False)) as test_client:
        yield test_client


def set_monthly(catalogue_file: Path, package_id: str, monthly: str) -> None:
    data = json.loads(catalogue_file.read_text(encoding="utf-8"))
    for package in data["packages"]:
        if package["id"] == package_id:
            package["monthly"] = monthly
    catalogue_file.write_text(json.dumps(data), encoding="utf-8")


def money_state(services: Services, account_id: str) -> tuple[int, list[Any], list[Any], list[Any]]:
    """Everything a refused order must leave as it was: balance, ledger, orders, events."""
    billing = services.billing
    return (
        billing.payments.balance(account_id),
        billing.payments.ledger(account_id)["entries"],
        billing.receipts.orders(account_id),
        billing.receipts.events(account_id),
    )


def shop_with_instance(services: Services, clock: ManualClock) -> Account:
    """An account with 5000.00 USD that bought 2.5m-5qps for January 2027."""
    clock.set(START)
    account, _key = services.accounts.create_account("guarded")
    services.billing.payments.top_up(account.id, 500_000, idempotency_key="pay")
    services.billing.orders.buy(account, "shop", "2.5m-5qps", idempotency_key="buy")
    return account


def test_upgrade_repriced_above_the_confirmed_total_is_refused_whole(
    services: Services, clock: ManualClock
) -> None:
    billing = services.billing
    account = shop_with_instance(services, clock)
    clock.set(datetime(2027, 1, 16, tzinfo=UTC))
    quoted = billing.quotes.quote(
        account, "change", package_id="2.5m-10qps", instance_name="shop"
    ).total.amount
    assert quoted == 36129  # 700.00 × 16/31

    # Confirmed a day "earlier" in the cycle: more of it remains, so the upgrade now costs more.
    clock.set(datetime(2027, 1, 15, tzinfo=UTC))
    before = money_state(services, account.id)
    with pytest.raises(LookalikeError) as refused:
        billing.subscriptions.change(account, "shop", "2.5m-10qps", idempotency_key="up-1", max_total=quoted)
    assert refused.value.code == "PriceChanged" and refused.value.http_status == 409
    assert "383.87 USD" in refused.value.message and "361.29 USD" in refused.value.message
    assert money_state(services, account.id) == before
    instance = services.accounts.instance_for(account, "shop")
    assert billing.subscriptions.instance_status(instance)["package_id"] == "2.5m-5qps"

    # The refusal did not use up the key: confirming the new price with it charges exactly that price.
    new_price = billing.quotes.quote(
        account, "change", package_id="2.5m-10qps", instance_name="shop"
    ).total.amount
    assert new_price == 38387
    done = billing.subscriptions.change(
        account, "shop", "2.5m-10qps", idempotency_key="up-1", max_total=new_price
    )
    assert done["total"] == new_price and "replayed" not in done
    assert billing.payments.balance(account.id) == before[0] - new_price
    assert billing.subscriptions.instance_status(instance)["package_id"] == "2.5m-10qps"

    # A retry of the same choice replays, whatever max_total it carries; nothing is charged twice.
    again = billing.subscriptions.change(account, "shop", "2.5m-10qps", idempotency_key="up-1", max_total=0)
    assert again["replayed"] is True and again["order_id"] == done["order_id"]
    assert billing.payments.balance(account.id) == before[0] - new_price


def test_a_total_at_or_below_the_confirmed_one_goes_through_and_a_smaller_refund_does_not(
    services: Services, clock: ManualClock
) -> None:
    billing = services.billing
    account = shop_with_instance(services, clock)
    clock.set(datetime(2027, 1, 16, tzinfo=UTC))
    quoted = billing.quotes.quote(
        account, "change", package_id="2.5m-10qps", instance_name="shop"
    ).total.amount
    # Confirmed an hour later: a little less of the cycle remains, the upgrade is cheaper; the actual
    # (lower) total is charged, not the confirmed one.
    clock.advance(timedelta(hours=1))
    balance = billing.payments.balance(account.id)
    up = billing.subscriptions.change(account, "shop", "2.5m-10qps", idempotency_key="up", max_total=quoted)
    assert 0 < up["total"] < quoted and billing.payments.balance(account.id) == balance - up["total"]

    # Back down: the refund is quoted, and a day later it is smaller, i.e. the order's total is higher.
    refund = billing.quotes.quote(
        account, "change", package_id="2.5m-5qps", instance_name="shop"
    ).total.amount
    assert refund < 0
    clock.advance(timedelta(days=1))
    before = money_state(services, account.id)
    with pytest.raises(LookalikeError) as refused:
        billing.subscriptions.change(account, "shop", "2.5m-5qps", idempotency_key="down", max_total=refund)
    assert refused.value.code == "PriceChanged"
    assert money_state(services, account.id) == before
    # A confirmed total above the new one (the customer accepts any refund down to this) goes through.
    down = billing.subscriptions.change(
        account, "shop", "2.5m-5qps", idempotency_key="down", max_total=refund + 5000
    )
    assert refund < down["total"] < 0
    assert billing.payments.balance(account.id) == before[0] - down["total"]


def test_reloaded_dearer_catalogue_refuses_buy_and_renewal_at_the_old_price(
    services: Services, clock: ManualClock, catalogue_file: Path
) -> None:
    billing = services.billing
    account = shop_with_instance(services, clock)
    buy_quote = billing.quotes.quote(account, "buy", package_id="100k-1qps").total.amount
    renew_quote = billing.quotes.quote(
        account, "renew", package_id="2.5m-5qps", instance_name="shop"
    ).total.amount
    assert (buy_quote, renew_quote) == (30000, 80000)
    set_monthly(catalogue_file, "100k-1qps", "350.00")
    set_monthly(catalogue_file, "2.5m-5qps", "900.00")
    billing.catalogues.reload()

    instance = services.accounts.instance_for(account, "shop")
    paid_until = billing.subscriptions.instance_status(instance)["paid_until"]
    before = money_state(services, account.id)
    with pytest.raises(LookalikeError) as refused_buy:
        billing.orders.buy(account, "second", "100k-1qps", idempotency_key="b2", max_total=buy_quote)
    assert refused_buy.value.code == "PriceChanged" and "350.00 USD" in refused_buy.value.message
    with pytest.raises(LookalikeError) as refused_renewal:
        billing.subscriptions.renew(account, "shop", "2.5m-5qps", idempotency_key="r1", max_total=renew_quote)
    assert refused_renewal.value.code == "PriceChanged" and "900.00 USD" in refused_renewal.value.message
    assert money_state(services, account.id) == before
    assert services.instances_repo.get_by_name("second") is None  # the refused buy created nothing
    assert (
        billing.subscriptions.instance_status(instance)["paid_until"] == paid_until
    )  # the renewal did not extend it

    bought = billing.orders.buy(account, "second", "100k-1qps", idempotency_key="b2", max_total=35000)
    renewed = billing.subscriptions.renew(account, "shop", "2.5m-5qps", idempotency_key="r1", max_total=90000)
    assert (bought["total"], renewed["total"]) == (35000, 90000)
    assert billing.payments.balance(account.id) == before[0] - 35000 - 90000


def test_rest_orders_take_max_total(services: Services, clock: ManualClock, client: TestClient) -> None:
    billing = services.billing
    clock.set(START)
    account, key = services.accounts.create_account("rest-shop")
    auth = (key.access_key_id, key.access_key_secret)
    billing.payments.top_up(account.id, 200_000, idempotency_key="pay")
    order = {"kind": "buy", "instance": "store", "package_id": "2.5m-5qps", "unit": "month", "count": 1}
    quoted = client.post("/v1/billing/quote", auth=auth, json=order).json()["total"]

    for bad in ("12.5", "lots", 12.5, True):
        invalid = client.post(
            "/v1/orders", auth=auth, json={**order, "max_total": bad}, headers={"Idempotency-Key": "o1"}
        )
        assert (invalid.status_code, invalid.json()["code"]) == (400, "InvalidAmount"), bad
    low = client.post(
        "/v1/orders", auth=auth, json={**order, "max_total": quoted - 1}, headers={"Idempotency-Key": "o1"}
    )
    assert (low.status_code, low.json()["code"]) == (409, "PriceChanged")
    assert (
        billing.payments.balance(account.id) == 200_000 and len(billing.receipts.orders(account.id)) == 1
    )  # the top-up

    placed = client.post(
        "/v1/orders", auth=auth, json={**order, "max_total": str(quoted)}, headers={"Idempotency-Key": "o1"}
    )
    assert placed.status_code == 200, placed.text
    assert placed.json()["total"] == quoted and billing.payments.balance(account.id) == 200_000 - quoted
    replay = client.post(
        "/v1/orders", auth=auth, json={**order, "max_total": 0}, headers={"Idempotency-Key": "o1"}
    )
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    assert replay.json()["order_id"] == placed.json()["order_id"]
    assert billing.payments.balance(account.id) == 200_000 - quoted

    # Form posts carry it as text too; without max_total an order is priced as before.
    renew = {"kind": "renew", "instance": "store", "package_id": "2.5m-5qps", "max_total": "79999"}
    refused = client.post("/v1/orders", auth=auth, data=renew, headers={"Idempotency-Key": "r1"})
    assert (refused.status_code, refused.json()["code"]) == (409, "PriceChanged")
    unguarded = client.post(
        "/v1/orders", auth=auth, data={**renew, "max_total": ""}, headers={"Idempotency-Key": "r1"}
    )
    assert unguarded.status_code == 200 and unguarded.json()["total"] == 80000
