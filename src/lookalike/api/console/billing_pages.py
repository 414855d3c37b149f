"""Billing: balance, ledger, orders with receipts (PDF, CSV) and the event feed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from lookalike.api.console.event_text import describe
from lookalike.api.console.web import ConsoleRoute, SessionDep, money, render
from lookalike.api.shared.dependencies import Accounts, Billing
from lookalike.service.receipts import receipt_csv, receipt_pdf

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


@router.get("/billing", include_in_schema=False)
def billing_page(request: Request, session: SessionDep, billing: Billing, accounts: Accounts) -> Response:
    account = session.account
    scope = None if account.is_admin else account.id  # the operator sees every account's orders, as in /v1
    ledger = billing.payments.ledger(account.id)
    names = {i.id: i.name for i in accounts.list_instances(account)}
    currency = billing.catalogues.currency

    def amount(minor: int) -> str:
        return f"{money(billing, minor)} {currency}"

    orders: list[dict[str, Any]] = [
        {
            **o,
            "instance_name": names.get(o["instance_id"] or "", "—" if not o["instance_id"] else "released"),
            "total_text": money(billing, o["amount"]),
        }
        for o in billing.receipts.orders(scope)
    ]
    events = [{**ev, "text": describe(ev, names, amount)} for ev in billing.receipts.recent_events(scope)]
    entries = [{**en, "amount_text": money(billing, en["amount"])} for en in ledger["entries"]]
    context = {
        "nav": "billing",
        "balance_text": ledger["balance_text"],
        "currency": currency,
        "entries": entries,
        "orders": orders,
        "events": events,
    }
    return render(request, "billing.html", context)


def _attachment(body: bytes | str, media_type: str, filename: str) -> Response:
    response = Response(body, media_type=media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/billing/orders/{order_id}.pdf", include_in_schema=False)
def receipt_as_pdf(order_id: str, session: SessionDep, billing: Billing) -> Response:
    order = billing.receipts.order(
        session.account, order_id
    )  # another tenant's order: 404 like an unknown one
    return _attachment(
        receipt_pdf(order, billing.catalogues.exponent), "application/pdf", f"receipt-{order['id']}.pdf"
    )


@router.get("/billing/orders/{order_id}.csv", include_in_schema=False)
def receipt_as_csv(order_id: str, session: SessionDep, billing: Billing) -> Response:
    order = billing.receipts.order(session.account, order_id)
    return _attachment(
        receipt_csv(order, billing.catalogues.exponent),
        "text/csv; charset=utf-8",
        f"receipt-{order['id']}.csv",
    )
