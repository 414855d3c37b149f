"""`lookalike import`: bulk-add a directory or a .jsonl manifest, through the API (local engine) or on a
Ray cluster straight into the configured database and index (ray engine)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from lookalike.cli.errors import CliError, UsageError
from lookalike.cli.options import Parser, add_api_options, add_command, add_json_option, add_settings_options
from lookalike.cli.ray_address import RAY_FIX, ensure_reachable
from lookalike.cli.settings import settings_from_args
from lookalike.cli.tenant_client import TenantClient, access_key


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    imp = add_command(
        commands,
        "import",
        "bulk-add a directory or a JSON-lines manifest through the API (or, --engine ray, on a Ray cluster)",
        "Bulk-add pictures: a directory (ProductId = the first folder below it, PicName = the rest of the "
        "path) or a .jsonl manifest (one object per line: path, product_id, pic_name, attributes). A "
        "journal in the data directory's import-state/ lets a re-run skip what was done; adds are "
        "upserts, so nothing is doubled. The local engine posts each picture to the API; --engine ray "
        "analyses on a Ray cluster and writes straight into the configured database and index (an "
        "operator's command: the server's settings, no AccessKey).",
    )
    add_settings_options(imp)
    imp.add_argument(
        "source",
        help="a directory of pictures, or a .jsonl manifest; a manifest's paths are read as given, "
        "absolute and '..' ones included (it is your own file: do not import a manifest you did not write)",
    )
    imp.add_argument("--instance", required=True, help="name of the instance the pictures go into")
    add_api_options(imp)
    imp.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: post each picture to the API at --url; ray: analyse on a Ray cluster and write in bulk "
        "straight into the configured database and index (needs lookalike[ray])",
    )
    imp.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="local: concurrent requests (default 4); ray: analysis actors (default 2)",
    )
    imp.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="ray: the Ray cluster to run on (e.g. 10.0.0.5:6379, or auto); default $RAY_ADDRESS, else a "
        "local Ray started for the import",
    )
    imp.add_argument(
        "--batch-size", type=int, default=16, metavar="N", help="ray: pictures a worker embeds at once"
    )
    imp.add_argument(
        "--write-batch", type=int, default=256, metavar="N", help="ray: pictures a write transaction holds"
    )
    imp.add_argument(
        "--cpus-per-worker", type=float, default=1.0, metavar="N", help="ray: CPUs each actor reserves"
    )
    imp.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        metavar="N",
        help="ray: GPUs each actor reserves (e.g. 1, or 0.25 to share one by four); the model runs on the "
        "setting `device` (auto: CUDA where onnxruntime-gpu finds a GPU)",
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json_option(imp, "print the summary (counts, failures, journal) as one JSON object, for scripts")
    imp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return _import_with_ray(args)
    from lookalike.importer import run_import

    key_id, secret = access_key(args, "import")
    source = _source(args)
    _check_server(args.url, key_id, secret, args.instance)
    summary = run_import(
        source=source,
        instance=args.instance,
        url=args.url,
        key_id=key_id,
        secret=secret,
        state_dir=settings_from_args(args).data_dir / "import-state",
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
        raise UsageError(f"--engine ray needs Ray ({exc})", "pip install 'lookalike[ray]'") from None
    source = _source(args)
    settings = settings_from_args(args)
    ensure_reachable(args.ray_address or os.environ.get("RAY_ADDRESS"))
    try:
        summary = run_ray_import(
            settings=settings,
            source=source,
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
    except ConnectionError as exc:  # ray.init: no cluster found at `auto`, or it went away
        raise CliError(f"Ray: {exc}", RAY_FIX) from exc
    print(
        json.dumps(summary)
        if args.json
        else f"imported {summary['added']}, skipped {summary['skipped']}, failed {summary['failed']}"
        + (f" (errors: {summary['result_file']})" if summary["failed"] else "")
    )
    return 0 if summary["failed"] == 0 else 1


def _source(args: argparse.Namespace) -> Path:
    """The directory or manifest to import; one that is not there is an error (it would import nothing)."""
    source = Path(args.source)
    if not source.exists():
        raise CliError(
            f"no such directory or manifest: {source}",
            "give a directory of pictures or a .jsonl manifest (relative paths start here)",
        )
    return source


def _check_server(url: str, key_id: str, secret: str, instance: str) -> None:
    """Before the first picture: the server answers, takes the AccessKey and has the instance (otherwise
    every picture would fail the same way, each after its retries)."""
    with TenantClient(url, key_id, secret, timeout=60) as client:
        response = client.call("GET", "/v1/instances")
        if response.status_code == 401:
            raise client.refusal(response)
        if response.status_code != 200:
            return  # anything else each picture meets and reports on its own
        listed: Any = client.body(response)
    if not isinstance(listed, dict) or not isinstance(listed.get("instances"), list):
        return
    names = {entry.get("name") for entry in listed["instances"] if isinstance(entry, dict)}
    if instance not in names:
        raise CliError(
            f"the account of this AccessKey has no instance named {instance!r}",
            "check --instance (the console lists the account's instances), or create it first",
        )
