"""What the admin commands share: the control plane over the configured database, and their output."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from lookalike.cli.settings import settings_from_args
from lookalike.clock import SystemClock
from lookalike.domain.errors import LookalikeError

if TYPE_CHECKING:
    from lookalike.service.container import ControlPlane


def control(args: argparse.Namespace) -> ControlPlane:
    """The services an operator's command needs (no model, no server), on the configured database."""
    from lookalike.service.container import build_control_plane

    return build_control_plane(settings_from_args(args), SystemClock())


def emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    """--json: one JSON object a script can parse; else the human-readable text."""
    if getattr(args, "json", False):
        print(json.dumps(payload))
    else:
        print(human)


def fields(payload: dict[str, Any]) -> str:
    """A payload as `name: value` lines, the human form of most admin answers."""
    return "\n".join(f"{k}: {v}" for k, v in payload.items())


def minor(text: str, exponent: int) -> int:
    """A decimal amount ("500.00") in minor units of the catalogue currency."""
    from lookalike.domain.money import parse_decimal_amount

    try:
        return parse_decimal_amount(text, exponent)
    except ValueError as exc:
        raise LookalikeError("InvalidAmount", str(exc)) from None
