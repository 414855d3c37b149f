"""The settings a command runs with, in config.py's one order: defaults, the --config file, LOOKALIKE_*
variables, then the command-line options."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from lookalike.config import Settings


def config_file(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if getattr(args, "config", None) else None


def settings_from_args(args: argparse.Namespace, options: dict[str, Any] | None = None) -> Settings:
    """Settings.load with --data-dir and --database-url (where given) and a command's own `options`."""
    given: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        given["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        given["database_url"] = args.database_url
    return Settings.load(os.environ, config_file(args), {**given, **(options or {})})


def configured(args: argparse.Namespace, name: str) -> bool:
    """Whether the config file or the environment sets `name` (a command-line default must not replace it)."""
    return Settings.configured(name, os.environ, config_file(args))
