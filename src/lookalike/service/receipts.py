"""Receipts: one order (as billing.receipts.order returns it) as CSV text or as a PDF document.

Both carry the same facts: order id, date, account, instance, kind, every line item with its period and
proration, the total and the currency. Amounts are plain decimal strings in the catalogue's minor-unit
precision (format_amount), so a spreadsheet or a script reads them back exactly.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final

from lookalike.domain.money import format_amount
from lookalike.service.pdf_text import text_pdf

CSV_COLUMNS: Final = (
    "record",
    "order_id",
    "date",
    "account",
    "instance",
    "kind",
    "description",
    "package_id",
    "period_start",
    "period_end",
    "proration",
    "amount",
    "currency",
)
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """Text a spreadsheet will not run as a formula (names are user input)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _lines(order: dict[str, Any], exponent: int) -> list[dict[str, Any]]:
    receipt = order["receipt"]
    found: list[dict[str, Any]] = list(receipt.get("lines") or [])
    if not found and order["kind"] == "topup":
        reference = receipt.get("reference")
        found = [
            {
                "description": f"Top-up{f' (reference {reference})' if reference else ''}",
                "package_id": None,
                "period_start": None,
                "period_end": None,
                "proration": None,
                "amount_text": format_amount(order["amount"], order["currency"], exponent),
            }
        ]
    return found


def _proration(line: dict[str, Any]) -> str:
    if not line.get("proration"):
        return ""
    return f"{line['proration']} ({line['proration_factor']:.6f})"


def receipt_csv(order: dict[str, Any], exponent: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    common = [
        order["id"],
        order["created_at"],
        order["account_name"],
        order.get("instance_name") or "",
        order["kind"],
    ]
    for line in _lines(order, exponent):
        writer.writerow(
            [_cell(v) for v in ["line", *common]]
            + [
                _cell(line["description"]),
                _cell(line.get("package_id")),
                line.get("period_start") or "",
                line.get("period_end") or "",
                _proration(line),
                line["amount_text"],
                order["currency"],
            ]
        )
    total = format_amount(order["amount"], order["currency"], exponent)
    blanks = ["", "", "", ""]
    writer.writerow([_cell(v) for v in ["total", *common]] + ["Total", *blanks, total, order["currency"]])
    return buffer.getvalue()


def _day(value: str | None) -> str:
    return value[:16].replace("T", " ") + " UTC" if value else "-"


def receipt_pdf(order: dict[str, Any], exponent: int) -> bytes:
    currency = order["currency"]
    text = [
        f"Order: {order['id']}",
        f"Date: {_day(order['created_at'])}",
        f"Account: {order['account_name']}",
        f"Instance: {order.get('instance_name') or '-'}",
        f"Kind: {order['kind']}",
        "",
        "Line items",
    ]
    for number, line in enumerate(_lines(order, exponent), start=1):
        text.append(f"{number}. {line['description']}")
        if line.get("period_start"):
            text.append(f"    Period: {_day(line['period_start'])} to {_day(line['period_end'])}")
        if line.get("proration"):
            text.append(f"    Proration: {_proration(line)} of the cycle")
        if line.get("package_id"):
            text.append(f"    Package: {line['package_id']}")
        text.append(f"    Amount: {line['amount_text']} {currency}")
    total = format_amount(order["amount"], currency, exponent)
    text += ["", f"Total: {total} {currency}"]
    if order["amount"] < 0:
        text.append("A negative total is a refund to the account's balance.")
    return text_pdf("Lookalike receipt", text)
