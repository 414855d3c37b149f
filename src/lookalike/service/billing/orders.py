"""Orders that open an instance: a tenant's purchase of a package, and the operator's free grant."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing import quote_buy
from lookalike.domain.calendar import PeriodUnit
from lookalike.domain.catalogue import Package, check_period
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, Instance, ServiceType
from lookalike.domain.validation import validate_instance_name
from lookalike.service.billing.catalogues import Catalogues
from lookalike.service.billing.idempotency import IdempotentCalls
from lookalike.service.billing.ports import BillingStore, BillingTransaction
from lookalike.service.billing.settlement import Settlement
from lookalike.storage.accounts_repo import AccountRepository, InstanceRepository


class Orders:
    def __init__(
        self,
        *,
        store: BillingStore,
        clock: Clock,
        catalogues: Catalogues,
        accounts: AccountRepository,
        instances: InstanceRepository,
        idempotent: IdempotentCalls,
        settlement: Settlement,
    ) -> None:
        self._store = store
        self._clock = clock
        self._catalogues = catalogues
        self._accounts = accounts
        self._instances = instances
        self._idempotent = idempotent
        self._settlement = settlement

    def buy(
        self,
        account: Account,
        name: str,
        package_id: str,
        *,
        unit: str = "month",
        count: int = 1,
        service_type: ServiceType = ServiceType.PRODUCT,
        idempotency_key: str | None,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        """Buy a package: creates the instance. `max_total`: refuse (PriceChanged) if it now costs more.

        `max_total` stays out of the idempotency request hash: a retry of the same choice replays."""
        request = {
            "op": "buy",
            "name": name,
            "package_id": package_id,
            "unit": unit,
            "count": count,
            "service_type": int(service_type),
        }
        validate_instance_name(name)
        check_period(unit, count)

        def work(tx: BillingTransaction) -> dict[str, Any]:
            now = self._clock.now()
            package = self._catalogues.catalogue_for(account.id, tx).get_for(package_id, account.id)
            quote = quote_buy(package, unit, count, now)
            return self._settlement.open_instance(
                tx, account, name, package, quote, service_type, now, max_total=max_total
            )

        return self._idempotent.run(account.id, idempotency_key, request, work)

    def grant(
        self,
        account_id: str,
        name: str,
        *,
        capacity: int,
        qps: int,
        months: int = 12,
        service_type: ServiceType = ServiceType.PRODUCT,
    ) -> Instance:
        """Operator-made instance at no charge: a private package of any size held for `months`."""
        validate_instance_name(name)
        if capacity < 1 or qps < 1:
            raise LookalikeError(e.INVALID_PARAMETER, "Capacity and QPS must be at least 1.")
        account = self._accounts.get_account(account_id)
        if account is None:
            raise LookalikeError(e.ACCOUNT_NOT_FOUND, f"No account {account_id!r}.")
        now = self._clock.now()
        package = Package(
            id=f"grant-{secrets.token_hex(6)}",
            capacity=capacity,
            qps=qps,
            monthly=0,
            yearly=0,
            currency=self._catalogues.currency,
            private_for=account_id,
        )
        quote = quote_buy(package, PeriodUnit.MONTH, months, now)
        with self._store.writing() as tx:
            tx.insert_private_package(package, now)
            body = self._settlement.open_instance(
                tx, account, name, package, replace(quote, kind="grant"), service_type, now
            )
        instance = self._instances.get(body["instance_id"])
        assert instance is not None
        return instance
