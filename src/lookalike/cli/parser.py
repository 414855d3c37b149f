"""The `lookalike` argument parser: the options every command shares, then each command group's own."""

from __future__ import annotations

from lookalike import __version__
from lookalike.cli import admin, bulk_import, duplicates, serve, tenant
from lookalike.cli.options import DEBUG_HELP, HelpFormatter, Parser, add_settings_options


def build_parser() -> Parser:
    parser = Parser(
        prog="lookalike",
        description="Self-hosted image search, compatible with Alibaba Cloud Image Search: the server, the "
        "operator's tasks, a tenant's billing calls, duplicate reports and bulk import. Settings come from "
        "defaults, the --config file, LOOKALIKE_* variables and the options, later ones winning.",
        epilog="`lookalike COMMAND --help` describes a command and its options.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lookalike {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    add_settings_options(parser, top_level=True)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="what to do (each has its own --help)"
    )
    for group in (serve, admin, tenant, duplicates, bulk_import):
        group.register(commands)
    return parser
