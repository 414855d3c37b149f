"""Every HTTP request counted and timed per route template and dialect, and written to the access log.

Routes are labelled by their template ("/v1/instances/{name}/images"), never the raw path, so ids in paths
cannot add series; a request no route took (404, or refused by the request limits first) is "unmatched".
Pure ASGI, installed outermost, so it times everything the application does, refusals included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.observability.logs import current_request_id
from lookalike.observability.metrics import Metrics

access_log = logging.getLogger("lookalike.access")

UNMATCHED: Final = "unmatched"
METRICS_PATH: Final = "/metrics"
# The Alibaba dialect's paths: RPC on "/", ROA under /v2/image/ (lookalike.api.alibaba.request.ROA_PATHS).
_ALIBABA_ROA_PREFIX: Final = "/v2/image/"


def dialect_of(path: str) -> str:
    """Which of the API's dialects a route (or path) belongs to: rest, alibaba, console, or other (the
    OpenAPI pages, /metrics)."""
    if path.startswith("/v1/") or path == "/v1":
        return "rest"
    if path == "/" or path.startswith(_ALIBABA_ROA_PREFIX):
        return "alibaba"
    if path.startswith("/console"):
        return "console"
    return "other"


def route_template(scope: Scope, before: Scope, routes: Sequence[BaseRoute]) -> str | None:
    """The path template of the route that took the request, if one did: the router names it in the scope
    (FastAPI's own routes); a plain Starlette route or mount (the OpenAPI pages, the console's static
    files) is matched here against the scope as it arrived (`before`: a mount rewrites the path)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    for route in routes:
        if isinstance(route, Route | Mount) and route.matches(before)[0] is Match.FULL:
            return route.path
    return None


class ObservabilityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        routes: Callable[[], Sequence[BaseRoute]],
        access_log_enabled: bool = True,
    ) -> None:
        self._app = app
        self._routes = routes
        self._metrics = metrics
        self._access_log = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        before = dict(scope)
        status = 500  # what the server answers if the application raises before it starts a response
        request_id: str | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"x-request-id":
                        request_id = value.decode("latin-1")
            await send(message)

        try:
            await self._app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            template = route_template(scope, before, self._routes())
            route = template or UNMATCHED
            dialect = dialect_of(template or scope.get("path", ""))
            method = str(scope.get("method", ""))
            self._metrics.request_served(dialect, route, method, status, seconds)
            if self._access_log and template != METRICS_PATH:  # not a line per scrape
                self._log(dialect, route, method, scope, status, seconds, request_id)

    @staticmethod
    def _log(
        dialect: str,
        route: str,
        method: str,
        scope: Scope,
        status: int,
        seconds: float,
        request_id: str | None,
    ) -> None:
        request_id = request_id or current_request_id()
        duration_ms = round(seconds * 1000, 1)
        path = str(scope.get("path", ""))
        access_log.info(
            "%s %s %d %.1f ms%s",
            method,
            path,
            status,
            duration_ms,
            f" request_id={request_id}" if request_id else "",
            extra={
                "method": method,
                "route": route,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "dialect": dialect,
                "request_id": request_id,
            },
        )
