"""Billing over HTTP: idempotency keys, quotes equal charges, the operator's endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from lookalike.api.app import create_app
from lookalike.clock import ManualClock
from lookalike.service.container import Services


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, close_on_shutdown=False)) as test_client:
        yield test_client


@pytest.fixture
def admin(services: Services) -> tuple[str, str]:
    key = services.accounts.create_access_key(services.accounts.list_accounts()[0].id)
    return (key.access_key_id, key.access_key_secret)


def test_quote_buy_replay_conflict_and_ledger(
    client: TestClient, services: Services, clock: ManualClock, admin: tuple[str, str]
) -> None:
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    account, key = services.accounts.create_account("shopper")
    tenant = (key.access_key_id, key.access_key_secret)
    catalogue = client.get("/v1/billing/catalogue", auth=tenant).json()
    assert {p["id"] for p in catalogue["packages"]} >= {"100k-1qps", "2.5m-5qps", "50m-10qps"}

    order = {"kind": "buy", "instance": "store", "package_id": "2.5m-5qps", "unit": "month", "count": 1}
    quote = client.post("/v1/billing/quote", auth=tenant, json=order).json()
    assert (quote["total"], quote["total_text"], quote["currency"]) == (80000, "800.00", "USD")

    missing_key = client.post("/v1/orders", auth=tenant, json=order)
    assert (missing_key.status_code, missing_key.json()["code"]) == (400, "IdempotencyKeyRequired")
    poor = client.post("/v1/orders", auth=tenant, json=order, headers={"Idempotency-Key": "o1"})
    assert (poor.status_code, poor.json()["code"]) == (402, "InsufficientBalance")

    topup = client.post(
        "/v1/admin/topups",
        auth=admin,
        json={"account_id": account.id, "amount": "1000.00"},
        headers={"Idempotency-Key": "pay-1"},
    )
    assert topup.status_code == 200 and topup.json()["balance"] == 100000
    again = client.post(
        "/v1/admin/topups",
        auth=admin,
        json={"account_id": account.id, "amount": "1000.00"},
        headers={"Idempotency-Key": "pay-1"},
    )
    assert again.json()["replayed"] is True and again.json()["order_id"] == topup.json()["order_id"]
    tenant_topup = client.post(
        "/v1/admin/topups",
        auth=tenant,
        json={"account_id": account.id, "amount": "1.00"},
        headers={"Idempotency-Key": "x"},
    )
    assert tenant_topup.status_code == 403

    bought = client.post("/v1/orders", auth=tenant, json=order, headers={"Idempotency-Key": "o1"})
    assert bought.status_code == 200, bought.text
    assert bought.json()["total"] == quote["total"]
    replay = client.post("/v1/orders", auth=tenant, json=order, headers={"Idempotency-Key": "o1"})
    assert replay.json()["order_id"] == bought.json()["order_id"] and replay.json()["replayed"] is True
    conflict = client.post(
        "/v1/orders",
        auth=tenant,
        json={**order, "package_id": "2.5m-10qps"},
        headers={"Idempotency-Key": "o1"},
    )
    assert (conflict.status_code, conflict.json()["code"]) == (409, "IdempotencyConflict")

    ledger = client.get("/v1/billing/ledger", auth=tenant).json()
    assert ledger["balance"] == 100000 - 80000
    assert sorted(e["amount"] for e in ledger["entries"]) == [-80000, 100000]
    status = client.get("/v1/instances/store/billing", auth=tenant).json()
    assert (status["state"], status["package_id"], status["capacity"], status["qps"]) == (
        "active",
        "2.5m-5qps",
        2_500_000,
        5,
    )
    assert status["paid_until"] == "2027-02-01T00:00:00+00:00"
    kinds = [e["kind"] for e in client.get("/v1/events", auth=tenant).json()["events"]]
    assert {"topped_up", "charged", "instance_created"} <= set(kinds)


def test_operator_private_packages_and_trial_seats(
    client: TestClient, services: Services, admin: tuple[str, str]
) -> None:
    vip, vip_key = services.accounts.create_account("vip")
    other, other_key = services.accounts.create_account("other")
    made = client.post(
        "/v1/admin/private-packages",
        auth=admin,
        json={
            "account_id": vip.id,
            "capacity": 80_000_000,
            "qps": 20,
            "monthly": "15000.00",
            "package_id": "vip-80m",
        },
    )
    assert made.status_code == 200, made.text
    vip_ids = {
        p["id"]
        for p in client.get(
            "/v1/billing/catalogue", auth=(vip_key.access_key_id, vip_key.access_key_secret)
        ).json()["packages"]
    }
    other_ids = {
        p["id"]
        for p in client.get(
            "/v1/billing/catalogue", auth=(other_key.access_key_id, other_key.access_key_secret)
        ).json()["packages"]
    }
    assert "vip-80m" in vip_ids and "vip-80m" not in other_ids
    seats = client.put("/v1/admin/trial-seats", auth=admin, json={"total": 1}).json()
    assert seats == {"total": 1, "used": 0, "left": 1}
    trial = {"kind": "trial", "instance": "try-it"}
    first = client.post(
        "/v1/orders",
        auth=(vip_key.access_key_id, vip_key.access_key_secret),
        json=trial,
        headers={"Idempotency-Key": "t"},
    )
    assert first.status_code == 200 and first.json()["total"] == 0
    second = client.post(
        "/v1/orders",
        auth=(other_key.access_key_id, other_key.access_key_secret),
        json={**trial, "instance": "try-too"},
        headers={"Idempotency-Key": "t"},
    )
    assert (second.status_code, second.json()["code"]) == (409, "TrialUnavailable")
    assert client.post("/v1/admin/catalogue/reload", auth=admin).json()["packages"] == 15
    del other


def test_demo_clock_moves_forward_within_bounds_and_sweeps(
    client: TestClient, services: Services, clock: ManualClock, admin: tuple[str, str]
) -> None:
    start = clock.now()
    for seconds in (-1, 10**30, 3661 * 86_400):
        refused = client.post("/v1/admin/clock/advance", auth=admin, json={"seconds": seconds})
        assert refused.status_code == 400 and refused.json()["code"] == "InvalidParameter"
    assert clock.now() == start  # nothing moved
    moved = client.post("/v1/admin/clock/advance", auth=admin, json={"seconds": 86_400})
    assert moved.status_code == 200 and moved.json()["sweep"]["ran"] is True
    assert clock.now() == start + timedelta(days=1)
