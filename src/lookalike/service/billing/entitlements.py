"""The entitlements port answered from subscriptions: state, capacity and QPS of the package held now."""

from __future__ import annotations

from dataclasses import replace

from lookalike.clock import Clock
from lookalike.domain.lifecycle import InstanceState, state_at
from lookalike.domain.models import Instance
from lookalike.service.billing.ports import BillingStore, BillingTransaction
from lookalike.service.entitlements import Availability


class SubscriptionEntitlements:
    def __init__(self, store: BillingStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def availability(self, instance: Instance, tx: BillingTransaction | None = None) -> Availability:
        if tx is None:
            with self._store.reading() as own:
                return self.availability(instance, own)
        now = self._clock.now()
        if instance.status == "released":
            return Availability(InstanceState.RELEASED, 0, 0, None)
        paid_until = instance.expires_at
        state = InstanceState.ACTIVE if paid_until is None else state_at(now, paid_until)
        sub = tx.subscription_at(instance.id, now) or tx.last_subscription(instance.id)
        if sub is None:
            return Availability(state, instance.capacity, instance.search_qps, None)
        return Availability(state, sub.capacity, sub.qps, sub.package_id)

    def capacity_for_adds(self, instance: Instance) -> int:
        """An add must fit the package held now AND every package already paid for a later cycle,
        so a renewal into a smaller package can never start over capacity."""
        now = self._clock.now()
        with self._store.reading() as tx:
            held = tx.subscription_at(instance.id, now)
            capacities = [s.capacity for s in tx.subscriptions_of(instance.id) if s.effective_to > now]
        if held is None and not capacities:
            return instance.capacity
        return min(capacities) if capacities else instance.capacity

    def effective(self, instance: Instance) -> Instance:
        found = self.availability(instance)
        return replace(instance, capacity=found.capacity, search_qps=found.qps, status=found.state.value)
