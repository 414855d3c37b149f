"""An instance's subscription over time: renewals (the tenant's and automatic ones), package changes,
auto-renew, and the status tenants and the console read."""

from __future__ import annotations

from typing import Any

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing import quote_renewal
from lookalike.domain.billing_records import Subscription
from lookalike.domain.catalogue import check_period
from lookalike.domain.errors import LookalikeError
from lookalike.domain.lifecycle import InstanceState, release_at, state_at
from lookalike.domain.models import Account, Instance
from lookalike.service.billing.catalogues import Catalogues
from lookalike.service.billing.entitlements import SubscriptionEntitlements
from lookalike.service.billing.idempotency import IdempotentCalls
from lookalike.service.billing.ownership import owned_instance
from lookalike.service.billing.ports import BillingStore, BillingTransaction
from lookalike.service.billing.quotes import Quotes
from lookalike.service.billing.settlement import Order, Settlement, new_subscription
from lookalike.storage.accounts_repo import InstanceRepository


class Subscriptions:
    def __init__(
        self,
        *,
        store: BillingStore,
        clock: Clock,
        catalogues: Catalogues,
        instances: InstanceRepository,
        quotes: Quotes,
        idempotent: IdempotentCalls,
        settlement: Settlement,
        entitlements: SubscriptionEntitlements,
    ) -> None:
        self._store = store
        self._clock = clock
        self._catalogues = catalogues
        self._instances = instances
        self._quotes = quotes
        self._idempotent = idempotent
        self._settlement = settlement
        self._entitlements = entitlements

    def renew(
        self,
        account: Account,
        instance_name: str,
        package_id: str,
        *,
        unit: str = "month",
        count: int = 1,
        idempotency_key: str | None,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        """Renew for a period, starting a new cycle; `max_total` (not part of the request hash) refuses a
        higher price than the one confirmed."""
        request = {
            "op": "renew",
            "instance": instance_name,
            "package_id": package_id,
            "unit": unit,
            "count": count,
        }
        check_period(unit, count)
        instance = owned_instance(self._instances, account, instance_name, to_order=True)

        def work(tx: BillingTransaction) -> dict[str, Any]:
            return self._renew_locked(
                tx, account.id, instance.id, package_id, unit, count, automatic=False, max_total=max_total
            )

        return self._idempotent.run(account.id, idempotency_key, request, work)

    def renew_automatically(
        self, account_id: str, instance_id: str, package_id: str, unit: str, count: int, *, key: str
    ) -> dict[str, Any]:
        """The sweep's auto-renew: charges the balance like a tenant's renewal, keyed per cycle end."""
        request = {
            "op": "auto-renew",
            "instance_id": instance_id,
            "package_id": package_id,
            "unit": unit,
            "count": count,
        }

        def work(tx: BillingTransaction) -> dict[str, Any]:
            return self._renew_locked(tx, account_id, instance_id, package_id, unit, count, automatic=True)

        return self._idempotent.run(account_id, key, request, work)

    def _renew_locked(
        self,
        tx: BillingTransaction,
        account_id: str,
        instance_id: str,
        package_id: str,
        unit: str,
        count: int,
        *,
        automatic: bool,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        now = self._clock.now()
        terms = tx.lock_instance(instance_id)
        if terms is None or terms.status == "released":
            raise LookalikeError(e.INVALID_INSTANCE, "The instance has been released.")
        paid_until = terms.paid_until or now
        state = state_at(now, paid_until)
        if state is InstanceState.RELEASED:
            raise LookalikeError(e.INSTANCE_STATUS_ERROR, "The instance is past its retention period.")
        package = self._catalogues.catalogue_for(account_id, tx).get_for(package_id, account_id)
        stored = self._instances.count_images(instance_id)
        if automatic and terms.status == "active":
            # Auto-renew at expiry keeps the cycles seamless: the new one starts where the old one ended,
            # however late the sweep ran.
            quote = quote_renewal(package, unit, count, paid_until, paid_until, True, stored)
        else:
            expired = state is not InstanceState.ACTIVE
            quote = quote_renewal(package, unit, count, now, paid_until, expired, stored)
        cycle = quote.new_cycle
        assert cycle is not None

        def start_cycle(order_id: str) -> None:
            tx.insert_subscription(new_subscription(instance_id, order_id, package, quote, cycle.start))
            tx.set_paid_until(instance_id, cycle.end, "active")

        order = Order(
            account_id,
            instance_id,
            quote,
            now,
            event="renewed",
            event_data={
                "package_id": package.id,
                "automatic": automatic,
                "cycle_start": cycle.start.isoformat(),
                "cycle_end": cycle.end.isoformat(),
            },
            max_total=max_total,
        )
        return self._settlement.settle(tx, order, start_cycle)

    def change(
        self,
        account: Account,
        instance_name: str,
        package_id: str,
        *,
        idempotency_key: str | None,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        """Upgrade or downgrade at once; the cycle stays; the prorated difference is charged or refunded.
        `max_total` (not in the request hash) as in `buy`: a smaller refund than quoted is refused too."""
        request = {"op": "change", "instance": instance_name, "package_id": package_id}
        instance = owned_instance(self._instances, account, instance_name, to_order=True)

        def work(tx: BillingTransaction) -> dict[str, Any]:
            now = self._clock.now()
            tx.lock_instance(instance.id)
            quote = self._quotes.quote_in(tx, account, "change", package_id, "month", 1, instance_name)
            held = tx.subscription_at(instance.id, now)
            assert held is not None
            package = self._catalogues.catalogue_for(account.id, tx).get_for(package_id, account.id)

            def swap_package(order_id: str) -> None:
                # The old package stops the moment the new one starts; the cycle's bounds stay.
                tx.end_subscription(held.id, now)
                tx.insert_subscription(
                    Subscription(
                        id=0,
                        instance_id=instance.id,
                        order_id=order_id,
                        package_id=package.id,
                        capacity=package.capacity,
                        qps=package.qps,
                        cycle_price=package.price(held.period_unit, held.period_count).amount,
                        currency=package.currency,
                        cycle_start=held.cycle_start,
                        cycle_end=held.cycle_end,
                        period_unit=held.period_unit,
                        period_count=held.period_count,
                        effective_from=now,
                        effective_to=held.cycle_end,
                    )
                )

            order = Order(
                account.id,
                instance.id,
                quote,
                now,
                event="package_changed",
                event_data={"from": held.package_id, "to": package.id},
                max_total=max_total,
            )
            return self._settlement.settle(tx, order, swap_package)

        return self._idempotent.run(account.id, idempotency_key, request, work)

    def set_auto_renew(
        self,
        account: Account,
        instance_name: str,
        enabled: bool,
        *,
        unit: str = "month",
        count: int = 1,
    ) -> dict[str, Any]:
        """Renew automatically at expiry, for `count` `unit`s of the package held then (change the package
        first to renew into another one)."""
        instance = owned_instance(self._instances, account, instance_name, to_order=True)
        if enabled:
            check_period(unit, count)
        with self._store.writing() as tx:
            tx.set_auto_renew(instance.id, enabled, unit if enabled else None, count if enabled else None)
        return {"instance": instance_name, "auto_renew": enabled, "unit": unit, "count": count}

    def instance_status(self, instance: Instance) -> dict[str, Any]:
        """Package, period, state and usage of an instance, as tenants and the console see them."""
        with self._store.reading() as tx:
            found = self._entitlements.availability(instance, tx)
            now = self._clock.now()
            sub = tx.subscription_at(instance.id, now) or tx.last_subscription(instance.id)
            upcoming = [s for s in tx.subscriptions_of(instance.id) if s.effective_from > now]
            terms = tx.instance_terms(instance.id)
        return {
            "state": found.state.value,
            "package_id": found.package_id,
            "capacity": found.capacity,
            "qps": found.qps,
            "cycle_start": sub.cycle_start.isoformat() if sub else None,
            "cycle_end": sub.cycle_end.isoformat() if sub else None,
            "paid_until": instance.expires_at.isoformat() if instance.expires_at else None,
            "release_at": release_at(instance.expires_at).isoformat() if instance.expires_at else None,
            "auto_renew": terms.auto_renew if terms is not None else False,
            "upcoming": [
                {
                    "package_id": s.package_id,
                    "from": s.effective_from.isoformat(),
                    "to": s.effective_to.isoformat(),
                }
                for s in upcoming
            ],
            "usage": self._instances.count_images(instance.id),
        }
