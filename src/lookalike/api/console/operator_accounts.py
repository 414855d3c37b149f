"""Operator pages for accounts: the list, creating one, and one account's top-up, password and on/off switch.

Secrets (a generated password, the first AccessKey) appear once, on the page that answers the POST, and are
never stored in clear text; top-ups carry an idempotency key minted when the form is drawn, so posting the
same form twice credits once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from lookalike.api.console.operator_forms import amount_field
from lookalike.api.console.web import (
    ConsoleRoute,
    FormDep,
    OperatorDep,
    field,
    money,
    new_idempotency_key,
    redirect,
    render,
)
from lookalike.api.shared.dependencies import Accounts, Billing, ConsoleAuth
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.accounts import AccountService
from lookalike.service.billing import Billing as BillingServices
from lookalike.service.console_auth import ConsoleAuthService
from lookalike.service.passwords import password_problem

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


def _accounts_page(
    request: Request,
    accounts: AccountService,
    billing: BillingServices,
    viewer: Account,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    live = Counter(i.account_id for i in accounts.list_instances(viewer) if i.status != "released")
    rows: list[dict[str, Any]] = [
        {"account": a, "balance": money(billing, billing.payments.balance(a.id)), "instances": live[a.id]}
        for a in accounts.list_accounts()
    ]
    context = {
        "nav": "operator",
        "sub": "accounts",
        "rows": rows,
        "currency": billing.catalogues.currency,
        "error": error,
        "values": values or {},
    }
    return render(request, "operator_accounts.html", context, status=status)


@router.get("/operator", include_in_schema=False)
@router.get("/operator/accounts", include_in_schema=False)
def accounts_list(request: Request, operator: OperatorDep, accounts: Accounts, billing: Billing) -> Response:
    return _accounts_page(request, accounts, billing, operator.account)


@router.post("/operator/accounts", include_in_schema=False)
def create_account(
    request: Request,
    operator: OperatorDep,
    form: FormDep,
    accounts: Accounts,
    billing: Billing,
    auth: ConsoleAuth,
) -> Response:
    name = field(form, "name")
    typed = form.get("password")
    password = typed if isinstance(typed, str) else ""
    try:
        # Check the password before the account exists, so a refused one leaves no account without a password.
        problem = password_problem(password) if password else None
        if problem is not None:
            raise LookalikeError(e.INVALID_PARAMETER, problem)
        account, key = accounts.create_account(name)
        if password:
            auth.set_password(account.id, password)
            shown = None
        else:
            shown = auth.set_generated_password(account.id)
    except LookalikeError as exc:
        return _accounts_page(
            request,
            accounts,
            billing,
            operator.account,
            error=exc.message,
            values={"name": name},
            status=exc.http_status,
        )
    context = {"nav": "operator", "sub": "accounts", "created": account, "key": key, "password": shown}
    return render(request, "operator_account_created.html", context, status=201)


@dataclass(frozen=True)
class AccountPageServices:
    """What one account's operator page reads: its record and instances, money, whether it has a password."""

    accounts: AccountService
    billing: BillingServices
    auth: ConsoleAuthService


def account_page_services(accounts: Accounts, billing: Billing, auth: ConsoleAuth) -> AccountPageServices:
    return AccountPageServices(accounts, billing, auth)


AccountPageDep = Annotated[AccountPageServices, Depends(account_page_services)]


