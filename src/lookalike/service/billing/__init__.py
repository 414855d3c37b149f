"""Billing: the catalogue, quotes, orders, subscriptions and changes, trials, payments and receipts, each a
small class over one billing store; and the entitlements the data plane reads.

Every money-changing call runs in ONE store transaction that also records its idempotency key
(`idempotency.IdempotentCalls`), so a call either happened completely (and replays) or not at all. Balance
checks and charges happen inside that transaction with the account locked."""

from __future__ import annotations

from dataclasses import dataclass

from lookalike.clock import Clock
from lookalike.domain.models import Instance, ServiceType
from lookalike.service.billing.catalogues import Catalogues, CatalogueSource
from lookalike.service.billing.entitlements import SubscriptionEntitlements
from lookalike.service.billing.idempotency import IdempotentCalls
from lookalike.service.billing.orders import Orders
from lookalike.service.billing.payments import PaymentProvider, Payments
from lookalike.service.billing.ports import BillingStore
from lookalike.service.billing.quotes import Quotes, quote_json
from lookalike.service.billing.receipts import Receipts
from lookalike.service.billing.settlement import Settlement
from lookalike.service.billing.subscriptions import Subscriptions
from lookalike.service.billing.trials import DEFAULT_TRIAL_SEATS, Trials
from lookalike.storage.accounts_repo import AccountRepository, InstanceRepository

__all__ = ["Billing", "CatalogueSource", "PaymentProvider", "build_billing", "quote_json"]


@dataclass(frozen=True)
class Billing:
    catalogues: Catalogues
    quotes: Quotes
    orders: Orders
    subscriptions: Subscriptions
    trials: Trials
    payments: Payments
    receipts: Receipts
    entitlements: SubscriptionEntitlements

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
        """`orders.grant`, also here because the Alibaba SDK compatibility tests (which must stay unchanged)
        open their instances with `services.billing.grant`."""
        return self.orders.grant(
            account_id, name, capacity=capacity, qps=qps, months=months, service_type=service_type
        )


def build_billing(
    *,
    store: BillingStore,
    clock: Clock,
    catalogue: CatalogueSource,
    accounts: AccountRepository,
    instances: InstanceRepository,
    payments: PaymentProvider | None = None,
    default_trial_seats: int = DEFAULT_TRIAL_SEATS,
) -> Billing:
    catalogues = Catalogues(store, clock, catalogue, accounts)
    idempotent = IdempotentCalls(store, clock)
    settlement = Settlement(catalogues)
    quotes = Quotes(store, clock, catalogues, instances)
    entitlements = SubscriptionEntitlements(store, clock)
    return Billing(
        catalogues=catalogues,
        quotes=quotes,
        orders=Orders(
            store=store,
            clock=clock,
            catalogues=catalogues,
            accounts=accounts,
            instances=instances,
            idempotent=idempotent,
            settlement=settlement,
        ),
        subscriptions=Subscriptions(
            store=store,
            clock=clock,
            catalogues=catalogues,
            instances=instances,
            quotes=quotes,
            idempotent=idempotent,
            settlement=settlement,
            entitlements=entitlements,
        ),
        trials=Trials(
            store=store,
            clock=clock,
            catalogues=catalogues,
            idempotent=idempotent,
            settlement=settlement,
            default_seats=default_trial_seats,
        ),
        payments=Payments(
            store=store,
            clock=clock,
            catalogues=catalogues,
            accounts=accounts,
            idempotent=idempotent,
            provider=payments or PaymentProvider(),
        ),
        receipts=Receipts(store, accounts, instances),
        entitlements=entitlements,
    )
