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
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from lookalike.clock import OffsetClock, SystemClock
from lookalike.config import ConfigError, Settings
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import ServiceType

if TYPE_CHECKING:
    from lookalike.api.alibaba.upload import UploadListener
    from lookalike.service.accounts import AccountService
    from lookalike.service.container import ControlPlane, Services

CREDENTIALS_FILE = "admin-credentials.json"


def _settings(args: argparse.Namespace) -> Settings:
    """Defaults, then --config FILE, then LOOKALIKE_* variables, then the command-line options."""
    settings = Settings.load(os.environ, _config_file(args))
    if args.data_dir:
        settings = replace(settings, data_dir=Path(args.data_dir))
    if args.database_url:
        settings = replace(settings, database_url=args.database_url)
    return settings


def _config_file(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if getattr(args, "config", None) else None


def _configured(args: argparse.Namespace, name: str) -> bool:
    """Whether the config file or the environment sets `name` (a command-line default must not replace it)."""
    from lookalike.config import env_values, file_values

    path = _config_file(args)
    return name in env_values(Settings, os.environ) or (
        path is not None and name in file_values(Settings, path)
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
def _model_device(services: Services) -> str:
    """Where the image model runs, as the start-up banner says it (lookalike.vision.embedder)."""
    return str(getattr(services.batcher.embedder, "device", "cpu"))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lookalike.api.limits import server_options
    from lookalike.api.rest.app import create_app
    from lookalike.service.container import build_services

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(args)
    if args.catalogue:
        settings = replace(settings, catalogue_path=Path(args.catalogue))
    if args.trial_seats is not None:
        settings = replace(settings, trial_seats=args.trial_seats)
    if args.upload_port:
        settings = _upload_settings(args, settings)
    settings = _task_settings(args, settings)
    clock = OffsetClock() if args.demo_clock else SystemClock()
    services = build_services(settings, clock=clock)
    base_url = f"http://{args.host}:{args.port}"
    if services.bootstrap_key is not None:
        creds = {
            "account_id": services.bootstrap_key.account_id,
            "access_key_id": services.bootstrap_key.access_key_id,
            "access_key_secret": services.bootstrap_key.access_key_secret,
        }
        creds["console_user"] = settings.admin_name
        creds["console_password"] = services.console_auth.set_generated_password(
            services.bootstrap_key.account_id
        )
        path = _save_admin_credentials(settings.data_dir, creds)
        print(
            f"First start: created the operator account.\n"
            f"  AccessKeyId:     {creds['access_key_id']}\n"
            f"  AccessKeySecret: {creds['access_key_secret']}\n"
            f"  Console sign-in: {creds['console_user']} / {creds['console_password']}\n"
            f"  (saved to {path}, mode 0600)",
            flush=True,
        )
    else:
        print(f"Operator credentials: {settings.data_dir / CREDENTIALS_FILE}", flush=True)
        admin = services.accounts.find_admin()
        if admin is not None and not services.console_auth.has_password(admin.id):
            # Data directories from before the console: the operator has keys but no console password yet.
            print(f"  console password: lookalike admin set-password {admin.name}", flush=True)
    print(
        f"Lookalike listening on {base_url}  (API docs: {base_url}/docs, console: {base_url}/console)\n"
        f"  image model on {_model_device(services)} (setting device = {settings.device})\n"
        f"  try: curl -u KEY_ID:SECRET {base_url}/v1/instances",
        flush=True,
    )
    listener = _start_upload_listener(args, settings, services) if args.upload_port else None
    app = create_app(services)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            **server_options(settings.request_limits),
        )
    finally:
        if listener is not None:
            listener.stop()
    return 0


def _task_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """--public-url, --bucket NAME=DIR, --callback-host: export links and IncreaseInstance buckets."""
    from lookalike.config import parse_buckets, parse_hosts

    changes: dict[str, Any] = {}
    if args.public_url:
        changes["public_base_url"] = args.public_url.rstrip("/")
    elif not _configured(args, "public_base_url"):
        changes["public_base_url"] = f"http://{args.host}:{args.port}"  # links point at this very server
    if args.bucket:
        changes["buckets"] = {**settings.buckets, **parse_buckets(",".join(args.bucket))}
    if args.callback_host:
        changes["callback_hosts"] = settings.callback_hosts | parse_hosts(",".join(args.callback_host))
    return replace(settings, **changes) if changes else settings


def _upload_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """--upload-*: the public host defaults to the listener's own address when that is a concrete one."""
    upload_host = args.upload_host or args.host
    public = args.upload_public_host
    if public is None:
        if upload_host in ("0.0.0.0", "::", "") or "." not in upload_host:
            raise SystemExit(
                "--upload-public-host is required when --upload-host is not a dotted address "
                "(the SDK uploads to https://{Bucket}.{Endpoint}/, e.g. uploads.example.com:8443)"
            )
        public = f"{upload_host}:{args.upload_port}"
    if bool(args.upload_cert) != bool(args.upload_key):
        raise SystemExit("--upload-cert and --upload-key go together")
    return replace(
        settings,
        upload_public_host=public,
        upload_cert=Path(args.upload_cert) if args.upload_cert else None,
        upload_key=Path(args.upload_key) if args.upload_key else None,
    )


def _start_upload_listener(
    args: argparse.Namespace, settings: Settings, services: Services
) -> UploadListener:
    from lookalike.api.alibaba.upload import UploadListener, ensure_tls_files

    if settings.upload_cert is not None and settings.upload_key is not None:
        cert, key = settings.upload_cert, settings.upload_key
    else:
        cert, key = ensure_tls_files(settings.data_dir, settings.upload_public_host)
    listener = UploadListener(
        services.uploads,
        certfile=cert,
        keyfile=key,
        host=args.upload_host or args.host,
        port=args.upload_port,
    )
    address = listener.start()
    print(
        f"Advance uploads (OSS PostObject) on https://{address}/, announced as "
        f"https://{settings.upload_public_host}/\n"
        f"  certificate: {cert} (clients trust it: RuntimeOptions(ca=...) or ignore_ssl=True)",
        flush=True,
    )
    return listener


# --- admin ---
def _control(args: argparse.Namespace) -> ControlPlane:
    from lookalike.service.container import build_control_plane

    return build_control_plane(_settings(args), SystemClock())


def _accounts(args: argparse.Namespace) -> AccountService:
    return _control(args).accounts


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


def cmd_set_password(args: argparse.Namespace) -> int:
    """Set an account's console password: read from stdin with --password-stdin, else generated and shown."""
    from lookalike.service.container import build_console_auth

    control = _control(args)
    found = [a for a in control.accounts.list_accounts() if args.account in (a.id, a.name)]
    if not found:
        raise SystemExit(f"no account named {args.account!r}")
    auth = build_console_auth(_settings(args), control.engine, control.accounts, SystemClock())
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        auth.set_password(found[0].id, password)
        shown: dict[str, str] = {}
    else:
        shown = {"password": auth.set_generated_password(found[0].id)}
    payload = {"account_id": found[0].id, "name": found[0].name, **shown}
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
    """An operator grant: a private package of the given size, at no charge, for --months."""
    control = _control(args)
    instance = control.billing.grant(
        args.account,
        args.name,
        capacity=args.capacity,
        qps=args.qps,
        months=args.months,
        service_type=ServiceType.PRODUCT if args.service_type == "product" else ServiceType.GENERIC,
    )
    control.instances.set_operation_limits(
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
    _emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def cmd_set_limits(args: argparse.Namespace) -> int:
    """Per-instance operation limits (the delete limit is 20/s unless the operator says otherwise)."""
    control = _control(args)
    instance = control.instances.get_by_name(args.name)
    if instance is None:
        raise LookalikeError("InvalidInstance", f"No instance named {args.name!r}.")
    control.instances.set_operation_limits(
        instance.id,
        add_qps=args.add_qps if args.add_qps is not None else instance.add_qps,
        delete_qps=args.delete_qps if args.delete_qps is not None else instance.delete_qps,
        update_qps=args.update_qps if args.update_qps is not None else instance.update_qps,
    )
    updated = control.instances.get(instance.id)
    assert updated is not None
    payload = {
        "name": updated.name,
        "add_qps": updated.add_qps,
        "delete_qps": updated.delete_qps,
        "update_qps": updated.update_qps,
    }
    _emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def _minor(text: str, exponent: int) -> int:
    from lookalike.domain.money import parse_decimal_amount

    try:
        return parse_decimal_amount(text, exponent)
    except ValueError as exc:
        raise LookalikeError("InvalidAmount", str(exc)) from None


def cmd_top_up(args: argparse.Namespace) -> int:
    billing = _control(args).billing
    result = billing.top_up(
        args.account,
        _minor(args.amount, billing.exponent),
        reference=args.reference,
        idempotency_key=args.idempotency_key,
    )
    _emit(args, result, f"topped up {result['total_text']} {result['currency']}; order {result['order_id']}")
    return 0


def cmd_private_package(args: argparse.Namespace) -> int:
    billing = _control(args).billing
    monthly = _minor(args.monthly, billing.exponent)
    yearly = _minor(args.yearly, billing.exponent) if args.yearly else monthly * 10
    package = billing.create_private_package(
        args.account, capacity=args.capacity, qps=args.qps, monthly=monthly, yearly=yearly, package_id=args.id
    )
    payload = {**package.to_dict(billing.exponent), "private_for": package.private_for}
    _emit(args, payload, f"private package {package.id} for {args.account}")
    return 0


def cmd_trial_seats(args: argparse.Namespace) -> int:
    seats = _control(args).billing.set_trial_seats(args.total)
    _emit(args, dict(seats), f"trial seats: {seats['used']} used of {seats['total']}")
    return 0


def cmd_validate_catalogue(args: argparse.Namespace) -> int:
    from lookalike.domain.catalogue import load_catalogue_json

    catalogue = load_catalogue_json(Path(args.file).read_text(encoding="utf-8"))
    payload = {"valid": True, "currency": catalogue.currency, "packages": len(catalogue.packages)}
    _emit(args, payload, f"{args.file}: {len(catalogue.packages)} packages in {catalogue.currency}")
    return 0


def cmd_list_orders(args: argparse.Namespace) -> int:
    found = _control(args).billing.orders(args.account)
    _emit(
        args,
        {"orders": found},
        "\n".join(f"{o['id']}  {o['kind']:7} {o['amount']:>12} {o['currency']}" for o in found),
    )
    return 0


def _access_key(args: argparse.Namespace, command: str) -> tuple[str, str] | None:
    """The AccessKey a command calls the API with: --key-id/--secret, else the environment; None (after
    saying what is missing) when there is none."""
    key_id = args.key_id or os.environ.get("LOOKALIKE_ACCESS_KEY_ID")
    secret = args.secret or os.environ.get("LOOKALIKE_ACCESS_KEY_SECRET")
    if not key_id or not secret:
        print(
            f"{command} needs --key-id/--secret or LOOKALIKE_ACCESS_KEY_ID/LOOKALIKE_ACCESS_KEY_SECRET",
            file=sys.stderr,
        )
        return None
    return key_id, secret


# --- tenant commands: the same calls as the REST API, over HTTP ---
def cmd_tenant(args: argparse.Namespace) -> int:
    import httpx

    credentials = _access_key(args, "tenant")
    if credentials is None:
        return 2
    key_id, secret = credentials
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
    with httpx.Client(base_url=args.url, auth=(key_id, secret), timeout=60) as client:
        response = client.request(method, path, json=body if method == "POST" else None, headers=headers)
    print(json.dumps(response.json(), indent=None if args.json else 2))
    return 0 if response.status_code < 400 else 1


TENANT_CALLS = {
    "catalogue": ("GET", "/v1/billing/catalogue"),
    "quote": ("POST", "/v1/billing/quote"),
    "order": ("POST", "/v1/orders"),
    "orders": ("GET", "/v1/orders"),
    "ledger": ("GET", "/v1/billing/ledger"),
    "events": ("GET", "/v1/events"),
    "status": ("GET", "/v1/instances/{instance}/billing"),
}


# --- duplicates: a duplicate report through the API ---
def cmd_duplicates(args: argparse.Namespace) -> int:
    import httpx

    credentials = _access_key(args, "duplicates")
    if credentials is None:
        return 2
    key_id, secret = credentials
    base = f"/v1/instances/{quote(args.instance, safe='')}/duplicates"

    def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # The console actions allow 1 call per second per instance: wait when told to, a few times.
        for _ in range(10):
            response = client.request(method, path, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(min(5.0, max(0.1, float(response.headers.get("Retry-After") or 1.0))))
        return response

    def fail(response: httpx.Response) -> int:
        try:
            body = response.json()
            message = f"{body.get('code')}: {body.get('message')}"
        except ValueError:
            message = response.text[:300]
        print(f"error: {message}", file=sys.stderr)
        return 1

    with httpx.Client(base_url=args.url, auth=(key_id, secret), timeout=120) as client:
        if args.report is not None:
            response = call(client, "GET", f"{base}/{args.report}")
        else:
            body = {} if args.threshold is None else {"threshold": args.threshold}
            response = call(client, "POST", base, json=body)
        if response.status_code != 200:
            return fail(response)
        report = response.json()
        while report["status"] == "PROCESSING" and not args.no_wait:
            if not args.json:
                print(
                    f"\rscanned {report['scanned']} of about {report['total']} pictures",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(args.poll)
            response = call(client, "GET", f"{base}/{report['id']}")
            if response.status_code != 200:
                return fail(response)
            report = response.json()
        if not args.json and not args.no_wait:
            print(file=sys.stderr)
        if report["status"] == "FAIL":
            print(f"error: report {report['id']} failed: {report['message']}", file=sys.stderr)
            return 1
        if args.csv and report["status"] == "SUCCESS":
            exported = call(client, "GET", f"{base}/{report['id']}/csv")
            if exported.status_code != 200:
                return fail(exported)
            Path(args.csv).write_text(exported.text, encoding="utf-8")
        groups: list[dict[str, Any]] = []
        if report["status"] == "SUCCESS" and args.show:
            page = call(client, "GET", f"{base}/{report['id']}/groups", params={"page_size": str(args.show)})
            if page.status_code != 200:
                return fail(page)
            groups = page.json()["groups"]
    if args.json:
        print(json.dumps({"report": report, "groups": groups}))
        return 0
    if report["status"] == "PROCESSING":
        print(
            f"report {report['id']} started; follow it with: lookalike duplicates --report {report['id']} ..."
        )
        return 0
    print(
        f"report {report['id']} (threshold {report['threshold']}): {report['groups']} groups of copies, "
        f"{report['pictures']} pictures in them" + (f"; CSV written to {args.csv}" if args.csv else "")
    )
    for group in groups:
        print(f"group {group['group']}:")
        for n, picture in enumerate(group["pictures"]):
            mark = "keep" if n == 0 else "    "
            print(f"  {mark} {picture['score']:.4f}  {picture['product_id']}  {picture['pic_name']}")
    return 0


# --- import ---
def cmd_import(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return _import_with_ray(args)
    from lookalike.importer import run_import

    credentials = _access_key(args, "import")
    if credentials is None:
        return 2
    key_id, secret = credentials
    summary = run_import(
        source=Path(args.source),
        instance=args.instance,
        url=args.url,
        key_id=key_id,
        secret=secret,
        state_dir=_settings(args).data_dir / "import-state",
        workers=args.workers or 4,
        progress=not args.no_progress,
    )
    print(
        json.dumps(summary)
        if args.json
        else f"imported {summary['added']}, skipped {summary['skipped']}, failed {summary['failed']}"
    )
    return 0 if summary["failed"] == 0 else 1


def _import_with_ray(args: argparse.Namespace) -> int:
    """--engine ray: analyse on a Ray cluster, write straight into the configured database and index (an
    operator's command, as `admin` is: no AccessKey; the settings are the server's, --config/LOOKALIKE_*)."""
    try:
        from lookalike.bulk.ray_engine import run_ray_import
    except ImportError as exc:
        print(f"--engine ray needs Ray: pip install 'lookalike[ray]' ({exc})", file=sys.stderr)
        return 2
    settings = _settings(args)
    summary = run_ray_import(
        settings=settings,
        source=Path(args.source),
        instance=args.instance,
        state_dir=settings.data_dir / "import-state",
        address=args.ray_address,
        workers=args.workers or 2,
        batch_size=args.batch_size,
        write_batch=args.write_batch,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        progress=not args.no_progress,
    )
    print(
        json.dumps(summary)
        if args.json
        else f"imported {summary['added']}, skipped {summary['skipped']}, failed {summary['failed']}"
        + (f" (errors: {summary['result_file']})" if summary["failed"] else "")
    )
    return 0 if summary["failed"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lookalike", description="Self-hosted image search.")
    # No defaults here: the config file and LOOKALIKE_* variables fill in what the options leave unset.
    parser.add_argument("--data-dir", default=None, help="local state directory (default: ./data)")
    parser.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL (default: SQLite in the data dir)"
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("LOOKALIKE_CONFIG"),
        metavar="FILE",
        help="TOML settings file, keys = setting names (README: Configuration reference); "
        "LOOKALIKE_* variables and options override it (default: $LOOKALIKE_CONFIG)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir_option(p: argparse.ArgumentParser) -> None:
        # Accept --data-dir after the subcommand too: `lookalike serve --data-dir DIR`.
        p.add_argument("--data-dir", default=argparse.SUPPRESS)
        p.add_argument("--database-url", default=argparse.SUPPRESS)
        p.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE")

    serve = sub.add_parser("serve", help="run the HTTP server")
    data_dir_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--public-url", default=None, help="base URL of the signed download links")
    serve.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="NAME@ACCOUNT=DIR",
        help="an IncreaseInstance bucket and the accounts (ids or names, joined by +) that may use it, "
        "e.g. imports@acme+globex=/srv/import; NAME@*=DIR lets every account use it (repeat)",
    )
    serve.add_argument(
        "--callback-host", action="append", default=[], help="a host CallbackAddress may name (repeat)"
    )
    serve.add_argument("--catalogue", default=None, help="catalogue JSON file (default: the packaged one)")
    serve.add_argument("--trial-seats", type=int, default=None, help="initial number of free-trial seats")
    serve.add_argument(
        "--demo-clock", action="store_true", help="let the operator move this server's clock (demos only)"
    )
    serve.add_argument(
        "--upload-port", type=int, default=0, help="HTTPS port for the SDK's *_advance uploads (0: disabled)"
    )
    serve.add_argument(
        "--upload-host", default=None, help="address the upload listener binds (default: --host)"
    )
    serve.add_argument(
        "--upload-public-host",
        default=None,
        help="host:port clients reach the upload listener at, split at its first dot into Bucket.Endpoint "
        "(default: --upload-host:--upload-port; e.g. uploads.example.com:8443)",
    )
    serve.add_argument(
        "--upload-cert", default=None, help="PEM certificate (default: self-signed in the data dir)"
    )
    serve.add_argument("--upload-key", default=None, help="PEM private key for --upload-cert")
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
    p = admin_sub.add_parser("set-password", help="set an account's web console password")
    p.add_argument("account", help="account name or id")
    p.add_argument("--password-stdin", action="store_true", help="read it from stdin (else: generated)")
    p.set_defaults(func=cmd_set_password)
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
    p.add_argument("--months", type=int, default=12, help="how long the grant lasts")
    p.set_defaults(func=cmd_create_instance)
    p = admin_sub.add_parser("set-instance-limits", help="override an instance's add/delete/update QPS")
    p.add_argument("name")
    p.add_argument("--add-qps", type=int, default=None)
    p.add_argument("--delete-qps", type=int, default=None)
    p.add_argument("--update-qps", type=int, default=None)
    p.set_defaults(func=cmd_set_limits)
    p = admin_sub.add_parser("top-up", help="credit an account's balance (a payment received)")
    p.add_argument("account")
    p.add_argument("amount", help='decimal amount in the catalogue currency, e.g. "500.00"')
    p.add_argument("--reference", default=None)
    p.add_argument("--idempotency-key", required=True)
    p.set_defaults(func=cmd_top_up)
    p = admin_sub.add_parser("create-private-package", help="a private quotation for one account")
    p.add_argument("account")
    p.add_argument("--capacity", type=int, required=True)
    p.add_argument("--qps", type=int, required=True)
    p.add_argument("--monthly", required=True, help='decimal price per month, e.g. "20000.00"')
    p.add_argument("--yearly", default=None, help="decimal price per year (default 10x monthly)")
    p.add_argument("--id", default=None)
    p.set_defaults(func=cmd_private_package)
    p = admin_sub.add_parser("set-trial-seats", help="how many free-trial seats exist in total")
    p.add_argument("total", type=int)
    p.set_defaults(func=cmd_trial_seats)
    p = admin_sub.add_parser("validate-catalogue", help="check a catalogue file before installing it")
    p.add_argument("file")
    p.set_defaults(func=cmd_validate_catalogue)
    p = admin_sub.add_parser("list-orders", help="orders of all accounts, or of one")
    p.add_argument("--account", default=None)
    p.set_defaults(func=cmd_list_orders)
    for action in admin_sub.choices.values():
        data_dir_option(action)
        action.add_argument("--json", action="store_true", help="print one JSON object")

    tenant = sub.add_parser("tenant", help="a tenant's billing calls through the API")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    for name, help_text in [
        ("catalogue", "packages you can buy"),
        ("quote", "price an order first"),
        ("order", "buy, trial, renew or change (money-changing: needs --idempotency-key)"),
        ("orders", "your orders and receipts"),
        ("ledger", "balance and ledger entries"),
        ("events", "expiry notices, charges, refunds"),
        ("status", "package, period, state and usage of an instance"),
    ]:
        p = tenant_sub.add_parser(name, help=help_text)
        p.add_argument("--url", default=os.environ.get("LOOKALIKE_URL", "http://127.0.0.1:8000"))
        p.add_argument("--key-id", default=None)
        p.add_argument("--secret", default=None)
        p.add_argument("--json", action="store_true")
        if name in ("quote", "order"):
            p.add_argument("kind", choices=["buy", "trial", "renew", "change"])
            p.add_argument("--package", default=None)
            p.add_argument("--unit", choices=["month", "year"], default=None)
            p.add_argument("--count", type=int, default=None)
        if name in ("quote", "order", "status"):
            p.add_argument("--instance", required=name == "status", default=None)
        if name == "order":
            p.add_argument("--idempotency-key", required=True)
        p.set_defaults(func=cmd_tenant)

    dup = sub.add_parser(
        "duplicates",
        help="find the copies among an instance's pictures (a duplicate report through the API)",
        description="Start a duplicate report on an instance (or read one with --report), wait for it, and "
        "print its groups of copies; --csv writes the whole report. Every picture of a group is a copy of "
        "its first one, the suggested one to keep; deleting is left to you (or the console's Duplicates "
        "page).",
    )
    dup.add_argument("--instance", required=True)
    dup.add_argument("--threshold", type=float, default=None, help="0.5-1.0; default 0.75")
    dup.add_argument("--report", type=int, default=None, help="read this report instead of starting one")
    dup.add_argument("--csv", default=None, help="write the whole report to this CSV file")
    dup.add_argument("--show", type=int, default=10, help="groups to print (0: none; at most 100)")
    dup.add_argument("--no-wait", action="store_true", help="start the report and return at once")
    dup.add_argument("--poll", type=float, default=2.0, help="seconds between progress checks")
    dup.add_argument("--url", default=os.environ.get("LOOKALIKE_URL", "http://127.0.0.1:8000"))
    dup.add_argument("--key-id", default=None)
    dup.add_argument("--secret", default=None)
    dup.add_argument("--json", action="store_true")
    dup.set_defaults(func=cmd_duplicates)

    imp = sub.add_parser(
        "import",
        help="bulk-add a directory or a JSON-lines manifest through the API (or, --engine ray, on a Ray "
        "cluster)",
    )
    data_dir_option(imp)
    imp.add_argument(
        "source",
        help="a directory of pictures, or a .jsonl manifest; a manifest's paths are read as given, "
        "absolute and '..' ones included (it is your own file: do not import a manifest you did not write)",
    )
    imp.add_argument("--instance", required=True)
    imp.add_argument("--url", default=os.environ.get("LOOKALIKE_URL", "http://127.0.0.1:8000"))
    imp.add_argument("--key-id", default=None)
    imp.add_argument("--secret", default=None)
    imp.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (default): post each picture to the API at --url; ray: analyse on a Ray cluster and "
        "write in bulk straight into the configured database and index (needs lookalike[ray])",
    )
    imp.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local: concurrent requests (default 4); ray: analysis actors (default 2)",
    )
    imp.add_argument(
        "--ray-address",
        default=None,
        help="the Ray cluster to run on (e.g. 10.0.0.5:6379, or auto); default $RAY_ADDRESS, else a "
        "local Ray started for the import",
    )
    imp.add_argument("--batch-size", type=int, default=16, help="ray: pictures a worker embeds at once")
    imp.add_argument("--write-batch", type=int, default=256, help="ray: pictures a write transaction holds")
    imp.add_argument("--cpus-per-worker", type=float, default=1.0, help="ray: CPUs each actor reserves")
    imp.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        help="ray: GPUs each actor reserves (e.g. 1, or 0.25 to share one by four); the model runs on the "
        "setting `device` (auto: CUDA where onnxruntime-gpu finds a GPU)",
    )
    imp.add_argument("--no-progress", action="store_true")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 2
    except LookalikeError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"code": exc.code, "message": exc.message}))
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
