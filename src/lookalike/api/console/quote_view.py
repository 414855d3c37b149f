"""The confirm-before-paying page shared by buying, the trial, renewals and package changes.

The page shows the service's own quote (line items, proration, total), the balance before and after, and a
Confirm form that carries the exact choice plus an idempotency key made when the page is rendered: a
double submit, a resubmitted form or a retry after a lost answer all replay the one order. The form also
carries the quoted total (`max_total`): the service re-prices at confirm time and refuses (PriceChanged) a
total above it, and the confirm handlers then send the customer back here to a fresh quote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response
from starlette.datastructures import FormData

from lookalike.api.console.web import field, money, new_idempotency_key, redirect, render
from lookalike.domain.billing import Quote
from lookalike.domain.errors import INVALID_AMOUNT, INVALID_PERIOD, PRICE_CHANGED, LookalikeError
from lookalike.domain.loose_values import parse_int
from lookalike.domain.models import Account
from lookalike.service.billing import Billing as BillingServices
from lookalike.service.billing import quote_json

IDEMPOTENCY_FIELD = "idempotency_key"
MAX_TOTAL_FIELD = "max_total"


def period_count(text: str) -> int:
    """The count field of a period choice, as an integer (the service checks its range)."""
    try:
        return parse_int(text or "1")
    except ValueError:
        raise LookalikeError(INVALID_PERIOD, "The number of periods must be a whole number.") from None


def confirmed_total(form: FormData) -> int | None:
    """The total the customer saw on the quote page and confirmed (minor units), or None when absent."""
    text = field(form, MAX_TOTAL_FIELD)
    if not text:
        return None
    try:
        return parse_int(text)
    except ValueError:
        message = "The confirmed price is not a whole amount; quote again."
        raise LookalikeError(INVALID_AMOUNT, message) from None


def is_price_change(exc: LookalikeError) -> bool:
    return exc.code == PRICE_CHANGED


def requote(request: Request, quote_url: str, exc: LookalikeError) -> Response:
    """The price moved between quote and confirm: back (303) to the quote page, which prices the order
    afresh, with the service's explanation (new price and quoted one) as a one-shot notice."""
    return redirect(request, quote_url, exc.message)


def render_quote(
    request: Request,
    account: Account,
    billing: BillingServices,
    *,
    title: str,
    summary: Mapping[str, str],
    quote: Quote | None,
    action: str,
    fields: Mapping[str, str],
    back: str,
    nav: str,
    refusal: LookalikeError | None = None,
) -> Response:
    """The quote page; with `refusal` (the quote itself refused) it explains why and offers no Confirm."""
    balance = billing.payments.balance(account.id)
    context: dict[str, Any] = {
        "nav": nav,
        "title": title,
        "summary": summary,
        "back": back,
        "currency": billing.catalogues.currency,
        "balance_text": money(billing, balance),
        "refusal": refusal.message if refusal else None,
        "refusal_code": refusal.code if refusal else None,
    }
    if quote is not None and refusal is None:
        body = quote_json(quote, billing.catalogues.exponent)
        total = quote.total.amount
        context.update(
            quote=body,
            total=total,
            after_text=money(billing, balance - total),
            short_text=money(billing, total - balance) if total > balance else None,
            action=action,
            fields=dict(fields),
            idempotency_key=new_idempotency_key(),
            max_total=total,
        )
    status = refusal.http_status if refusal is not None else 200
    return render(request, "quote.html", context, status=status)
