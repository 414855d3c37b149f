"""Action registry and the one entry point every Alibaba-style request goes through:
parse -> authenticate (signature, timestamp, nonce) -> run the action -> Alibaba-shaped JSON or error."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lookalike.api.alibaba.request import AcsRequest
from lookalike.domain.models import Account
from lookalike.service.container import Services


@dataclass(frozen=True)
class Context:
    services: Services
    account: Account
    request_id: str


Handler = Callable[[Context, AcsRequest], dict[str, Any]]

# (version, action) -> handler. Handlers return the body without RequestId; dispatch adds it.
ACTIONS: dict[tuple[str, str], Handler] = {}


def action(version: str, name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ACTIONS[(version, name)] = handler
        return handler

    return register


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()
