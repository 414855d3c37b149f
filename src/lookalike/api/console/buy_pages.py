"""Buying: the catalogue (with this account's private quotations), the free trial, quote, confirm."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote as url_quote

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
from lookalike.api.shared.dependencies import Billing
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, ServiceType
from lookalike.domain.validation import validate_instance_name
from lookalike.service.billing import Billing as BillingServices

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


def _service_type(text: str) -> ServiceType:
    if text in ("", "product"):
        return ServiceType.PRODUCT
    if text == "generic":
        return ServiceType.GENERIC
    raise LookalikeError(e.INVALID_PARAMETER, "The service type is 'product' or 'generic'.")


def trial_refusal(billing: BillingServices, account: Account) -> str | None:
    """Why this account cannot take the free trial now, or None when it can."""
    try:
        billing.catalogues.catalogue_for(account.id).trial_package()
    except LookalikeError:
        return "This catalogue offers no free trial."
    if billing.trials.taken(account.id):
        return "This account has already used its free trial."
    if billing.trials.seats()["left"] <= 0:
        return "All free-trial seats are taken; buy a package instead."
    return None


def _buy_page(
    request: Request,
    billing: BillingServices,
    account: Account,
    choice: dict[str, str],
    error: str | None = None,
    status: int = 200,
) -> Response:
    catalogue = billing.catalogues.catalogue_for(account.id)
    rows: list[dict[str, Any]] = [
        {
            "package": p,
            "monthly": money(billing, p.monthly),
            "yearly": money(billing, p.yearly),
            "private": p.private_for is not None,
        }
        for p in catalogue.visible_to(account.id)
    ]
    refusal = trial_refusal(billing, account)
    trial = None if refusal else catalogue.trial_package()
    context = {
        "nav": "buy",
        "rows": rows,
        "currency": catalogue.currency,
        "trial": trial,
        "trial_refusal": refusal,
        "seats": billing.trials.seats(),
        "choice": choice,
        "error": error,
        "balance_text": money(billing, billing.payments.balance(account.id)),
    }
    return render(request, "buy.html", context, status=status)


def _choice(values: Any) -> dict[str, str]:
    def text(name: str, default: str = "") -> str:
        value = values.get(name)
        return value.strip() if isinstance(value, str) else default

    return {
        "package_id": text("package_id"),
        "name": text("name"),
        "service_type": text("service_type", "product") or "product",
        "unit": text("unit", "month") or "month",
        "count": text("count", "1") or "1",
    }


@router.get("/buy", include_in_schema=False)
def buy_page(request: Request, session: SessionDep, billing: Billing) -> Response:
    return _buy_page(request, billing, session.account, _choice(request.query_params))


@router.get("/buy/quote", include_in_schema=False)
def buy_quote(request: Request, session: SessionDep, billing: Billing) -> Response:
    account = session.account
    choice = _choice(request.query_params)
    try:
        validate_instance_name(choice["name"])
        _service_type(choice["service_type"])
        if not choice["package_id"]:
            raise LookalikeError(e.INVALID_PACKAGE, "Choose a package.")
        found = billing.quotes.quote(
            account,
            "buy",
            package_id=choice["package_id"],
            unit=choice["unit"],
            count=period_count(choice["count"]),
        )
    except LookalikeError as exc:
        return _buy_page(request, billing, account, choice, exc.message, exc.http_status)
    summary = {
        "Instance": choice["name"],
        "Service type": choice["service_type"],
        "Package": choice["package_id"],
    }
    return render_quote(
        request,
        account,
        billing,
        title="Confirm your purchase",
        summary=summary,
        quote=found,
        action="/console/buy",
        fields=choice,
        back=_back(choice),
        nav="buy",
    )


@router.get("/buy/trial", include_in_schema=False)
def trial_quote(request: Request, session: SessionDep, billing: Billing) -> Response:
    account = session.account
    choice = _choice(request.query_params)
    try:
        validate_instance_name(choice["name"])
        _service_type(choice["service_type"])
        refusal = trial_refusal(billing, account)
        if refusal:
            raise LookalikeError(e.TRIAL_UNAVAILABLE, refusal)
        found = billing.quotes.quote(account, "trial")
    except LookalikeError as exc:
        return _buy_page(request, billing, account, choice, exc.message, exc.http_status)
    fields = {"name": choice["name"], "service_type": choice["service_type"]}
    summary = {
        "Instance": choice["name"],
        "Service type": choice["service_type"],
        "Offer": "Free trial, 1 month",
    }
    return render_quote(
        request,
        account,
        billing,
        title="Confirm your free trial",
        summary=summary,
        quote=found,
        action="/console/buy/trial",
        fields=fields,
        back=_back(choice),
        nav="buy",
    )


def _query(choice: dict[str, str]) -> str:
    return "&".join(f"{k}={url_quote(v, safe='')}" for k, v in choice.items())


def _back(choice: dict[str, str]) -> str:
    return "/console/buy?" + _query(choice)


def _quote_url(choice: dict[str, str]) -> str:
    return "/console/buy/quote?" + _query(choice)


def _placed(request: Request, billing: BillingServices, body: dict[str, Any], what: str) -> Response:
    name = body["instance"]
    if body.get("replayed"):
        notice = f"This order ({body['order_id']}) was already placed; nothing was charged again."
    elif body["total"] > 0:
        notice = f"{what} {name} created; {money(billing, body['total'])} {body['currency']} charged."
    else:
        notice = f"{what} {name} created."
    return redirect(request, f"/console/instances/{url_quote(name, safe='')}", notice)


@router.post("/buy", include_in_schema=False)
def buy(request: Request, session: SessionDep, form: FormDep, billing: Billing) -> Response:
    choice = _choice(form)
    try:
        body = billing.orders.buy(
            session.account,
            choice["name"],
            choice["package_id"],
            unit=choice["unit"],
            count=period_count(choice["count"]),
            service_type=_service_type(choice["service_type"]),
            idempotency_key=field(form, IDEMPOTENCY_FIELD) or None,
            max_total=confirmed_total(form),
        )
    except LookalikeError as exc:
        if is_price_change(exc):
            return requote(request, _quote_url(choice), exc)
        return _buy_page(request, billing, session.account, choice, exc.message, exc.http_status)
    return _placed(request, billing, body, "Instance")


@router.post("/buy/trial", include_in_schema=False)
def take_trial(request: Request, session: SessionDep, form: FormDep, billing: Billing) -> Response:
    choice = _choice(form)
    try:
        body = billing.trials.trial(
            session.account,
            choice["name"],
            service_type=_service_type(choice["service_type"]),
            idempotency_key=field(form, IDEMPOTENCY_FIELD) or None,
        )
    except LookalikeError as exc:
        return _buy_page(request, billing, session.account, choice, exc.message, exc.http_status)
    return _placed(request, billing, body, "Free-trial instance")
