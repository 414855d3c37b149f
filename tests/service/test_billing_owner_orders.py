"""Orders on an instance are its owner's: the operator sees every instance but never pays for a tenant's."""

from __future__ import annotations

import pytest

from conftest import Tenant
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.domain.money import MAX_AMOUNT
from lookalike.service.container import Services


def _admin(services: Services) -> Account:
    key = services.bootstrap_key
    assert key is not None
    return services.accounts.get_account(key.account_id)


@pytest.mark.parametrize("kind", ["renew", "change"])
def test_the_operator_cannot_order_for_a_tenants_instance(
    services: Services, tenant: Tenant, kind: str
) -> None:
    admin = _admin(services)
    services.billing.payments.top_up(admin.id, 10_000_000, idempotency_key="admin-money")
    name = tenant.instance.name
    assert services.accounts.instance_for(admin, name).id == tenant.instance.id  # it may look
    with pytest.raises(LookalikeError) as quoted:
        services.billing.quotes.quote(admin, kind, package_id="2.5m-5qps", instance_name=name)
    assert quoted.value.code == e.NO_PERMISSION
    with pytest.raises(LookalikeError) as ordered:
        if kind == "renew":
            services.billing.subscriptions.renew(admin, name, "2.5m-5qps", idempotency_key="k1")
        else:
            services.billing.subscriptions.change(admin, name, "2.5m-5qps", idempotency_key="k1")
    assert ordered.value.code == e.NO_PERMISSION
    with pytest.raises(LookalikeError):
        services.billing.subscriptions.set_auto_renew(admin, name, True)
    assert services.billing.payments.balance(admin.id) == 10_000_000
    assert [o["kind"] for o in services.billing.receipts.orders(admin.id)] == ["topup"]


def test_top_ups_beyond_the_largest_amount_are_refused_clearly(services: Services, tenant: Tenant) -> None:
    for amount in (0, -1, MAX_AMOUNT + 1, 10**25):
        with pytest.raises(LookalikeError) as refused:
            services.billing.payments.top_up(tenant.account.id, amount, idempotency_key=f"t{amount}")
        assert refused.value.code == e.INVALID_AMOUNT
    services.billing.payments.top_up(tenant.account.id, MAX_AMOUNT, idempotency_key="max")
    assert services.billing.payments.balance(tenant.account.id) == MAX_AMOUNT
