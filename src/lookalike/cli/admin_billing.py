"""`lookalike admin` on billing: payments received, private quotations, trial seats, catalogue, orders."""

from __future__ import annotations

import argparse
from pathlib import Path

from lookalike.cli.admin_common import control, emit, minor
from lookalike.cli.options import Parser, add_command


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    p = add_command(
        commands,
        "top-up",
        "credit an account's balance (a payment received)",
        "Credit an account's balance with a payment received outside Lookalike; the ledger records it and "
        "an order with a receipt. The same --idempotency-key never credits twice.",
    )
    p.add_argument("account", help="account id")
    p.add_argument("amount", help='decimal amount in the catalogue currency, e.g. "500.00"')
    p.add_argument(
        "--reference", default=None, help="your reference for the payment (e.g. a bank transfer's)"
    )
    p.add_argument(
        "--idempotency-key",
        required=True,
        metavar="KEY",
        help="a unique key for this payment: a retry with the same key changes nothing",
    )
    p.set_defaults(func=top_up)

    p = add_command(
        commands,
        "create-private-package",
        "a private quotation for one account",
        "Create a private package (a quotation): a size and price only this account sees and can buy.",
    )
    p.add_argument("account", help="id of the account it is offered to")
    p.add_argument("--capacity", type=int, required=True, metavar="N", help="pictures it holds")
    p.add_argument("--qps", type=int, required=True, metavar="N", help="searches per second it allows")
    p.add_argument(
        "--monthly", required=True, metavar="AMOUNT", help='decimal price per month, e.g. "20000.00"'
    )
    p.add_argument(
        "--yearly", default=None, metavar="AMOUNT", help="decimal price per year (default: 10x monthly)"
    )
    p.add_argument("--id", default=None, help="the package's id (default: a new one)")
    p.set_defaults(func=private_package)

    p = add_command(
        commands,
        "set-trial-seats",
        "how many free-trial seats exist in total",
        "Set how many free-trial seats exist in total (used ones included); prints used and total.",
    )
    p.add_argument("total", type=int, help="the number of seats")
    p.set_defaults(func=trial_seats)

    p = add_command(
        commands,
        "validate-catalogue",
        "check a catalogue file before installing it",
        "Check a catalogue JSON file (packages, prices, currency) before a server loads it with --catalogue.",
    )
    p.add_argument("file", help="the catalogue JSON file")
    p.set_defaults(func=validate_catalogue)

    p = add_command(
        commands,
        "list-orders",
        "orders of all accounts, or of one",
        "List orders (id, kind, amount, currency) of all accounts, or of one with --account.",
    )
    p.add_argument("--account", default=None, help="only this account's orders (an account id)")
    p.set_defaults(func=list_orders)


def top_up(args: argparse.Namespace) -> int:
    billing = control(args).billing
    result = billing.payments.top_up(
        args.account,
        minor(args.amount, billing.catalogues.exponent),
        reference=args.reference,
        idempotency_key=args.idempotency_key,
    )
    emit(args, result, f"topped up {result['total_text']} {result['currency']}; order {result['order_id']}")
    return 0


def private_package(args: argparse.Namespace) -> int:
    billing = control(args).billing
    exponent = billing.catalogues.exponent
    monthly = minor(args.monthly, exponent)
    yearly = minor(args.yearly, exponent) if args.yearly else monthly * 10
    package = billing.catalogues.create_private_package(
        args.account, capacity=args.capacity, qps=args.qps, monthly=monthly, yearly=yearly, package_id=args.id
    )
    payload = {**package.to_dict(exponent), "private_for": package.private_for}
    emit(args, payload, f"private package {package.id} for {args.account}")
    return 0


def trial_seats(args: argparse.Namespace) -> int:
    seats = control(args).billing.trials.set_seats(args.total)
    emit(args, dict(seats), f"trial seats: {seats['used']} used of {seats['total']}")
    return 0


def validate_catalogue(args: argparse.Namespace) -> int:
    from lookalike.domain.catalogue import load_catalogue_json

    catalogue = load_catalogue_json(Path(args.file).read_text(encoding="utf-8"))
    payload = {"valid": True, "currency": catalogue.currency, "packages": len(catalogue.packages)}
    emit(args, payload, f"{args.file}: {len(catalogue.packages)} packages in {catalogue.currency}")
    return 0


def list_orders(args: argparse.Namespace) -> int:
    found = control(args).billing.receipts.orders(args.account)
    emit(
        args,
        {"orders": found},
        "\n".join(f"{o['id']}  {o['kind']:7} {o['amount']:>12} {o['currency']}" for o in found),
    )
    return 0
