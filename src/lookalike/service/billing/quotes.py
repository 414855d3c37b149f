"""Quotes: what an order would cost now, priced by the domain's quote functions."""

from __future__ import annotations

from typing import Any

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing import (
    Cycle,
    LineItem,
    Quote,
    quote_buy,
    quote_change,
    quote_renewal,
    quote_trial,
)
from lookalike.domain.billing_records import Subscription
from lookalike.domain.calendar import PeriodUnit
from lookalike.domain.catalogue import Catalogue, Package
from lookalike.domain.errors import LookalikeError
from lookalike.domain.lifecycle import InstanceState, state_at
from lookalike.domain.models import Account
from lookalike.domain.money import format_amount
from lookalike.service.billing.catalogues import Catalogues
from lookalike.service.billing.ownership import owned_instance, required
from lookalike.service.billing.ports import BillingStore, BillingTransaction
from lookalike.storage.accounts_repo import InstanceRepository


def line_json(line: LineItem, exponent: int) -> dict[str, Any]:
    return {
        "description": line.description,
        "package_id": line.package_id,
        "period_start": line.period_start.isoformat(),
        "period_end": line.period_end.isoformat(),
        "proration": None
        if line.proration is None
        else f"{line.proration.numerator}/{line.proration.denominator}",
        "proration_factor": None if line.proration is None else round(float(line.proration), 6),
        "amount": line.amount.amount,
        "amount_text": format_amount(line.amount.amount, line.amount.currency, exponent),
        "currency": line.amount.currency,
    }


def quote_json(quote: Quote, exponent: int) -> dict[str, Any]:
    return {
        "kind": quote.kind,
        "total": quote.total.amount,
        "total_text": format_amount(quote.total.amount, quote.total.currency, exponent),
        "currency": quote.total.currency,
        "effective_at": quote.effective_at.isoformat(),
        "cycle": None
        if quote.new_cycle is None
        else {
            "start": quote.new_cycle.start.isoformat(),
            "end": quote.new_cycle.end.isoformat(),
            "unit": quote.new_cycle.unit.value,
            "count": quote.new_cycle.count,
        },
        "lines": [line_json(line, exponent) for line in quote.lines],
    }


def package_held(catalogue: Catalogue, sub: Subscription) -> Package:
    try:
        return catalogue.get(sub.package_id)
    except LookalikeError:
        raise LookalikeError(
            e.INVALID_PACKAGE,
            f"The current package {sub.package_id!r} is no longer in the catalogue; "
            "renew into a current one.",
        ) from None


class Quotes:
    def __init__(
        self, store: BillingStore, clock: Clock, catalogues: Catalogues, instances: InstanceRepository
    ) -> None:
        self._store = store
        self._clock = clock
        self._catalogues = catalogues
        self._instances = instances

    def quote(
        self,
        account: Account,
        kind: str,
        *,
        package_id: str | None = None,
        unit: str = "month",
        count: int = 1,
        instance_name: str | None = None,
    ) -> Quote:
        with self._store.reading() as tx:
            return self.quote_in(tx, account, kind, package_id, unit, count, instance_name)

    def quote_in(
        self,
        tx: BillingTransaction,
        account: Account,
        kind: str,
        package_id: str | None,
        unit: str,
        count: int,
        instance_name: str | None,
    ) -> Quote:
        """The quote inside the caller's transaction (an order re-prices under its locks)."""
        now = self._clock.now()
        catalogue = self._catalogues.catalogue_for(account.id, tx)
        if kind == "trial":
            return quote_trial(catalogue.trial_package(), now)
        if kind == "buy":
            return quote_buy(
                catalogue.get_for(required(package_id, "package_id"), account.id), unit, count, now
            )
        instance = owned_instance(
            self._instances, account, required(instance_name, "instance"), to_order=True
        )
        stored = self._instances.count_images(instance.id)
        if kind == "renew":
            package = catalogue.get_for(required(package_id, "package_id"), account.id)
            paid_until = instance.expires_at or now
            expired = state_at(now, paid_until) is not InstanceState.ACTIVE
            return quote_renewal(package, unit, count, now, paid_until, expired, stored)
        if kind == "change":
            sub = tx.subscription_at(instance.id, now)
            if sub is None or (instance.expires_at is not None and now >= instance.expires_at):
                raise LookalikeError(
                    e.INSTANCE_STATUS_ERROR, "Only an active instance can change its package."
                )
            old = package_held(catalogue, sub)
            new = catalogue.get_for(required(package_id, "package_id"), account.id)
            cycle = Cycle(sub.cycle_start, sub.cycle_end, PeriodUnit(sub.period_unit), sub.period_count)
            return quote_change(old, new, cycle, now, stored)
        raise LookalikeError(
            e.INVALID_PARAMETER, f"Unknown order kind {kind!r}: buy, trial, renew or change."
        )
