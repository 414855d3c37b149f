"""The free one-month trial: once per account, while the operator's trial seats last."""

from __future__ import annotations

from typing import Any

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing import quote_trial
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, ServiceType
from lookalike.domain.validation import validate_instance_name
from lookalike.service.billing.catalogues import Catalogues
from lookalike.service.billing.idempotency import IdempotentCalls
from lookalike.service.billing.ports import BillingStore, BillingTransaction
from lookalike.service.billing.settlement import Settlement

DEFAULT_TRIAL_SEATS = 100


class Trials:
    def __init__(
        self,
        *,
        store: BillingStore,
        clock: Clock,
        catalogues: Catalogues,
        idempotent: IdempotentCalls,
        settlement: Settlement,
        default_seats: int = DEFAULT_TRIAL_SEATS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._catalogues = catalogues
        self._idempotent = idempotent
        self._settlement = settlement
        self._default_seats = default_seats

    def trial(
        self,
        account: Account,
        name: str,
        *,
        service_type: ServiceType = ServiceType.PRODUCT,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """Open an instance on the trial package for its first month, free."""
        request = {"op": "trial", "name": name, "service_type": int(service_type)}
        validate_instance_name(name)

        def work(tx: BillingTransaction) -> dict[str, Any]:
            now = self._clock.now()
            package = self._catalogues.public.trial_package()
            quote = quote_trial(package, now)
            if tx.has_trial(account.id):
                raise LookalikeError(e.TRIAL_UNAVAILABLE, "This account has already used its free trial.")
            if not tx.claim_trial_seat(self._default_seats):
                raise LookalikeError(
                    e.TRIAL_UNAVAILABLE, "No free-trial seats are left; buy a package instead."
                )
            body = self._settlement.open_instance(tx, account, name, package, quote, service_type, now)
            tx.record_trial(account.id, body["instance_id"], now)
            tx.append_ledger(
                account_id=account.id,
                kind="trial",
                amount=0,
                currency=package.currency,
                order_id=body["order_id"],
                now=now,
            )
            return body

        return self._idempotent.run(account.id, idempotency_key, request, work)

    def set_seats(self, total: int) -> dict[str, int]:
        """Set how many trial seats there are in all; seats already taken stay taken."""
        if total < 0:
            raise LookalikeError(e.INVALID_PARAMETER, "Trial seats cannot be negative.")
        with self._store.writing() as tx:
            _, used = tx.trial_seats(self._default_seats)
            if total < used:
                # A total equal to `used` is how the trial is closed.
                raise LookalikeError(
                    e.INVALID_PARAMETER, f"{used} trial seats are already used; the total cannot be lower."
                )
            tx.set_trial_seats_total(total)
        return {"total": total, "used": used, "left": max(0, total - used)}

    def seats(self) -> dict[str, int]:
        with self._store.reading() as tx:
            total, used = tx.trial_seats(self._default_seats)
        return {"total": total, "used": used, "left": max(0, total - used)}

    def taken(self, account_id: str) -> bool:
        """Whether this account has already had its one free trial."""
        with self._store.reading() as tx:
            return tx.has_trial(account_id)
