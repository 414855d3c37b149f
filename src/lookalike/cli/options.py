"""The parser class, its help layout, and the options several commands share, each with its help."""

from __future__ import annotations

import argparse
import os
from typing import Any, NoReturn

DEFAULT_URL = "http://127.0.0.1:8000"
DEBUG_HELP = "on an error, print the traceback above the one-line message (also: LOOKALIKE_DEBUG=1)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it tells something: not for flags, unset or empty defaults, nor where
    the help already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False
            or default == []
            or default == argparse.SUPPRESS
        ):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage mistakes read as every other error: one line with the fix, status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"lookalike: error: {message} — see `{self.prog} --help`\n")


def add_command(
    commands: argparse._SubParsersAction[Parser], name: str, summary: str, description: str | None = None
) -> Parser:
    """A command (or command group): `summary` in its parent's list, `description` atop its own --help."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        formatter_class=HelpFormatter,
    )
    # --debug after the command too: `lookalike import ... --debug`.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    parser.set_defaults(command_prog=parser.prog)
    return parser


def add_settings_options(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """--data-dir, --database-url, --config: before the command (`lookalike --data-dir D serve`) or after it.

    No defaults: the config file and LOOKALIKE_* variables fill in what the options leave unset; after the
    command, an option left out must not hide one given before it (argparse.SUPPRESS)."""
    unset: Any = None if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--data-dir",
        default=unset,
        metavar="DIR",
        help="local state directory: SQLite database, indexes, keys, models (default: ./data, or the "
        "data_dir setting)",
    )
    parser.add_argument(
        "--database-url",
        default=unset,
        metavar="URL",
        help="SQLAlchemy URL of the database, e.g. postgresql+psycopg://user:pass@host/db (default: SQLite "
        "in the data directory, or the database_url setting)",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("LOOKALIKE_CONFIG") if top_level else argparse.SUPPRESS,
        metavar="FILE",
        help="TOML settings file, keys = setting names (README: Configuration reference); LOOKALIKE_* "
        "variables and options override it (default: $LOOKALIKE_CONFIG)",
    )


def add_api_options(parser: argparse.ArgumentParser) -> None:
    """Where the API is and the AccessKey to call it with (commands that go through the HTTP API)."""
    parser.add_argument(
        "--url",
        default=os.environ.get("LOOKALIKE_URL", DEFAULT_URL),
        help=f"base URL of the Lookalike server (default: $LOOKALIKE_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--key-id",
        default=None,
        metavar="ID",
        help="AccessKeyId to call the API with (default: $LOOKALIKE_ACCESS_KEY_ID)",
    )
    parser.add_argument(
        "--secret",
        default=None,
        help="AccessKeySecret of --key-id (default: $LOOKALIKE_ACCESS_KEY_SECRET; the environment keeps it "
        "out of the process list)",
    )


def add_json_option(
    parser: argparse.ArgumentParser, what: str = "print one JSON object on stdout, for scripts"
) -> None:
    parser.add_argument("--json", action="store_true", help=what)
