"""What was ordered and what happened: orders (a receipt each) and the account's event feed."""

from __future__ import annotations

from typing import Any

from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.billing.ports import BillingStore
from lookalike.storage.accounts_repo import AccountRepository, InstanceRepository


class Receipts:
    def __init__(
        self, store: BillingStore, accounts: AccountRepository, instances: InstanceRepository
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._instances = instances

    def orders(self, account_id: str | None) -> list[dict[str, Any]]:
        with self._store.reading() as tx:
            return tx.list_orders(account_id)

    def order(self, account: Account, order_id: str) -> dict[str, Any]:
        """One order with its account's and instance's names (for a receipt); another tenant's order
        answers like an unknown one, the operator sees every order."""
        with self._store.reading() as tx:
            found = tx.get_order(order_id)
        if found is None or (found["account_id"] != account.id and not account.is_admin):
            raise LookalikeError("OrderNotFound", f"No order {order_id!r}.", status=404)
        owner = self._accounts.get_account(found["account_id"])
        instance = self._instances.get(found["instance_id"]) if found["instance_id"] else None
        return {
            **found,
            "account_name": owner.name if owner else found["account_id"],
            "instance_name": instance.name if instance else None,
        }

    def events(self, account_id: str | None, after_id: int = 0) -> list[dict[str, Any]]:
        with self._store.reading() as tx:
            return tx.list_events(account_id, after_id)

    def recent_events(self, account_id: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest events first (the console's feed); `events` pages forward for API clients."""
        with self._store.reading() as tx:
            return tx.recent_events(account_id, limit)
