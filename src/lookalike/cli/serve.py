"""`lookalike serve`: the HTTP server (native API, Alibaba dialect, console), and its upload listener."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.cli.errors import UsageError
from lookalike.cli.operator_credentials import announce_operator
from lookalike.cli.options import Parser, add_command, add_settings_options
from lookalike.cli.ports import ensure_free
from lookalike.cli.settings import configured, settings_from_args
from lookalike.cli.upload_listener import start_upload_listener, upload_options
from lookalike.clock import OffsetClock, SystemClock
from lookalike.config import Settings, parse_buckets, parse_hosts

if TYPE_CHECKING:
    from lookalike.service.container import Services


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    serve = add_command(
        commands,
        "serve",
        "run the HTTP server",
        "Run the HTTP server: the native API under /v1 (docs at /docs), the Alibaba Image Search dialect and "
        "the web console under /console. The first start creates the operator account and prints its "
        "AccessKey and console password (saved 0600 in the data directory).",
    )
    add_settings_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port of the HTTP server")
    serve.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="base URL clients reach this server at, for the signed download links of export tasks "
        "(default: the public_base_url setting, else http://HOST:PORT)",
    )
    serve.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="NAME@ACCOUNT=DIR",
        help="an IncreaseInstance bucket and the accounts (ids or names, joined by +) that may use it, "
        "e.g. imports@acme+globex=/srv/import; NAME@*=DIR lets every account use it (repeat)",
    )
    serve.add_argument(
        "--callback-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host a task's CallbackAddress may name (repeat; added to the callback_hosts setting)",
    )
    serve.add_argument(
        "--catalogue",
        default=None,
        metavar="FILE",
        help="catalogue JSON file: packages and prices (default: the packaged one)",
    )
    serve.add_argument(
        "--trial-seats",
        type=int,
        default=None,
        metavar="N",
        help="initial number of free-trial seats (default: the trial_seats setting, 100)",
    )
    serve.add_argument(
        "--demo-clock", action="store_true", help="let the operator move this server's clock (demos only)"
    )
    serve.add_argument(
        "--upload-port",
        type=int,
        default=0,
        help="HTTPS port for the Alibaba SDK's *_advance uploads (default: 0, disabled)",
    )
    serve.add_argument(
        "--upload-host", default=None, help="address the upload listener binds (default: --host)"
    )
    serve.add_argument(
        "--upload-public-host",
        default=None,
        metavar="HOST:PORT",
        help="host:port clients reach the upload listener at, split at its first dot into Bucket.Endpoint "
        "(default: --upload-host:--upload-port; e.g. uploads.example.com:8443)",
    )
    serve.add_argument(
        "--upload-cert",
        default=None,
        metavar="PEM",
        help="PEM certificate of the upload listener (default: self-signed in the data dir)",
    )
    serve.add_argument("--upload-key", default=None, metavar="PEM", help="PEM private key for --upload-cert")
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None,
        help="log lines as plain text or one JSON object each, with the request id (default: the log_format "
        "setting, text)",
    )
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from lookalike.api.app import create_app
    from lookalike.api.limits import server_options
    from lookalike.bulk.ray_analysis import RayAnalysisEngine
    from lookalike.observability.logs import configure_logging, uvicorn_log_options
    from lookalike.service.container import build_services

    settings = settings_from_args(args, serve_options(args))
    settings = settings.with_options(task_options(args, settings))
    configure_logging(settings.log_format)
    # Said now, not after the model has loaded: the port (or the upload port) is taken.
    ensure_free(args.host, args.port, port_option="--port", host_option="--host")
    clock = OffsetClock() if args.demo_clock else SystemClock()
    # IncreaseInstance tasks go to the Ray cluster the setting ray_address names (here, else; one log line).
    services = build_services(settings, clock=clock, connect_bulk_engine=RayAnalysisEngine.connect)
    base_url = f"http://{args.host}:{args.port}"
    announce_operator(settings, services)
    print(
        f"Lookalike listening on {base_url}  (API docs: {base_url}/docs, console: {base_url}/console)\n"
        f"  image model on {_model_device(services)} (setting device = {settings.device})\n"
        f"  try: curl -u KEY_ID:SECRET {base_url}/v1/instances",
        flush=True,
    )
    listener = (
        start_upload_listener(settings, services, host=args.upload_host or args.host, port=args.upload_port)
        if args.upload_port
        else None
    )
    app = create_app(services)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            **uvicorn_log_options(settings.log_format),
            **server_options(settings.request_limits),
        )
    finally:
        if listener is not None:
            listener.stop()
    return 0


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings serve's own options give (the last word over the file and the environment)."""
    options: dict[str, Any] = {}
    if args.catalogue:
        options["catalogue_path"] = Path(args.catalogue)
    if args.trial_seats is not None:
        options["trial_seats"] = args.trial_seats
    if args.log_format:
        options["log_format"] = args.log_format
    if args.upload_port:
        options |= upload_options(
            host=args.upload_host or args.host,
            port=args.upload_port,
            public_host=args.upload_public_host,
            cert=args.upload_cert,
            key=args.upload_key,
        )
    return options


def task_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """--public-url, --bucket NAME=DIR, --callback-host: export links and IncreaseInstance buckets; buckets
    and hosts add to the configured ones."""
    options: dict[str, Any] = {}
    if args.public_url:
        options["public_base_url"] = args.public_url.rstrip("/")
    elif not configured(args, "public_base_url"):
        options["public_base_url"] = f"http://{args.host}:{args.port}"  # links point at this very server
    if args.bucket:
        try:
            given = parse_buckets(",".join(args.bucket))
        except ValueError as exc:
            raise UsageError(
                str(exc), "write --bucket NAME@ACCOUNT=DIR, e.g. imports@acme=/srv/import"
            ) from None
        options["buckets"] = {**settings.buckets, **given}
    if args.callback_host:
        options["callback_hosts"] = settings.callback_hosts | parse_hosts(",".join(args.callback_host))
    return options


def _model_device(services: Services) -> str:
    """Where the image model runs, as the start-up banner says it (lookalike.vision.embedder)."""
    return str(getattr(services.batcher.embedder, "device", "cpu"))
