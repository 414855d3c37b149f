"""The FastAPI application: native API under /v1, OpenAPI at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike import __version__
from lookalike.api.alibaba.app import alibaba_refusal, install_alibaba_routes, is_alibaba_path
from lookalike.api.console.app import console_refusal, install_console
from lookalike.api.limits import Refusal, RequestLimitsMiddleware
from lookalike.api.rest.billing_routes import router as billing_router
from lookalike.api.rest.duplicate_routes import router as duplicate_router
from lookalike.api.rest.errors import error_response, install_error_handlers, request_id
from lookalike.api.rest.routes import router
from lookalike.api.rest.task_routes import router as task_router
from lookalike.api.rest.text_routes import router as text_router
from lookalike.domain import errors as e
from lookalike.service.container import Services


class RequestIdMiddleware:
    """Every response carries X-Request-Id, the id its error body and the log name (pure ASGI: a
    BaseHTTPMiddleware would wrap a route's exceptions in task groups)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rid = request_id(Request(scope)).encode()

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid)]}
            await send(message)

        await self._app(scope, receive, tagged_send)


def create_app(services: Services, *, close_on_shutdown: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            services.close()

    app = FastAPI(
        title="Lookalike",
        version=__version__,
        description=(
            "Self-hosted image search. Authenticate with HTTP Basic: AccessKeyId as user, secret as password."
        ),
        lifespan=lifespan,
    )
    app.state.services = services

    limits = services.settings.request_limits
    # Runs before every route: a body is bounded before any dialect or signature check sees it.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=limits.body_bytes(services.settings.image_limits),
        max_headers=limits.max_headers,
        refuse=refuse_in_dialect,
    )
    app.add_middleware(RequestIdMiddleware)  # outermost: refusals carry the id too

    install_error_handlers(app)
    app.include_router(router)
    app.include_router(billing_router)
    app.include_router(task_router)
    app.include_router(text_router)
    app.include_router(duplicate_router)
    install_console(app)  # the web console at /console
    install_alibaba_routes(app, services.nonces)  # shared by replicas when Redis is configured
    return app


async def refuse_in_dialect(request: Request, refusal: Refusal) -> Response:
    """A request refused by its size, in the error shape its client reads."""
    path = request.url.path
    if is_alibaba_path(path):
        return alibaba_refusal(request, refusal)
    if path.startswith("/console/"):
        return console_refusal(request, refusal)
    code = e.INVALID_PIC_CONTENT if refusal.status == 413 else e.INVALID_PARAMETER
    return error_response(request, refusal.status, code, refusal.reason)
