"""`lookalike` command line: serve, admin tasks, bulk import.

Every admin command accepts --json and then prints one JSON object (ids and secrets) on stdout,
so scripts can parse it; human-readable text goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from lookalike.clock import SystemClock
from lookalike.config import Settings
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import ServiceType

CREDENTIALS_FILE = "admin-credentials.json"


def _settings(args: argparse.Namespace) -> Settings:
    model_cache = os.environ.get("LOOKALIKE_MODEL_CACHE_DIR")
    return Settings(
        data_dir=Path(args.data_dir),
        database_url=args.database_url or os.environ.get("LOOKALIKE_DATABASE_URL"),
        model_cache_dir=Path(model_cache) if model_cache else None,
    )


def _emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload))
    else:
        print(human)


def _save_admin_credentials(data_dir: Path, payload: dict[str, str]) -> Path:
    path = data_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path


# --- serve ---
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lookalike.api.rest.app import create_app
    from lookalike.service.container import build_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(args)
    services = build_services(settings)
    base_url = f"http://{args.host}:{args.port}"
    if services.bootstrap_key is not None:
        creds = {
            "account_id": services.bootstrap_key.account_id,
            "access_key_id": services.bootstrap_key.access_key_id,
            "access_key_secret": services.bootstrap_key.access_key_secret,
        }
        path = _save_admin_credentials(settings.data_dir, creds)
        print(
            f"First start: created the operator account.\n"
            f"  AccessKeyId:     {creds['access_key_id']}\n"
            f"  AccessKeySecret: {creds['access_key_secret']}\n"
            f"  (saved to {path}, mode 0600)",
            flush=True,
        )
    else:
        print(f"Operator credentials: {settings.data_dir / CREDENTIALS_FILE}", flush=True)
    print(
        f"Lookalike listening on {base_url}  (API docs: {base_url}/docs)\n"
        f"  try: curl -u KEY_ID:SECRET {base_url}/v1/instances",
        flush=True,
    )
    app = create_app(services)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


# --- admin ---
def _accounts(args: argparse.Namespace) -> Any:
    from lookalike.service.container import build_account_service, open_database

    settings = _settings(args)
    return build_account_service(settings, open_database(settings), SystemClock())


def cmd_create_account(args: argparse.Namespace) -> int:
    account, key = _accounts(args).create_account(args.name)
    payload = {
        "account_id": account.id,
        "name": account.name,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }
    _emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    key = _accounts(args).create_access_key(args.account)
    payload = {
        "account_id": key.account_id,
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
    }
    _emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def cmd_disable_key(args: argparse.Namespace) -> int:
    _accounts(args).set_access_key_disabled(args.key_id, True)
    _emit(args, {"access_key_id": args.key_id, "disabled": True}, f"disabled {args.key_id}")
    return 0


def cmd_list_accounts(args: argparse.Namespace) -> int:
    found = _accounts(args).list_accounts()
    rows = [{"account_id": a.id, "name": a.name, "is_admin": a.is_admin} for a in found]
    _emit(
        args,
        {"accounts": rows},
        "\n".join(f"{r['account_id']}  {r['name']}{'  (admin)' if r['is_admin'] else ''}" for r in rows),
    )
    return 0


def cmd_create_instance(args: argparse.Namespace) -> int:
    instance = _accounts(args).create_instance(
        args.account,
        args.name,
        capacity=args.capacity,
        search_qps=args.qps,
        service_type=ServiceType.PRODUCT if args.service_type == "product" else ServiceType.GENERIC,
        add_qps=args.add_qps,
        delete_qps=args.delete_qps,
        update_qps=args.update_qps,
    )
    payload = {
        "instance_id": instance.id,
        "name": instance.name,
        "account_id": instance.account_id,
        "service_type": args.service_type,
        "capacity": instance.capacity,
        "qps": instance.search_qps,
    }
    _emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


# --- import ---
def cmd_import(args: argparse.Namespace) -> int:
    from lookalike.importer import run_import

    key_id = args.key_id or os.environ.get("LOOKALIKE_ACCESS_KEY_ID")
    secret = args.secret or os.environ.get("LOOKALIKE_ACCESS_KEY_SECRET")
    if not key_id or not secret:
        print(
            "import needs --key-id/--secret or LOOKALIKE_ACCESS_KEY_ID/LOOKALIKE_ACCESS_KEY_SECRET",
            file=sys.stderr,
        )
        return 2
    summary = run_import(
        source=Path(args.source),
        instance=args.instance,
        url=args.url,
        key_id=key_id,
        secret=secret,
        state_dir=Path(args.data_dir) / "import-state",
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(
        json.dumps(summary)
        if args.json
        else f"imported {summary['added']}, skipped {summary['skipped']}, failed {summary['failed']}"
    )
    return 0 if summary["failed"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lookalike", description="Self-hosted image search.")
    parser.add_argument("--data-dir", default=os.environ.get("LOOKALIKE_DATA_DIR", "./data"))
    parser.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL (default: SQLite in the data dir)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir_option(p: argparse.ArgumentParser) -> None:
        # Accept --data-dir after the subcommand too: `lookalike serve --data-dir DIR`.
        p.add_argument("--data-dir", default=argparse.SUPPRESS)
        p.add_argument("--database-url", default=argparse.SUPPRESS)

    serve = sub.add_parser("serve", help="run the HTTP server")
    data_dir_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    admin = sub.add_parser("admin", help="operator tasks on the data directory")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)

    p = admin_sub.add_parser("create-account", help="create a tenant account and its first AccessKey")
    p.add_argument("name")
    p.set_defaults(func=cmd_create_account)
    p = admin_sub.add_parser("create-key", help="create another AccessKey for an account")
    p.add_argument("account")
    p.set_defaults(func=cmd_create_key)
    p = admin_sub.add_parser("disable-key", help="disable an AccessKey")
    p.add_argument("key_id")
    p.set_defaults(func=cmd_disable_key)
    p = admin_sub.add_parser("list-accounts", help="list accounts")
    p.set_defaults(func=cmd_list_accounts)
    p = admin_sub.add_parser("create-instance", help="create an instance for an account")
    p.add_argument("name")
    p.add_argument("--account", required=True)
    p.add_argument("--capacity", type=int, required=True)
    p.add_argument("--qps", type=int, required=True, help="search QPS")
    p.add_argument("--service-type", choices=["product", "generic"], default="product")
    p.add_argument("--add-qps", type=int, default=None)
    p.add_argument("--delete-qps", type=int, default=None)
    p.add_argument("--update-qps", type=int, default=None)
    p.set_defaults(func=cmd_create_instance)
    for action in admin_sub.choices.values():
        data_dir_option(action)
        action.add_argument("--json", action="store_true", help="print one JSON object")

    imp = sub.add_parser("import", help="bulk-add a directory or a JSON-lines manifest through the API")
    data_dir_option(imp)
    imp.add_argument("source", help="a directory of pictures, or a .jsonl manifest")
    imp.add_argument("--instance", required=True)
    imp.add_argument("--url", default=os.environ.get("LOOKALIKE_URL", "http://127.0.0.1:8000"))
    imp.add_argument("--key-id", default=None)
    imp.add_argument("--secret", default=None)
    imp.add_argument("--workers", type=int, default=4)
    imp.add_argument("--no-progress", action="store_true")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except LookalikeError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"code": exc.code, "message": exc.message}))
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
