"""One instance's overview: state, package, cycle, usage; change package, renew, auto-renew.

Package changes and renewals go through the shared quote page (quote_view) so the prorated charge or
refund is seen before confirming; a change the quote refuses (expired instance, pictures that would not
fit) is explained there and never reaches a Confirm button.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from lookalike.api.console.quote_view import (
    IDEMPOTENCY_FIELD,
    confirmed_total,
    is_price_change,
    period_count,
    render_quote,
    requote,
)
from lookalike.api.console.web import (
    ConsoleRoute,
    FormDep,
    SessionDep,
    field,
    money,
    redirect,
    render,
)
from lookalike.api.shared.dependencies import Accounts, Billing, ClockDep
from lookalike.domain.billing import Quote
from lookalike.domain.catalogue import Package
from lookalike.domain.errors import LookalikeError
from lookalike.domain.lifecycle import days_left
from lookalike.service.billing import Billing as BillingServices

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


@router.get("/instances/{name}", include_in_schema=False)
def overview(
    request: Request, name: str, session: SessionDep, accounts: Accounts, billing: Billing, clock: ClockDep
) -> Response:
    # Another tenant's instance answers exactly like an unknown name (InvalidInstance, 404).
    instance = accounts.instance_for(session.account, name)
    status = billing.subscriptions.instance_status(instance)
    catalogue = billing.catalogues.catalogue_for(session.account.id)
    packages = catalogue.visible_to(session.account.id)
    current: Package | None = next((p for p in catalogue.packages if p.id == status["package_id"]), None)
    now = clock.now()
    release = datetime.fromisoformat(status["release_at"]) if status["release_at"] else None
    capacity = status["capacity"] or 0
    context: dict[str, Any] = {
        "nav": "dashboard",
        "section": "overview",  # instance_area.html: the Overview / Search / Pictures sub-navigation
        "name": instance.name,
        "base": f"/console/instances/{instance.name}",
        "instance": instance,
        "status": status,
        "package": current,
        "packages": packages,
        "others": [p for p in packages if p.id != status["package_id"]],
        # Orders are the owner's (paid from its balance); the operator looking at a tenant's instance
        # sees its state but orders nothing for it.
        "can_order": instance.account_id == session.account.id,
        "days_left": days_left(now, release) if release else None,
        "used_percent": min(100, round(100 * status["usage"] / capacity, 1)) if capacity else 0,
        "currency": billing.catalogues.currency,
        "prices": {p.id: (money(billing, p.monthly), money(billing, p.yearly)) for p in packages},
    }
    return render(request, "instance.html", context)


@router.post("/instances/{name}/auto-renew", include_in_schema=False)
def auto_renew(request: Request, name: str, session: SessionDep, form: FormDep, billing: Billing) -> Response:
    enabled = field(form, "enabled") == "on"
    unit = field(form, "unit", "month") or "month"
    count = period_count(field(form, "count", "1"))
    billing.subscriptions.set_auto_renew(session.account, name, enabled, unit=unit, count=count)
    plural = "" if count == 1 else "s"
    notice = (
        f"Auto-renew is on: {count} {unit}{plural} at a time, charged to the balance at expiry."
        if enabled
        else "Auto-renew is off."
    )
    return redirect(request, f"/console/instances/{name}", notice)


@router.get("/instances/{name}/change", include_in_schema=False)
def change_quote(
    request: Request,
    name: str,
    session: SessionDep,
    accounts: Accounts,
    billing: Billing,
    package_id: str = "",
) -> Response:
    instance = accounts.instance_for(session.account, name)
    status = billing.subscriptions.instance_status(instance)
    summary = {"Instance": name, "From": status["package_id"] or "—", "To": package_id or "—"}
    found: Quote | None = None
    refusal: LookalikeError | None = None
    try:
        found = billing.quotes.quote(session.account, "change", package_id=package_id, instance_name=name)
    except LookalikeError as exc:
        refusal = exc
    return render_quote(
        request,
        session.account,
        billing,
        title="Change the package",
        summary=summary,
        quote=found,
        action=f"/console/instances/{name}/change",
        fields={"package_id": package_id},
        back=f"/console/instances/{name}",
        nav="dashboard",
        refusal=refusal,
    )


@router.get("/instances/{name}/renew", include_in_schema=False)
def renew_quote(
    request: Request,
    name: str,
    session: SessionDep,
    accounts: Accounts,
    billing: Billing,
    package_id: str = "",
    unit: str = "month",
    count: str = "1",
) -> Response:
    accounts.instance_for(session.account, name)
    summary = {"Instance": name, "Package": package_id or "—"}
    found: Quote | None = None
    refusal: LookalikeError | None = None
    try:
        found = billing.quotes.quote(
            session.account,
            "renew",
            package_id=package_id,
            unit=unit,
            count=period_count(count),
            instance_name=name,
        )
    except LookalikeError as exc:
        refusal = exc
    return render_quote(
        request,
        session.account,
        billing,
        title="Renew",
        summary=summary,
        quote=found,
        action=f"/console/instances/{name}/renew",
        fields={"package_id": package_id, "unit": unit, "count": count},
        back=f"/console/instances/{name}",
        nav="dashboard",
        refusal=refusal,
    )


def _path(name: str) -> str:
    return url_quote(name, safe="")


def _params(**values: str) -> str:
    return urlencode(values)


def _money_notice(billing: BillingServices, body: dict[str, Any], done: str) -> str:
    if body.get("replayed"):
        return f"This order ({body['order_id']}) was already placed; nothing was charged again."
    total = body["total"]
    if total > 0:
        return f"{done}; {money(billing, total)} {body['currency']} charged."
    if total < 0:
        return f"{done}; {money(billing, -total)} {body['currency']} refunded to your balance."
    return f"{done}; nothing to pay."


@router.post("/instances/{name}/change", include_in_schema=False)
def change(request: Request, name: str, session: SessionDep, form: FormDep, billing: Billing) -> Response:
    key = field(form, IDEMPOTENCY_FIELD) or None
    package_id = field(form, "package_id")
    try:
        body = billing.subscriptions.change(
            session.account, name, package_id, idempotency_key=key, max_total=confirmed_total(form)
        )
    except LookalikeError as exc:
        if not is_price_change(exc):
            raise
        query = _params(package_id=package_id)
        return requote(request, f"/console/instances/{_path(name)}/change?{query}", exc)
    notice = _money_notice(billing, body, f"Package changed to {package_id}")
    return redirect(request, f"/console/instances/{name}", notice)


@router.post("/instances/{name}/renew", include_in_schema=False)
def renew(request: Request, name: str, session: SessionDep, form: FormDep, billing: Billing) -> Response:
    package_id = field(form, "package_id")
    unit = field(form, "unit", "month") or "month"
    count = field(form, "count", "1")
    try:
        body = billing.subscriptions.renew(
            session.account,
            name,
            package_id,
            unit=unit,
            count=period_count(count),
            idempotency_key=field(form, IDEMPOTENCY_FIELD) or None,
            max_total=confirmed_total(form),
        )
    except LookalikeError as exc:
        if not is_price_change(exc):
            raise
        query = _params(package_id=package_id, unit=unit, count=count)
        return requote(request, f"/console/instances/{_path(name)}/renew?{query}", exc)
    cycle = body.get("cycle") or {}
    until = str(cycle.get("end", ""))[:10]
    notice = _money_notice(billing, body, f"Renewed until {until}" if until else "Renewed")
    return redirect(request, f"/console/instances/{name}", notice)
