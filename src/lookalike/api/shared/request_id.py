"""The id of one HTTP request: made once, carried by the response's X-Request-Id, every error body and the
log lines about it, whatever the dialect (the Alibaba dialect writes it as a dashed UUID)."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.observability.logs import request_context


def request_id(request: Request) -> str:
    existing = getattr(request.state, "request_id", None)
    if isinstance(existing, str):
        return existing
    new_id = uuid.uuid4().hex.upper()
    request.state.request_id = new_id
    return new_id


class RequestIdMiddleware:
    """Every response carries X-Request-Id, the id its error body and the log name (pure ASGI: a
    BaseHTTPMiddleware would wrap a route's exceptions in task groups)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rid = request_id(Request(scope))
        tag = rid.encode()

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", tag)]}
            await send(message)

        with request_context(rid):  # every log line written for the request names it
            await self._app(scope, receive, tagged_send)
