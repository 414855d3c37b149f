"""Settling an order, said once: charge (or refund) the balance, record the order and its receipt, apply the
subscription change, append the event. Buy, trial, grant, renew and change differ only in the change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lookalike.domain import errors as e
from lookalike.domain.billing import Quote
from lookalike.domain.billing_records import Subscription
from lookalike.domain.catalogue import Package
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, ServiceType
from lookalike.domain.money import format_amount
from lookalike.service.billing.catalogues import Catalogues
from lookalike.service.billing.ports import BillingTransaction
from lookalike.service.billing.quotes import quote_json


def new_subscription(
    instance_id: str, order_id: str, package: Package, quote: Quote, effective_from: datetime
) -> Subscription:
    """The subscription a quote with a new cycle (buy, trial, grant, renew) starts."""
    cycle = quote.new_cycle
    assert cycle is not None
    return Subscription(
        id=0,
        instance_id=instance_id,
        order_id=order_id,
        package_id=package.id,
        capacity=package.capacity,
        qps=package.qps,
        cycle_price=package.price(cycle.unit, cycle.count).amount,
        currency=package.currency,
        cycle_start=cycle.start,
        cycle_end=cycle.end,
        period_unit=cycle.unit.value,
        period_count=cycle.count,
        effective_from=effective_from,
        effective_to=cycle.end,
    )


@dataclass(frozen=True)
class Order:
    """An order about to be settled: who pays what for which instance, and the event it leaves."""

    account_id: str
    instance_id: str | None
    quote: Quote
    now: datetime
    event: str
    event_data: dict[str, Any] = field(default_factory=dict)
    max_total: int | None = None  # the total the customer confirmed; a higher one is refused whole


class Settlement:
    def __init__(self, catalogues: Catalogues) -> None:
        self._catalogues = catalogues

    def settle(
        self, tx: BillingTransaction, order: Order, change: Callable[[str], None] = lambda _order_id: None
    ) -> dict[str, Any]:
        """Charge, apply `change(order_id)`, record the order and its event; the order's receipt as JSON."""
        order_id = tx.new_order_id()
        self._charge(tx, order, order_id)
        change(order_id)
        receipt = quote_json(order.quote, self._catalogues.exponent)
        tx.insert_order(
            order_id=order_id,
            account_id=order.account_id,
            instance_id=order.instance_id,
            kind=order.quote.kind,
            amount=order.quote.total.amount,
            currency=order.quote.total.currency,
            receipt=receipt,
            now=order.now,
        )
        tx.add_event(
            account_id=order.account_id,
            instance_id=order.instance_id,
            kind=order.event,
            data={"order_id": order_id, **order.event_data},
            now=order.now,
        )
        return {"order_id": order_id, "instance_id": order.instance_id, **receipt}

    def open_instance(
        self,
        tx: BillingTransaction,
        account: Account,
        name: str,
        package: Package,
        quote: Quote,
        service_type: ServiceType,
        now: datetime,
        *,
        max_total: int | None = None,
    ) -> dict[str, Any]:
        """Create the instance holding `package` for the quote's new cycle, and settle its order."""
        assert quote.new_cycle is not None
        instance_id = tx.insert_instance(
            account_id=account.id,
            name=name,
            service_type=service_type,
            capacity=package.capacity,
            search_qps=package.qps,
            paid_until=quote.new_cycle.end,
            now=now,
        )
        order = Order(
            account.id,
            instance_id,
            quote,
            now,
            event="instance_created",
            event_data={"name": name, "package_id": package.id},
            max_total=max_total,
        )
        body = self.settle(
            tx,
            order,
            lambda order_id: tx.insert_subscription(
                new_subscription(instance_id, order_id, package, quote, now)
            ),
        )
        return {**body, "instance": name}

    def _charge(self, tx: BillingTransaction, order: Order, order_id: str) -> None:
        """Apply an order's money: a charge needs the balance (no overdraft); a refund credits it.

        The order was re-priced inside this transaction (proration runs by the second, the catalogue may
        have been reloaded): a total above `max_total` is refused whole, so nobody pays more than the price
        they agreed to."""
        amount = order.quote.total.amount
        currency = order.quote.total.currency
        exponent = self._catalogues.exponent
        if order.max_total is not None and amount > order.max_total:
            raise LookalikeError(
                e.PRICE_CHANGED,
                f"The price changed since the quote: the order now comes to "
                f"{format_amount(amount, currency, exponent)} {currency}, not the "
                f"{format_amount(order.max_total, currency, exponent)} {currency} you were quoted. "
                "Nothing was charged; review the new price and confirm again.",
            )
        if amount > 0:
            balance = tx.balance(order.account_id, currency)
            if balance < amount:
                raise LookalikeError(
                    e.INSUFFICIENT_BALANCE,
                    f"The order costs {format_amount(amount, currency, exponent)} "
                    f"{currency} but the balance is {format_amount(balance, currency, exponent)}.",
                )
        if amount == 0:
            return
        kind, event = ("charge", "charged") if amount > 0 else ("refund", "refunded")
        # The ledger records money into the balance: a charge is negative, a refund positive.
        tx.append_ledger(
            account_id=order.account_id,
            kind=kind,
            amount=-amount,
            currency=currency,
            order_id=order_id,
            now=order.now,
        )
        tx.add_event(
            account_id=order.account_id,
            instance_id=None,
            kind=event,
            data={"order_id": order_id, "amount": abs(amount)},
            now=order.now,
        )