def _account_page(
    request: Request,
    svc: AccountPageServices,
    viewer: Account,
    account_id: str,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    account = svc.accounts.get_account(account_id)
    instances = [
        {"instance": i, "status": svc.billing.subscriptions.instance_status(i)}
        for i in svc.accounts.list_instances(viewer)
        if i.account_id == account.id
    ]
    ledger = svc.billing.payments.ledger(account.id)
    filled = values or {}
    context = {
        "nav": "operator",
        "sub": "accounts",
        "target": account,
        "balance": money(svc.billing, ledger["balance"]),
        "currency": svc.billing.catalogues.currency,
        "entries": [
            {**row, "amount_text": money(svc.billing, row["amount"])} for row in ledger["entries"][:10]
        ],
        "instances": instances,
        "has_password": svc.auth.has_password(account.id),
        "errors": errors or {},
        "values": filled,
        # A refused top-up keeps its key: fixing the amount and posting again is still one top-up.
        "topup_key": filled.get("idempotency_key") or new_idempotency_key(),
    }
    return render(request, "operator_account.html", context, status=status)


@router.get("/operator/accounts/{account_id}", include_in_schema=False)
def account_detail(request: Request, account_id: str, operator: OperatorDep, svc: AccountPageDep) -> Response:
    return _account_page(request, svc, operator.account, account_id)


@router.post("/operator/accounts/{account_id}/top-up", include_in_schema=False)
def top_up(
    request: Request, account_id: str, operator: OperatorDep, form: FormDep, svc: AccountPageDep
) -> Response:
    values = {k: field(form, k) for k in ("amount", "reference", "idempotency_key")}
    try:
        amount = amount_field(form, "amount", "Amount", svc.billing.catalogues.exponent)
        result = svc.billing.payments.top_up(
            account_id,
            amount,
            reference=values["reference"] or None,
            idempotency_key=values["idempotency_key"] or None,
        )
    except LookalikeError as exc:
        if exc.code == e.ACCOUNT_NOT_FOUND:
            raise
        return _account_page(
            request,
            svc,
            operator.account,
            account_id,
            errors={"topup": exc.message},
            values=values,
            status=exc.http_status,
        )
    credited = f"{result['total_text']} {result['currency']}"
    balance = money(svc.billing, result["balance"])
    notice = (
        f"This top-up of {credited} was already credited; nothing was added twice."
        if result.get("replayed")
        else f"Credited {credited}. Balance now {balance} {result['currency']}."
    )
    return redirect(request, f"/console/operator/accounts/{account_id}", notice)


@router.post("/operator/accounts/{account_id}/disable", include_in_schema=False)
def disable(
    request: Request, account_id: str, _operator: OperatorDep, _form: FormDep, accounts: Accounts
) -> Response:
    account = accounts.set_account_disabled(account_id, True)
    notice = f"{account.name} is disabled: its AccessKeys and console sessions no longer work."
    return redirect(request, f"/console/operator/accounts/{account_id}", notice)


@router.post("/operator/accounts/{account_id}/enable", include_in_schema=False)
def enable(
    request: Request, account_id: str, _operator: OperatorDep, _form: FormDep, accounts: Accounts
) -> Response:
    account = accounts.set_account_disabled(account_id, False)
    return redirect(request, f"/console/operator/accounts/{account_id}", f"{account.name} is enabled again.")


@router.post("/operator/accounts/{account_id}/password", include_in_schema=False)
def set_password(
    request: Request, account_id: str, operator: OperatorDep, form: FormDep, svc: AccountPageDep
) -> Response:
    account = svc.accounts.get_account(account_id)
    typed = form.get("password")
    password = typed if isinstance(typed, str) else ""
    try:
        if password:
            svc.auth.set_password(account.id, password)
        else:
            generated = svc.auth.set_generated_password(account.id)
    except LookalikeError as exc:
        return _account_page(
            request,
            svc,
            operator.account,
            account_id,
            errors={"password": exc.message},
            status=exc.http_status,
        )
    if password:
        if account.id == operator.account.id:
            # A new password ends the account's sessions, this one included.
            return redirect(request, "/console/sign-in")
        notice = f"New console password set for {account.name}; its open sessions have ended."
        return redirect(request, f"/console/operator/accounts/{account_id}", notice)
    context = {"nav": "operator", "sub": "accounts", "target": account, "password": generated}
    return render(request, "operator_password_set.html", context)
