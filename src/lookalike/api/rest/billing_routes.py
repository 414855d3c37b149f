"""Billing endpoints: catalogue, quotes, orders, ledger, events (tenant); top-ups, private quotations,
trial seats, catalogue reload, demo clock (operator).

Money-changing calls need an `Idempotency-Key` header."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from lookalike.api.rest import requests as r
from lookalike.api.rest.auth import AccountDep, AdminDep
from lookalike.api.shared.dependencies import Accounts, Billing, ClockDep, Lifecycle
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import ServiceType
from lookalike.domain.money import parse_decimal_amount
from lookalike.service.billing import quote_json

router = APIRouter(prefix="/v1")


def idempotency_key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


def service_type(text: str | None) -> ServiceType:
    value = (text or "product").lower()
    if value not in ("product", "generic"):
        raise LookalikeError(e.INVALID_PARAMETER, "service_type is 'product' or 'generic'.")
    return ServiceType.PRODUCT if value == "product" else ServiceType.GENERIC


def amount_minor(minor: int | None, text: str | None, name: str, exponent: int) -> int:
    """Amounts travel as decimal strings ("361.29") or as integer minor units in `<name>_minor`."""
    if minor is not None:
        return minor
    if text is None:
        raise LookalikeError(e.INVALID_AMOUNT, f"{name} is required (a decimal string, or {name}_minor).")
    try:
        return parse_decimal_amount(text, exponent)
    except ValueError as exc:
        raise LookalikeError(e.INVALID_AMOUNT, f"{name}: {exc}") from None


@router.get("/billing/catalogue", tags=["billing"])
def catalogue(account: AccountDep, billing: Billing) -> dict[str, Any]:
    found = billing.catalogues.catalogue_for(account.id)
    body = found.to_dict()
    body["packages"] = [p.to_dict(found.exponent) for p in found.visible_to(account.id)]
    body["trial_seats"] = billing.trials.seats()
    return body


@router.post("/billing/quote", tags=["billing"], openapi_extra=r.Quote.openapi())
async def quote(
    account: AccountDep, billing: Billing, body: Annotated[r.Quote, Depends(r.Quote.parsed)]
) -> dict[str, Any]:
    """Price an order before paying: kind = buy | trial | renew | change."""
    found = await run_in_threadpool(
        lambda: billing.quotes.quote(
            account,
            body.kind or "",
            package_id=body.package_id,
            unit=body.unit,
            count=body.count,
            instance_name=body.instance,
        )
    )
    return quote_json(found, billing.catalogues.exponent)


@router.post("/orders", tags=["billing"], openapi_extra=r.Order.openapi())
async def place_order(
    request: Request, account: AccountDep, billing: Billing, body: Annotated[r.Order, Depends(r.Order.parsed)]
) -> dict[str, Any]:
    """Buy (creates the instance), trial, renew or change; replays the first result for a repeated key."""
    key = idempotency_key(request)
    kind, unit, count, limit = body.kind or "", body.unit, body.count, body.max_total
    package_id = body.package_id or ""
    instance = body.instance or ""
    if kind == "buy":
        kind_of_service = service_type(body.service_type)
        return await run_in_threadpool(
            lambda: billing.orders.buy(
                account,
                instance,
                package_id,
                unit=unit,
                count=count,
                service_type=kind_of_service,
                idempotency_key=key,
                max_total=limit,
            )
        )
    if kind == "trial":
        kind_of_service = service_type(body.service_type)
        return await run_in_threadpool(
            lambda: billing.trials.trial(account, instance, service_type=kind_of_service, idempotency_key=key)
        )
    if kind == "renew":
        return await run_in_threadpool(
            lambda: billing.subscriptions.renew(
                account, instance, package_id, unit=unit, count=count, idempotency_key=key, max_total=limit
            )
        )
    if kind == "change":
        return await run_in_threadpool(
            lambda: billing.subscriptions.change(
                account, instance, package_id, idempotency_key=key, max_total=limit
            )
        )
    raise LookalikeError(e.INVALID_PARAMETER, "kind is buy, trial, renew or change.")


@router.get("/orders", tags=["billing"])
def list_orders(account: AccountDep, billing: Billing) -> dict[str, Any]:
    return {"orders": billing.receipts.orders(None if account.is_admin else account.id)}


@router.get("/billing/ledger", tags=["billing"])
def ledger(account: AccountDep, billing: Billing) -> dict[str, Any]:
    return billing.payments.ledger(account.id)


@router.get("/events", tags=["billing"])
def events(account: AccountDep, billing: Billing, query: Annotated[r.EventsQuery, Query()]) -> dict[str, Any]:
    return {"events": billing.receipts.events(None if account.is_admin else account.id, query.after)}


@router.get("/instances/{name}/billing", tags=["billing"])
def instance_billing(name: str, account: AccountDep, accounts: Accounts, billing: Billing) -> dict[str, Any]:
    instance = accounts.instance_for(account, name)
    return {"name": name, **billing.subscriptions.instance_status(instance)}


@router.post("/instances/{name}/auto-renew", tags=["billing"], openapi_extra=r.AutoRenew.openapi())
def auto_renew(
    name: str,
    account: AccountDep,
    billing: Billing,
    body: Annotated[r.AutoRenew, Depends(r.AutoRenew.parsed)],
) -> dict[str, Any]:
    return billing.subscriptions.set_auto_renew(account, name, body.enabled, unit=body.unit, count=body.count)


# --- operator ---
@router.post("/admin/topups", tags=["admin"], openapi_extra=r.TopUp.openapi())
async def top_up(
    request: Request, _admin: AdminDep, billing: Billing, body: Annotated[r.TopUp, Depends(r.TopUp.parsed)]
) -> dict[str, Any]:
    amount = amount_minor(body.amount_minor, body.amount, "amount", billing.catalogues.exponent)
    return await run_in_threadpool(
        lambda: billing.payments.top_up(
            body.account_id or "",
            amount,
            reference=body.reference,
            idempotency_key=idempotency_key(request),
        )
    )


@router.post("/admin/private-packages", tags=["admin"], openapi_extra=r.PrivatePackage.openapi())
def private_package(
    _admin: AdminDep, billing: Billing, body: Annotated[r.PrivatePackage, Depends(r.PrivatePackage.parsed)]
) -> dict[str, Any]:
    assert body.capacity is not None and body.qps is not None  # the model refused a body without them
    monthly = amount_minor(body.monthly_minor, body.monthly, "monthly", billing.catalogues.exponent)
    yearly_given = body.yearly is not None or body.yearly_minor is not None
    yearly = (
        amount_minor(body.yearly_minor, body.yearly, "yearly", billing.catalogues.exponent)
        if yearly_given
        else monthly * 10
    )
    package = billing.catalogues.create_private_package(
        body.account_id or "",
        capacity=body.capacity,
        qps=body.qps,
        monthly=monthly,
        yearly=yearly,
        package_id=body.package_id,
    )
    return {**package.to_dict(billing.catalogues.exponent), "private_for": package.private_for}


@router.put("/admin/trial-seats", tags=["admin"], openapi_extra=r.TrialSeats.openapi())
def trial_seats(
    _admin: AdminDep, billing: Billing, body: Annotated[r.TrialSeats, Depends(r.TrialSeats.parsed)]
) -> dict[str, int]:
    assert body.total is not None  # the model refused a body without it
    return billing.trials.set_seats(body.total)


@router.post("/admin/catalogue/reload", tags=["admin"], openapi_extra=r.NoFields.openapi())
def reload_catalogue(_admin: AdminDep, billing: Billing) -> dict[str, Any]:
    found = billing.catalogues.reload()
    return {"reloaded": True, "packages": len(found.packages), "currency": found.currency}


@router.post("/admin/lifecycle/sweep", tags=["admin"], openapi_extra=r.NoFields.openapi())
def sweep(_admin: AdminDep, lifecycle: Lifecycle) -> dict[str, Any]:
    report = lifecycle.sweep()
    return report.__dict__


@router.post("/admin/clock/advance", tags=["admin"], openapi_extra=r.AdvanceClock.openapi())
def advance_clock(
    _admin: AdminDep,
    lifecycle: Lifecycle,
    clock: ClockDep,
    body: Annotated[r.AdvanceClock, Depends(r.AdvanceClock.parsed)],
) -> dict[str, Any]:
    """Demo servers only (`serve --demo-clock`): move the server's clock forward, then sweep."""
    assert body.seconds is not None  # the model refused a body without it
    try:
        step = timedelta(seconds=body.seconds)
    except OverflowError:
        raise LookalikeError(e.INVALID_PARAMETER, "seconds is too large.") from None
    report = lifecycle.advance_clock(step)
    return {"now": clock.now().isoformat(), "sweep": report.__dict__}
