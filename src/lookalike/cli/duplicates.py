"""`lookalike duplicates`: a duplicate report through the API, waited for and printed (or written as CSV)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from lookalike.cli.errors import CliError
from lookalike.cli.options import Parser, add_api_options, add_command, add_json_option
from lookalike.cli.tenant_client import TenantClient, access_key


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    dup = add_command(
        commands,
        "duplicates",
        "find the copies among an instance's pictures (a duplicate report through the API)",
        "Start a duplicate report on an instance (or read one with --report), wait for it, and print its "
        "groups of copies; --csv writes the whole report. Every picture of a group is a copy of its first "
        "one, the suggested one to keep; deleting is left to you (or the console's Duplicates page).",
    )
    dup.add_argument("--instance", required=True, help="the instance whose pictures are compared")
    dup.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="score from which two pictures are copies, 0.5-1.0 (default: 0.75)",
    )
    dup.add_argument(
        "--report", type=int, default=None, metavar="ID", help="read this report instead of starting one"
    )
    dup.add_argument("--csv", default=None, metavar="FILE", help="write the whole report to this CSV file")
    dup.add_argument(
        "--show", type=int, default=10, metavar="N", help="groups to print (0: none; at most 100)"
    )
    dup.add_argument("--no-wait", action="store_true", help="start the report and return at once")
    dup.add_argument(
        "--poll", type=float, default=2.0, metavar="SECONDS", help="seconds between progress checks"
    )
    add_api_options(dup)
    add_json_option(dup, "print the report and its shown groups as one JSON object, for scripts")
    dup.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    key_id, secret = access_key(args, "duplicates")
    base = f"/v1/instances/{quote(args.instance, safe='')}/duplicates"
    with TenantClient(args.url, key_id, secret, timeout=120) as client:

        def get(path: str, **kwargs: Any) -> Any:
            return _answer(client, client.call("GET", path, patient=True, **kwargs))

        if args.report is not None:
            report = get(f"{base}/{args.report}")
        else:
            body = {} if args.threshold is None else {"threshold": args.threshold}
            report = _answer(client, client.call("POST", base, patient=True, json=body))
        while report["status"] == "PROCESSING" and not args.no_wait:
            if not args.json:
                print(
                    f"\rscanned {report['scanned']} of about {report['total']} pictures",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(args.poll)
            report = get(f"{base}/{report['id']}")
        if not args.json and not args.no_wait:
            print(file=sys.stderr)
        if report["status"] == "FAIL":
            raise CliError(
                f"report {report['id']} failed: {report['message']}",
                "start another one; if it fails again, the server's log says why",
            )
        if args.csv and report["status"] == "SUCCESS":
            exported = client.call("GET", f"{base}/{report['id']}/csv", patient=True)
            _answer(client, exported, json_body=False)
            Path(args.csv).write_text(exported.text, encoding="utf-8")
        groups: list[dict[str, Any]] = []
        if report["status"] == "SUCCESS" and args.show:
            groups = get(f"{base}/{report['id']}/groups", params={"page_size": str(args.show)})["groups"]
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


def _answer(client: TenantClient, response: httpx.Response, *, json_body: bool = True) -> Any:
    """A 200 answer's JSON (or nothing); any other answer is the error this command ends with."""
    if response.status_code != 200:
        raise client.refusal(response)
    return client.body(response) if json_body else None
