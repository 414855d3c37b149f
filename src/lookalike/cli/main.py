"""`lookalike`'s entry point: parse, run the command, and turn any failure into one line on stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from lookalike.cli.errors import explain
from lookalike.cli.parser import build_parser
from lookalike.domain.errors import LookalikeError

INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except KeyboardInterrupt:
        print("lookalike: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        if _debugging(args):
            traceback.print_exc()
        if isinstance(exc, LookalikeError) and getattr(args, "json", False):
            # --json: scripts read the refusal's code on stdout, as they read an answer.
            print(json.dumps({"code": exc.code, "message": exc.message}))
        failure = explain(exc, getattr(args, "command_prog", "lookalike"))
        print(failure.line(), file=sys.stderr)
        return failure.status


def _debugging(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("LOOKALIKE_DEBUG", "").lower() in (
        "1",
        "true",
        "yes",
        "on",
    )
