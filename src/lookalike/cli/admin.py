"""`lookalike admin`: operator tasks straight on the configured database (no server needed)."""

from __future__ import annotations

import argparse

from lookalike.cli import admin_accounts, admin_billing, admin_instances
from lookalike.cli.options import Parser, add_command, add_json_option, add_settings_options


def register(commands: argparse._SubParsersAction[Parser]) -> None:
    admin = add_command(
        commands,
        "admin",
        "operator tasks on the data directory",
        "Operator tasks straight on the data directory and the configured database (the server's settings: "
        "--config, LOOKALIKE_*); no server needs to run. Every one accepts --json and then prints one JSON "
        "object on stdout.",
    )
    admin_commands = admin.add_subparsers(
        dest="admin_command", metavar="COMMAND", required=True, help="the task (each has its own --help)"
    )
    for group in (admin_accounts, admin_instances, admin_billing):
        group.register(admin_commands)
    for command in admin_commands.choices.values():
        add_settings_options(command)
        add_json_option(command, "print one JSON object (ids and secrets) on stdout, for scripts")
