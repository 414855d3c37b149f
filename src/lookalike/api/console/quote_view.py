"""The confirm-before-paying page shared by buying, the trial, renewals and package changes.

The page shows the service's own quote (line items, proration, total), the balance before and after, and a
Confirm form that carries the exact choice plus an idempotency key made when the page is rendered: a
double submit, a resubmitted form or a retry after a lost answer all replay the one order.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response

from lookalike.api.console.web import money, render, services
from lookalike.domain.billing import Quote
from lookalike.domain.errors import INVALID_PERIOD, LookalikeError
from lookalike.domain.models import Account
from lookalike.service.billing import quote_json

IDEMPOTENCY_FIELD = "idempotency_key"


def new_idempotency_key() -> str:
    return f"console-{secrets.token_urlsafe(18)}"


def period_count(text: str) -> int:
    """The count field of a period choice, as an integer (the service checks its range)."""
    try:
        return int(text or "1")
    except ValueError:
        raise LookalikeError(INVALID_PERIOD, "The number of periods must be a whole number.") from None


def render_quote(
    request: Request,
    account: Account,
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
    svc = services(request)
    balance = svc.billing.balance(account.id)
    context: dict[str, Any] = {
        "nav": nav,
        "title": title,
        "summary": summary,
        "back": back,
        "currency": svc.billing.currency,
        "balance_text": money(svc, balance),
        "refusal": refusal.message if refusal else None,
        "refusal_code": refusal.code if refusal else None,
    }
    if quote is not None and refusal is None:
        body = quote_json(quote, svc.billing.exponent)
        total = quote.total.amount
        context.update(
            quote=body,
            total=total,
            after_text=money(svc, balance - total),
            short_text=money(svc, total - balance) if total > balance else None,
            action=action,
            fields=dict(fields),
            idempotency_key=new_idempotency_key(),
        )
    status = refusal.http_status if refusal is not None else 200
    return render(request, "quote.html", context, status=status)
