"""Money in: top-ups recorded in the append-only ledger, the balance, and the ledger as tenants read it."""

from __future__ import annotations

import secrets
from typing import Any

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.money import MAX_AMOUNT, Money, format_amount
from lookalike.service.billing.catalogues import Catalogues
from lookalike.service.billing.idempotency import IdempotentCalls
from lookalike.service.billing.ports import BillingStore, BillingTransaction
from lookalike.storage.accounts_repo import AccountRepository


class PaymentProvider:
    """Where top-up money comes from. For now the operator records payments received out of band;
    a card or invoice provider plugs in here and returns its own reference."""

    def confirm_top_up(self, account_id: str, amount: Money, reference: str | None) -> str:
        return reference or f"manual-{secrets.token_hex(6)}"


class Payments:
    def __init__(
        self,
        *,
        store: BillingStore,
        clock: Clock,
        catalogues: Catalogues,
        accounts: AccountRepository,
        idempotent: IdempotentCalls,
        provider: PaymentProvider,
    ) -> None:
        self._store = store
        self._clock = clock
        self._catalogues = catalogues
        self._accounts = accounts
        self._idempotent = idempotent
        self._provider = provider

    def top_up(
        self, account_id: str, amount: int, *, reference: str | None = None, idempotency_key: str | None
    ) -> dict[str, Any]:
        if amount <= 0 or amount > MAX_AMOUNT:
            raise LookalikeError(
                e.INVALID_AMOUNT, f"A top-up is a positive amount of minor units, at most {MAX_AMOUNT}."
            )
        if self._accounts.get_account(account_id) is None:
            raise LookalikeError(e.ACCOUNT_NOT_FOUND, f"No account {account_id!r}.")
        currency = self._catalogues.currency
        request = {"op": "topup", "account_id": account_id, "amount": amount, "reference": reference}

        def work(tx: BillingTransaction) -> dict[str, Any]:
            now = self._clock.now()
            confirmed = self._provider.confirm_top_up(account_id, Money(amount, currency), reference)
            order_id = tx.new_order_id()
            receipt = {
                "kind": "topup",
                "total": amount,
                "currency": currency,
                "reference": confirmed,
                "total_text": format_amount(amount, currency, self._catalogues.exponent),
                "lines": [],
            }
            tx.insert_order(
                order_id=order_id,
                account_id=account_id,
                instance_id=None,
                kind="topup",
                amount=amount,
                currency=currency,
                receipt=receipt,
                now=now,
            )
            tx.append_ledger(
                account_id=account_id,
                kind="topup",
                amount=amount,
                currency=currency,
                order_id=order_id,
                now=now,
                reference=confirmed,
            )
            tx.add_event(
                account_id=account_id,
                instance_id=None,
                kind="topped_up",
                data={"order_id": order_id, "amount": amount},
                now=now,
            )
            return {"order_id": order_id, **receipt, "balance": tx.balance(account_id, currency)}

        # Top-ups are keyed under the paying account, so one key cannot collide across tenants.
        return self._idempotent.run(account_id, idempotency_key, request, work)

    def balance(self, account_id: str) -> int:
        with self._store.reading() as tx:
            return tx.balance(account_id, self._catalogues.currency)

    def ledger(self, account_id: str) -> dict[str, Any]:
        currency = self._catalogues.currency
        with self._store.reading() as tx:
            entries = tx.ledger_entries(account_id)
            total = tx.balance(account_id, currency)
        return {
            "balance": total,
            "balance_text": format_amount(total, currency, self._catalogues.exponent),
            "currency": currency,
            "entries": entries,
        }
