"""Bounds on one HTTP request, enforced while it is read, before any route parses or authenticates it.

One ASGI middleware for every route and dialect: a declared Content-Length over the limit is refused before
a byte of the body is read; a chunked (or lying) body is counted as it streams in and refused the moment it
passes the limit, so no route ever holds more than the limit in memory or on disk. The refusal's shape is
the dialect's (native JSON, Alibaba JSON, console page): the composition root passes `refuse`.

Header size is bounded by the HTTP parser itself (uvicorn's h11 `max_incomplete_event_size`, see cli.py);
the header count is checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.config import RequestLimits

DRAIN_FACTOR = 4  # bodies up to 4x the limit are read (and dropped) before the refusal; larger: cut at once
DRAIN_S = 10.0


def server_options(limits: RequestLimits) -> dict[str, Any]:
    """uvicorn settings that bound what its parser buffers before the app sees a request: h11, whose
    incomplete-event limit caps the request line plus headers (httptools buffers headers of any size)."""
    return {"http": "h11", "h11_max_incomplete_event_size": limits.max_header_bytes}


class BodyTooLarge(Exception):
    """Raised from `receive` once a body passes the limit; the middleware answers, never the route."""


@dataclass(frozen=True)
class Refusal:
    status: int  # 400, 413 or 431
    reason: str  # what the client sees in the dialect's message


Refuse = Callable[[Request, Refusal], Awaitable[Response]]


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_headers: int, refuse: Refuse) -> None:
        self._app = app
        self._max_body = max_body_bytes
        self._max_headers = max_headers
        self._refuse = refuse

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, refusal: Refusal, *, drain: int = 0
    ) -> None:
        if drain:
            await self._drain(receive, drain)
        response = await self._refuse(Request(scope), refusal)
        # Whatever is left unread is not read: the connection closes after this answer.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def _drain(self, receive: Receive, budget: int) -> None:
        """Read and drop up to `budget` more body bytes, for at most DRAIN_S, so that a client still
        sending a modestly oversized body reads the refusal instead of a reset connection (most clients
        only read the answer once they have sent everything). Nothing is kept: memory stays flat."""

        async def read() -> None:
            left = budget
            while left > 0:
                message = await receive()
                if message["type"] != "http.request":
                    return
                left -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return

        with contextlib.suppress(TimeoutError, BodyTooLarge):
            await asyncio.wait_for(read(), DRAIN_S)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(headers) > self._max_headers:
            refusal = Refusal(431, f"The request has more than {self._max_headers} headers.")
            await self._answer(scope, receive, send, refusal)
            return
        declared = [v for k, v in headers if k == b"content-length"]
        if declared:
            if len(declared) > 1 or not declared[0].strip().isdigit():
                refusal = Refusal(400, "The Content-Length header is invalid.")
                await self._answer(scope, receive, send, refusal)
                return
            length = int(declared[0])
            if length > self._max_body:
                drain = length if length <= self._max_body * DRAIN_FACTOR else 0
                await self._answer(scope, receive, send, self._too_large(), drain=drain)
                return

        received = 0
        exceeded = False
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                return  # whatever the route made of the cut body is replaced by the refusal below
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self._app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not response_started:
            drain = self._max_body * (DRAIN_FACTOR - 1)  # a chunked body: drain a bounded amount more
            await self._answer(scope, receive, send, self._too_large(), drain=drain)

    def _too_large(self) -> Refusal:
        return Refusal(413, f"The request body exceeds {self._max_body} bytes.")
