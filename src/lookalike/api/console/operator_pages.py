"""Operator pages across tenants: every instance, catalogue and private quotes, trial seats, demo clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from lookalike.api.console.operator_forms import amount_field, whole_number
from lookalike.api.console.web import (
    ConsoleRoute,
    FormDep,
    OperatorDep,
    field,
    money,
    redirect,
    render,
)
from lookalike.api.shared.dependencies import Accounts, Billing, ClockDep, Lifecycle
from lookalike.domain import errors as e
from lookalike.domain.catalogue import Package
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.accounts import AccountService
from lookalike.service.billing import Billing as BillingServices
from lookalike.service.lifecycle import LifecycleService, SweepReport

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


@router.get("/operator/instances", include_in_schema=False)
def instances(request: Request, operator: OperatorDep, accounts: Accounts, billing: Billing) -> Response:
    names = {a.id: a.name for a in accounts.list_accounts()}
    rows: list[dict[str, Any]] = [
        {
            "instance": i,
            "account": names.get(i.account_id, i.account_id),
            "status": billing.subscriptions.instance_status(i),
        }
        for i in accounts.list_instances(operator.account)  # the operator's list holds every tenant's
    ]
    return render(request, "operator_instances.html", {"nav": "operator", "sub": "instances", "rows": rows})


# --- catalogue and private quotes ---
def _package_row(billing: BillingServices, package: Package, owner: Account | None = None) -> dict[str, Any]:
    return {
        "package": package,
        "owner": owner,
        "monthly": money(billing, package.monthly),
        "yearly": money(billing, package.yearly),
    }


def _catalogue_page(
    request: Request,
    accounts: AccountService,
    billing: BillingServices,
    viewer: Account,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    tenants = [a for a in accounts.list_accounts() if not a.is_admin]
    public = [
        _package_row(billing, p)
        for p in billing.catalogues.catalogue_for(viewer.id).packages
        if p.private_for is None
    ]
    private = [
        _package_row(billing, p, owner)
        for owner in tenants
        for p in billing.catalogues.catalogue_for(owner.id).packages
        if p.private_for == owner.id
    ]
    context = {
        "nav": "operator",
        "sub": "catalogue",
        "currency": billing.catalogues.currency,
        "public": public,
        "private": private,
        "tenants": tenants,
        "error": error,
        "values": values or {},
    }
    return render(request, "operator_catalogue.html", context, status=status)


@router.get("/operator/catalogue", include_in_schema=False)
def catalogue(request: Request, operator: OperatorDep, accounts: Accounts, billing: Billing) -> Response:
    return _catalogue_page(request, accounts, billing, operator.account)


@router.post("/operator/catalogue/reload", include_in_schema=False)
def reload_catalogue(request: Request, _operator: OperatorDep, _form: FormDep, billing: Billing) -> Response:
    try:
        found = billing.catalogues.reload()
    except OSError as exc:
        raise LookalikeError(
            e.INVALID_PARAMETER, f"The catalogue file cannot be read: {exc.strerror}."
        ) from None
    notice = f"Catalogue reloaded: {len(found.packages)} packages in {found.currency}."
    return redirect(request, "/console/operator/catalogue", notice)


@router.post("/operator/quotes", include_in_schema=False)
def create_quote(
    request: Request, operator: OperatorDep, form: FormDep, accounts: Accounts, billing: Billing
) -> Response:
    names = ("account_id", "capacity", "qps", "monthly", "yearly", "package_id")
    values = {name: field(form, name) for name in names}
    exponent = billing.catalogues.exponent
    try:
        if not values["account_id"]:
            raise LookalikeError(e.INVALID_PARAMETER, "Choose the account the quote is for.")
        owner = accounts.get_account(values["account_id"])
        capacity = whole_number(form, "capacity", "Capacity")
        qps = whole_number(form, "qps", "Search QPS")
        assert capacity is not None and qps is not None  # required fields
        package = billing.catalogues.create_private_package(
            owner.id,
            capacity=capacity,
            qps=qps,
            monthly=amount_field(form, "monthly", "Monthly price", exponent),
            yearly=amount_field(form, "yearly", "Yearly price", exponent),
            package_id=values["package_id"] or None,
        )
    except LookalikeError as exc:
        return _catalogue_page(
            request,
            accounts,
            billing,
            operator.account,
            error=exc.message,
            values=values,
            status=exc.http_status,
        )
    notice = f"Private quote {package.id} created for {owner.name}; it is in their catalogue now."
    return redirect(request, "/console/operator/catalogue", notice)


# --- trial seats ---
def _trial_page(
    request: Request,
    billing: BillingServices,
    *,
    error: str | None = None,
    value: str = "",
    status: int = 200,
) -> Response:
    seats = billing.trials.seats()
    context = {"nav": "operator", "sub": "trial", "seats": seats, "error": error, "value": value}
    return render(request, "operator_trial.html", context, status=status)


@router.get("/operator/trial-seats", include_in_schema=False)
def trial_seats(request: Request, _operator: OperatorDep, billing: Billing) -> Response:
    return _trial_page(request, billing)


@router.post("/operator/trial-seats", include_in_schema=False)
def set_trial_seats(request: Request, _operator: OperatorDep, form: FormDep, billing: Billing) -> Response:
    try:
        total = whole_number(form, "total", "Total seats")
        assert total is not None
        seats = billing.trials.set_seats(total)
    except LookalikeError as exc:
        return _trial_page(
            request, billing, error=exc.message, value=field(form, "total"), status=exc.http_status
        )
    notice = f"Trial seats: {seats['total']} in total, {seats['used']} used, {seats['left']} left."
    return redirect(request, "/console/operator/trial-seats", notice)


# --- demo clock ---
def _clock_page(
    request: Request,
    lifecycle: LifecycleService,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "nav": "operator",
        "sub": "clock",
        "can_advance": lifecycle.clock_can_move,
        "error": error,
        "values": values or {},
    }
    return render(request, "operator_clock.html", context, status=status)


@router.get("/operator/clock", include_in_schema=False)
def clock_page(request: Request, _operator: OperatorDep, lifecycle: Lifecycle) -> Response:
    return _clock_page(request, lifecycle)


@router.post("/operator/clock", include_in_schema=False)
def advance_clock(
    request: Request, _operator: OperatorDep, form: FormDep, lifecycle: Lifecycle, clock: ClockDep
) -> Response:
    values = {name: field(form, name) for name in ("days", "hours")}
    before = clock.now()
    try:
        days = whole_number(form, "days", "Days", required=False) or 0
        hours = whole_number(form, "hours", "Hours", required=False) or 0
        step = timedelta(days=days, hours=hours)
        if step <= timedelta(0):
            raise LookalikeError(e.INVALID_PARAMETER, "Enter a number of days or hours to move forward.")
        report = lifecycle.advance_clock(step)
    except (LookalikeError, OverflowError) as exc:
        message = exc.message if isinstance(exc, LookalikeError) else "That step is too large."
        status = exc.http_status if isinstance(exc, LookalikeError) else 400
        return _clock_page(request, lifecycle, error=message, values=values, status=status)
    moved = f"Clock moved from {before:%Y-%m-%d %H:%M} to {clock.now():%Y-%m-%d %H:%M} UTC."
    return redirect(request, "/console/operator/clock", f"{moved} {sweep_summary(report)}")


def sweep_summary(report: SweepReport) -> str:
    if not report.ran:
        return "The lifecycle sweep was skipped: another server is sweeping right now."
    parts = [f"{report.notices} expiry notice{'' if report.notices == 1 else 's'} sent"]
    for label, names in (
        ("renewed", report.renewed),
        ("expired", report.expired),
        ("released", report.released),
    ):
        parts.append(f"{label}: {', '.join(names) if names else 'none'}")
    return "Lifecycle sweep: " + "; ".join(parts) + "."
