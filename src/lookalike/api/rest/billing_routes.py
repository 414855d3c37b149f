"""Billing endpoints: catalogue, quotes, orders, ledger, events (tenant); top-ups, private quotations,
trial seats, catalogue reload, demo clock (operator).

Money-changing calls need an `Idempotency-Key` header."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from lookalike.api.rest.auth import admin_account, current_account, services
from lookalike.api.rest.payload import Payload, read_payload
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, ServiceType
from lookalike.domain.money import parse_decimal_amount
from lookalike.service.billing import quote_json

router = APIRouter(prefix="/v1")
AccountDep = Annotated[Account, Depends(current_account)]
AdminDep = Annotated[Account, Depends(admin_account)]


def idempotency_key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


def service_type(payload: Payload) -> ServiceType:
    value = (payload.text("service_type") or "product").lower()
    if value not in ("product", "generic"):
        raise LookalikeError(e.INVALID_PARAMETER, "service_type is 'product' or 'generic'.")
    return ServiceType.PRODUCT if value == "product" else ServiceType.GENERIC


def period(payload: Payload) -> tuple[str, int]:
    count = payload.integer("count")
    return (payload.text("unit") or "month").lower(), 1 if count is None else count


def amount_minor(payload: Payload, name: str, exponent: int) -> int:
    """Amounts travel as decimal strings ("361.29") or as integer minor units in `<name>_minor`."""
    minor = payload.integer(f"{name}_minor", code=e.INVALID_AMOUNT)
    if minor is not None:
        return minor
    text = payload.text(name)
    if text is None:
        raise LookalikeError(e.INVALID_AMOUNT, f"{name} is required (a decimal string, or {name}_minor).")
    try:
        return parse_decimal_amount(text, exponent)
    except ValueError as exc:
        raise LookalikeError(e.INVALID_AMOUNT, f"{name}: {exc}") from None


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}")


def max_total(payload: Payload) -> int | None:
    """The quoted total the client agreed to, in integer minor units (negative for a refund); the order is
    refused (PriceChanged) if it now costs more. Fractions are refused rather than truncated."""
    value = payload.fields.get("max_total")
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value)
    raise LookalikeError(
        e.INVALID_AMOUNT,
        f"max_total is an integer of minor units (25806 for 258.06), got {str(value)[:40]!r}.",
    )


@router.get("/billing/catalogue", tags=["billing"])
def catalogue(request: Request, account: AccountDep) -> dict[str, Any]:
    billing = services(request).billing
    found = billing.catalogues.catalogue_for(account.id)
    body = found.to_dict()
    body["packages"] = [p.to_dict(found.exponent) for p in found.visible_to(account.id)]
    body["trial_seats"] = billing.trials.seats()
    return body


@router.post("/billing/quote", tags=["billing"])
async def quote(request: Request, account: AccountDep) -> dict[str, Any]:
    """Price an order before paying: kind = buy | trial | renew | change."""
    payload = await read_payload(request)
    unit, count = period(payload)
    billing = services(request).billing
    found = await run_in_threadpool(
        lambda: billing.quotes.quote(
            account,
            payload.text("kind") or "",
            package_id=payload.text("package_id"),
            unit=unit,
            count=count,
            instance_name=payload.text("instance"),
        )
    )
    return quote_json(found, billing.catalogues.exponent)


@router.post("/orders", tags=["billing"])
async def place_order(request: Request, account: AccountDep) -> dict[str, Any]:
    """Buy (creates the instance), trial, renew or change; replays the first result for a repeated key."""
    payload = await read_payload(request)
    key = idempotency_key(request)
    kind = payload.text("kind") or ""
    unit, count = period(payload)
    billing = services(request).billing
    package_id = payload.text("package_id") or ""
    instance = payload.text("instance") or ""
    limit = max_total(payload)
    if kind == "buy":
        kind_of_service = service_type(payload)
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
        kind_of_service = service_type(payload)
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
def list_orders(request: Request, account: AccountDep) -> dict[str, Any]:
    return {"orders": services(request).billing.receipts.orders(None if account.is_admin else account.id)}


@router.get("/billing/ledger", tags=["billing"])
def ledger(request: Request, account: AccountDep) -> dict[str, Any]:
    return services(request).billing.payments.ledger(account.id)


@router.get("/events", tags=["billing"])
def events(request: Request, account: AccountDep, after: int = 0) -> dict[str, Any]:
    return {
        "events": services(request).billing.receipts.events(None if account.is_admin else account.id, after)
    }


@router.get("/instances/{name}/billing", tags=["billing"])
def instance_billing(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    svc = services(request)
    instance = svc.accounts.instance_for(account, name)
    return {"name": name, **svc.billing.subscriptions.instance_status(instance)}


@router.post("/instances/{name}/auto-renew", tags=["billing"])
async def auto_renew(request: Request, name: str, account: AccountDep) -> dict[str, Any]:
    payload = await read_payload(request)
    unit, count = period(payload)
    return services(request).billing.subscriptions.set_auto_renew(
        account, name, payload.boolean("enabled", True), unit=unit, count=count
    )


# --- operator ---
@router.post("/admin/topups", tags=["admin"])
async def top_up(request: Request, _admin: AdminDep) -> dict[str, Any]:
    payload = await read_payload(request)
    billing = services(request).billing
    amount = amount_minor(payload, "amount", billing.catalogues.exponent)
    return await run_in_threadpool(
        lambda: billing.payments.top_up(
            payload.text("account_id") or "",
            amount,
            reference=payload.text("reference"),
            idempotency_key=idempotency_key(request),
        )
    )


@router.post("/admin/private-packages", tags=["admin"])
async def private_package(request: Request, _admin: AdminDep) -> dict[str, Any]:
    payload = await read_payload(request)
    billing = services(request).billing
    capacity, qps = payload.integer("capacity"), payload.integer("qps")
    if capacity is None or qps is None:
        raise LookalikeError(e.INVALID_PARAMETER, "capacity and qps are required.")
    monthly = amount_minor(payload, "monthly", billing.catalogues.exponent)
    yearly_given = payload.text("yearly") is not None or payload.text("yearly_minor") is not None
    yearly = amount_minor(payload, "yearly", billing.catalogues.exponent) if yearly_given else monthly * 10
    package = billing.catalogues.create_private_package(
        payload.text("account_id") or "",
        capacity=capacity,
        qps=qps,
        monthly=monthly,
        yearly=yearly,
        package_id=payload.text("package_id"),
    )
    return {**package.to_dict(billing.catalogues.exponent), "private_for": package.private_for}


@router.put("/admin/trial-seats", tags=["admin"])
async def trial_seats(request: Request, _admin: AdminDep) -> dict[str, int]:
    payload = await read_payload(request)
    total = payload.integer("total")
    if total is None:
        raise LookalikeError(e.INVALID_PARAMETER, "total is required.")
    return services(request).billing.trials.set_seats(total)


@router.post("/admin/catalogue/reload", tags=["admin"])
def reload_catalogue(request: Request, _admin: AdminDep) -> dict[str, Any]:
    found = services(request).billing.catalogues.reload()
    return {"reloaded": True, "packages": len(found.packages), "currency": found.currency}


@router.post("/admin/lifecycle/sweep", tags=["admin"])
def sweep(request: Request, _admin: AdminDep) -> dict[str, Any]:
    report = services(request).lifecycle.sweep()
    return report.__dict__


@router.post("/admin/clock/advance", tags=["admin"])
async def advance_clock(request: Request, _admin: AdminDep) -> dict[str, Any]:
    """Demo servers only (`serve --demo-clock`): move the server's clock forward, then sweep."""
    payload = await read_payload(request)
    svc = services(request)
    seconds = payload.integer("seconds")
    if seconds is None or seconds < 0:
        raise LookalikeError(e.INVALID_PARAMETER, "seconds must be a non-negative integer.")
    try:
        step = timedelta(seconds=seconds)
    except OverflowError:
        raise LookalikeError(e.INVALID_PARAMETER, "seconds is too large.") from None
    report = svc.lifecycle.advance_clock(step)
    return {"now": svc.clock.now().isoformat(), "sweep": report.__dict__}
