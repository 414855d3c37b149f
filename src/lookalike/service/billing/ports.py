"""What billing needs from storage: transactions over its records (implemented by
lookalike.storage.billing_repo.SqlBillingStore)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from lookalike.domain.billing_records import InstanceTerms, StoredResponse, Subscription, SweepCandidate
from lookalike.domain.catalogue import Package
from lookalike.domain.models import ServiceType


class BillingTransaction(Protocol):
    """Billing's records inside one transaction. In a write transaction the `lock_*` methods hold their row
    until it ends; `move_status` is a conditional update of which one racing writer wins."""

    def new_order_id(self) -> str: ...

    def lock_account(self, account_id: str) -> None: ...

    def lock_instance(self, instance_id: str) -> InstanceTerms | None: ...

    def instance_terms(self, instance_id: str) -> InstanceTerms | None: ...

    def find_idempotent(self, account_id: str, key: str) -> StoredResponse | None: ...

    def store_idempotent(
        self, account_id: str, key: str, request_hash: str, status: int, body: dict[str, Any], now: datetime
    ) -> None: ...

    def balance(self, account_id: str, currency: str) -> int: ...

    def append_ledger(
        self,
        *,
        account_id: str,
        kind: str,
        amount: int,
        currency: str,
        order_id: str | None,
        now: datetime,
        reference: str | None = None,
    ) -> int: ...

    def ledger_entries(self, account_id: str, limit: int = 200) -> list[dict[str, Any]]: ...

    def insert_order(
        self,
        *,
        order_id: str,
        account_id: str,
        instance_id: str | None,
        kind: str,
        amount: int,
        currency: str,
        receipt: dict[str, Any],
        now: datetime,
    ) -> None: ...

    def list_orders(self, account_id: str | None, limit: int = 200) -> list[dict[str, Any]]: ...

    def get_order(self, order_id: str) -> dict[str, Any] | None: ...

    def insert_subscription(self, row: Subscription) -> None: ...

    def subscriptions_of(self, instance_id: str) -> list[Subscription]: ...

    def subscription_at(self, instance_id: str, moment: datetime) -> Subscription | None: ...

    def last_subscription(self, instance_id: str) -> Subscription | None: ...

    def end_subscription(self, subscription_id: int, moment: datetime) -> None: ...

    def insert_instance(
        self,
        *,
        account_id: str,
        name: str,
        service_type: ServiceType,
        capacity: int,
        search_qps: int,
        paid_until: datetime,
        now: datetime,
    ) -> str: ...

    def set_paid_until(self, instance_id: str, paid_until: datetime, status: str) -> None: ...

    def move_status(self, instance_id: str, from_status: str, to_status: str, now: datetime) -> bool: ...

    def set_auto_renew(
        self, instance_id: str, enabled: bool, unit: str | None, count: int | None
    ) -> None: ...

    def instances_to_sweep(self) -> list[SweepCandidate]: ...

    def purge_instance_data(self, instance_id: str) -> None: ...

    def insert_private_package(self, package: Package, now: datetime) -> None: ...

    def private_packages_for(self, account_id: str | None) -> list[Package]: ...

    def trial_seats(self, default_total: int) -> tuple[int, int]: ...

    def set_trial_seats_total(self, total: int) -> None: ...

    def claim_trial_seat(self, default_total: int) -> bool: ...

    def has_trial(self, account_id: str) -> bool: ...

    def record_trial(self, account_id: str, instance_id: str, now: datetime) -> None: ...

    def add_event(
        self,
        *,
        account_id: str,
        instance_id: str | None,
        kind: str,
        data: dict[str, Any],
        now: datetime,
        dedupe_key: str | None = None,
    ) -> bool: ...

    def list_events(
        self, account_id: str | None, after_id: int = 0, limit: int = 200
    ) -> list[dict[str, Any]]: ...

    def recent_events(self, account_id: str | None, limit: int) -> list[dict[str, Any]]: ...


class BillingStore(Protocol):
    def reading(self) -> AbstractContextManager[BillingTransaction]:
        """A read-only transaction."""
        ...

    def writing(self) -> AbstractContextManager[BillingTransaction]:
        """A write transaction: all or nothing; a unique key a concurrent writer took first raises
        lookalike.domain.billing_records.DuplicateRecord."""
        ...
