"""`lookalike admin` on instances: an operator's grant, and per-instance operation limits."""

from __future__ import annotations

import argparse

from lookalike.cli.admin_common import control, emit, fields
from lookalike.cli.options import Parser, add_command
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import ServiceType

# What an instance allows when the operator sets no limit (lookalike.service.limits.rate_for).
BUILT_IN_LIMITS = {
    "add": "1 up to 100,000 pictures of capacity, else 5",
    "delete": "20",
    "update": "20",
}


def _operation_limits(p: argparse.ArgumentParser, *, keep: bool) -> None:
    for operation, built_in in BUILT_IN_LIMITS.items():
        p.add_argument(
            f"--{operation}-qps",
            type=int,
            default=None,
            metavar="N",
            help=f"{operation} calls per second the instance allows (default: "
            + ("unchanged" if keep else built_in)
            + ")",
        )


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    p = add_command(
        commands,
        "create-instance",
        "create an instance for an account",
        "Create an instance for an account: an operator's grant of a private package of the given size, at "
        "no charge, for --months.",
    )
    p.add_argument("name", help="the instance's name (unique per account)")
    p.add_argument("--account", required=True, help="id of the account that gets it")
    p.add_argument("--capacity", type=int, required=True, metavar="N", help="how many pictures it holds")
    p.add_argument("--qps", type=int, required=True, metavar="N", help="searches per second it allows")
    p.add_argument(
        "--service-type",
        choices=["product", "generic"],
        default="product",
        help="Alibaba's service type: product (product image search) or generic (general image search)",
    )
    _operation_limits(p, keep=False)
    p.add_argument("--months", type=int, default=12, metavar="N", help="how long the grant lasts, in months")
    p.set_defaults(func=create_instance)

    p = add_command(
        commands,
        "set-instance-limits",
        "override an instance's add/delete/update QPS",
        "Override an instance's add, delete and update limits (calls per second); the ones left out keep "
        "their value. The delete limit is 20/s unless the operator says otherwise.",
    )
    p.add_argument("name", help="the instance's name")
    _operation_limits(p, keep=True)
    p.set_defaults(func=set_limits)


def create_instance(args: argparse.Namespace) -> int:
    """An operator grant: a private package of the given size, at no charge, for --months."""
    plane = control(args)
    instance = plane.billing.orders.grant(
        args.account,
        args.name,
        capacity=args.capacity,
        qps=args.qps,
        months=args.months,
        service_type=ServiceType.PRODUCT if args.service_type == "product" else ServiceType.GENERIC,
    )
    plane.instances.set_operation_limits(
        instance.id, add_qps=args.add_qps, delete_qps=args.delete_qps, update_qps=args.update_qps
    )
    payload = {
        "instance_id": instance.id,
        "name": instance.name,
        "account_id": instance.account_id,
        "service_type": args.service_type,
        "capacity": instance.capacity,
        "qps": instance.search_qps,
        "paid_until": instance.expires_at.isoformat() if instance.expires_at else None,
    }
    emit(args, payload, fields(payload))
    return 0


def set_limits(args: argparse.Namespace) -> int:
    """Per-instance operation limits (the delete limit is 20/s unless the operator says otherwise)."""
    plane = control(args)
    instance = plane.instances.get_by_name(args.name)
    if instance is None:
        raise LookalikeError("InvalidInstance", f"No instance named {args.name!r}.")
    plane.instances.set_operation_limits(
        instance.id,
        add_qps=args.add_qps if args.add_qps is not None else instance.add_qps,
        delete_qps=args.delete_qps if args.delete_qps is not None else instance.delete_qps,
        update_qps=args.update_qps if args.update_qps is not None else instance.update_qps,
    )
    updated = plane.instances.get(instance.id)
    assert updated is not None
    payload = {
        "name": updated.name,
        "add_qps": updated.add_qps,
        "delete_qps": updated.delete_qps,
        "update_qps": updated.update_qps,
    }
    emit(args, payload, fields(payload))
    return 0
