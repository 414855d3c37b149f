"""`lookalike admin` on accounts: create one, its AccessKeys, its console password, the list."""

from __future__ import annotations

import argparse
import sys

from lookalike.cli.admin_common import control, emit, fields
from lookalike.cli.errors import CliError
from lookalike.cli.options import Parser, add_command
from lookalike.cli.settings import settings_from_args
from lookalike.clock import SystemClock


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    p = add_command(
        commands,
        "create-account",
        "create a tenant account and its first AccessKey",
        "Create a tenant account and its first AccessKey; prints the account id, the AccessKeyId and the "
        "AccessKeySecret (shown this once: only a hash is stored).",
    )
    p.add_argument("name", help="the account's name (unique)")
    p.set_defaults(func=create_account)

    p = add_command(
        commands,
        "create-key",
        "create another AccessKey for an account",
        "Create another AccessKey pair for an account (e.g. to rotate keys); the secret is shown this once.",
    )
    p.add_argument("account", help="account id (acc-…)")
    p.set_defaults(func=create_key)

    p = add_command(
        commands,
        "disable-key",
        "disable an AccessKey",
        "Disable an AccessKey: calls signed with it are refused from now on (InvalidAccessKeyId.Inactive).",
    )
    p.add_argument("key_id", metavar="KEY_ID", help="the AccessKeyId to disable")
    p.set_defaults(func=disable_key)

    p = add_command(
        commands,
        "set-password",
        "set an account's web console password",
        "Set an account's web console password: read from stdin with --password-stdin, else generated and "
        "printed.",
    )
    p.add_argument("account", help="account name or id")
    p.add_argument("--password-stdin", action="store_true", help="read it from stdin (else: generated)")
    p.set_defaults(func=set_password)

    p = add_command(
        commands,
        "list-accounts",
        "list accounts",
        "List every account: id, name, and which one is the operator.",
    )
    p.set_defaults(func=list_accounts)


def create_account(args: argparse.Namespace) -> int:
    account, key = control(args).accounts.create_account(args.name)
    payload = {
        "account_id": account.id,
        "name": account.name,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }
    emit(args, payload, fields(payload))
    return 0


def create_key(args: argparse.Namespace) -> int:
    key = control(args).accounts.create_access_key(args.account)
    payload = {
        "account_id": key.account_id,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }
    emit(args, payload, fields(payload))
    return 0


def set_password(args: argparse.Namespace) -> int:
    """Set an account's console password: read from stdin with --password-stdin, else generated and shown."""
    from lookalike.service.container import build_console_auth

    plane = control(args)
    found = [a for a in plane.accounts.list_accounts() if args.account in (a.id, a.name)]
    if not found:
        raise CliError(f"no account named {args.account!r}", "list them with `lookalike admin list-accounts`")
    auth = build_console_auth(settings_from_args(args), plane.engine, plane.accounts, SystemClock())
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        auth.set_password(found[0].id, password)
        shown: dict[str, str] = {}
    else:
        shown = {"password": auth.set_generated_password(found[0].id)}
    payload = {"account_id": found[0].id, "name": found[0].name, **shown}
    emit(args, payload, fields(payload))
    return 0


def disable_key(args: argparse.Namespace) -> int:
    control(args).accounts.set_access_key_disabled(args.key_id, True)
    emit(args, {"access_key_id": args.key_id, "disabled": True}, f"disabled {args.key_id}")
    return 0


def list_accounts(args: argparse.Namespace) -> int:
    found = control(args).accounts.list_accounts()
    rows = [{"account_id": a.id, "name": a.name, "is_admin": a.is_admin} for a in found]
    emit(
        args,
        {"accounts": rows},
        "\n".join(f"{r['account_id']}  {r['name']}{'  (admin)' if r['is_admin'] else ''}" for r in rows),
    )
    return 0
