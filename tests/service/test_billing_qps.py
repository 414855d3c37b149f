"""The search QPS of the package a tenant holds is the rate limit, and it follows package changes at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import Tenant
from lookalike.clock import ManualClock
from lookalike.domain.errors import LookalikeError
from lookalike.service.container import Services

START = datetime(2027, 1, 1, tzinfo=UTC)


def burst_for_three_seconds(services: Services, tenant_name: str, account: object, clock: ManualClock) -> int:
    """Fire a request every 10 ms for 3 seconds of (injected) time; count the admitted ones."""
    admitted = 0
    for _ in range(300):
        try:
            services.images.search_by_filter(account, tenant_name, "int_attr >= 0")  # type: ignore[arg-type]
            admitted += 1
        except LookalikeError as err:
            assert err.code == "DeniedRequest" and err.retry_after is not None
        clock.advance(0.01)
    return admitted


@pytest.mark.parametrize("package_id,qps", [("2.5m-5qps", 5), ("2.5m-10qps", 10), ("100k-1qps", 1)])
def test_burst_admits_qps_times_three_plus_burst(
    services: Services, clock: ManualClock, package_id: str, qps: int
) -> None:
    clock.set(START)
    account, _ = services.accounts.create_account("bursty")
    services.billing.payments.top_up(account.id, 10_000_00, idempotency_key="t1")
    services.billing.orders.buy(account, "bursty", package_id, idempotency_key="b1")
    admitted = burst_for_three_seconds(services, "bursty", account, clock)
    assert qps * 3 <= admitted <= qps * 3 + qps


def test_changing_the_package_changes_the_limit_at_once(services: Services, clock: ManualClock) -> None:
    clock.set(START)
    account, _ = services.accounts.create_account("upgrader")
    services.billing.payments.top_up(account.id, 10_000_00, idempotency_key="t1")
    services.billing.orders.buy(account, "up", "2.5m-5qps", idempotency_key="b1")
    assert 15 <= burst_for_three_seconds(services, "up", account, clock) <= 20
    services.billing.subscriptions.change(account, "up", "2.5m-10qps", idempotency_key="c1")
    assert 30 <= burst_for_three_seconds(services, "up", account, clock) <= 40
    services.billing.subscriptions.change(account, "up", "2.5m-5qps", idempotency_key="c2")
    assert 15 <= burst_for_three_seconds(services, "up", account, clock) <= 20


def test_granted_tenant_fixture_is_unthrottled(services: Services, tenant: Tenant) -> None:
    for _ in range(50):
        services.images.search_by_filter(tenant.account, tenant.instance.name, "int_attr >= 0")
