"""Receipts of real orders as CSV and PDF (read back with csv and pypdf), and who may fetch an order."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pypdf
import pytest

from lookalike.clock import ManualClock
from lookalike.domain.errors import LookalikeError
from lookalike.service.container import Services
from lookalike.service.pdf_text import PAGE_LINES, text_pdf
from lookalike.service.receipts import receipt_csv, receipt_pdf


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_change_order_receipt_carries_lines_proration_and_total(
    services: Services, clock: ManualClock
) -> None:
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    billing = services.billing
    account, _key = services.accounts.create_account("shop-(a)")
    billing.payments.top_up(account.id, 300_000, idempotency_key="pay")
    billing.orders.buy(account, "store", "2.5m-5qps", idempotency_key="buy")
    clock.set(datetime(2027, 1, 16, tzinfo=UTC))
    changed = billing.subscriptions.change(account, "store", "2.5m-10qps", idempotency_key="up")
    order = billing.receipts.order(account, changed["order_id"])

    rows = list(csv.DictReader(io.StringIO(receipt_csv(order, billing.catalogues.exponent))))
    assert [r["record"] for r in rows] == ["line", "total"]
    assert rows[0]["proration"] == "16/31 (0.516129)" and rows[0]["amount"] == "361.29"
    assert rows[1]["amount"] == "361.29" and rows[1]["currency"] == "USD"
    assert {r["instance"] for r in rows} == {"store"} and {r["account"] for r in rows} == {"shop-(a)"}

    text = pdf_text(receipt_pdf(order, billing.catalogues.exponent))
    assert changed["order_id"] in text and "Account: shop-(a)" in text
    assert "Proration: 16/31" in text and "Total: 361.29 USD" in text
    assert "2027-01-16 00:00 UTC to 2027-02-01 00:00 UTC" in text

    other, _ = services.accounts.create_account("other")
    with pytest.raises(LookalikeError) as refused:
        billing.receipts.order(other, changed["order_id"])
    assert refused.value.http_status == 404
    operator = services.accounts.list_accounts()[0]
    assert (
        operator.is_admin
        and billing.receipts.order(operator, changed["order_id"])["id"] == changed["order_id"]
    )


def test_long_text_flows_onto_more_pages_and_odd_characters_survive() -> None:
    lines = [f"line {i} ({'x' * 5}) back\\slash €" for i in range(PAGE_LINES + 5)]
    data = text_pdf("Title", lines)
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 2
    text = pdf_text(data)
    assert f"line {PAGE_LINES + 4} (xxxxx) back\\slash €" in text
