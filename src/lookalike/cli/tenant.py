"""`lookalike tenant`: a tenant's billing calls through the API, the same calls as the REST API's."""

from __future__ import annotations

import argparse
import json
import sys

from lookalike.cli.options import Parser, add_api_options, add_command, add_json_option
from lookalike.cli.tenant_client import TenantClient, access_key

# Command -> (method, path) of the REST API call it makes.
TENANT_CALLS = {
    "catalogue": ("GET", "/v1/billing/catalogue"),
    "quote": ("POST", "/v1/billing/quote"),
    "order": ("POST", "/v1/orders"),
    "orders": ("GET", "/v1/orders"),
    "ledger": ("GET", "/v1/billing/ledger"),
    "events": ("GET", "/v1/events"),
    "status": ("GET", "/v1/instances/{instance}/billing"),
}
SUMMARIES = {
    "catalogue": "packages you can buy",
    "quote": "price an order first",
    "order": "buy, trial, renew or change (money-changing: needs --idempotency-key)",
    "orders": "your orders and receipts",
    "ledger": "balance and ledger entries",
    "events": "expiry notices, charges, refunds",
    "status": "package, period, state and usage of an instance",
}


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    tenant = add_command(
        commands,
        "tenant",
        "a tenant's billing calls through the API",
        "A tenant's billing calls through the API of a running server, with the tenant's AccessKey: each "
        "prints the API's JSON answer (exit status 1 when the server refuses the call).",
    )
    tenant_commands = tenant.add_subparsers(
        dest="tenant_command", metavar="COMMAND", required=True, help="the call (each has its own --help)"
    )
    for name, summary in SUMMARIES.items():
        method, path = TENANT_CALLS[name]
        p = add_command(
            tenant_commands,
            name,
            summary,
            f"{summary[0].upper()}{summary[1:]}: {method} {path} on the server at --url.",
        )
        add_api_options(p)
        add_json_option(p, "print the answer as one compact JSON line (else: indented JSON)")
        if name in ("quote", "order"):
            p.add_argument(
                "kind",
                choices=["buy", "trial", "renew", "change"],
                metavar="KIND",
                help="what the order does: buy, trial, renew or change",
            )
            p.add_argument(
                "--package",
                default=None,
                help="package id, from `lookalike tenant catalogue` (buy, renew, change)",
            )
            p.add_argument(
                "--unit",
                choices=["month", "year"],
                default=None,
                help="period unit of buy and renew (default: month)",
            )
            p.add_argument(
                "--count", type=int, default=None, metavar="N", help="periods to pay for (default: 1)"
            )
        if name in ("quote", "order", "status"):
            p.add_argument(
                "--instance",
                required=name == "status",
                default=None,
                help="the instance: the new one's name for buy and trial, else the one to renew, change or "
                "show",
            )
        if name == "order":
            p.add_argument(
                "--idempotency-key",
                required=True,
                metavar="KEY",
                help="a unique key for this order: a retry with the same key replays the first answer",
            )
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    key_id, secret = access_key(args, "tenant")
    body = {
        k: v
        for k, v in {
            "kind": getattr(args, "kind", None),
            "package_id": getattr(args, "package", None),
            "instance": getattr(args, "instance", None),
            "unit": getattr(args, "unit", None),
            "count": getattr(args, "count", None),
        }.items()
        if v is not None
    }
    headers = {"Idempotency-Key": args.idempotency_key} if getattr(args, "idempotency_key", None) else {}
    method, path = TENANT_CALLS[args.tenant_command]
    path = path.format(instance=getattr(args, "instance", ""))
    with TenantClient(args.url, key_id, secret, timeout=60) as client:
        response = client.call(method, path, json=body if method == "POST" else None, headers=headers)
        answer = client.body(response)
        # The answer goes to stdout whatever it is (scripts read the refusal's code there too).
        print(json.dumps(answer, indent=None if args.json else 2))
        if response.status_code >= 400:
            print(client.refusal(response).line(), file=sys.stderr)
            return 1
    return 0
