"""The composition root: the one place that builds the HTTP application.

It adds what runs before every route (request limits, the request id), the native error handlers, and mounts
the three dialects side by side: the native API under /v1 (OpenAPI at /docs), the Alibaba Image Search
dialect on / and /v2/image/*, and the web console under /console. The dialects never import each other;
what they share lives in lookalike.api.shared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from lookalike import __version__
from lookalike.api.alibaba.app import alibaba_refusal, is_alibaba_path
from lookalike.api.alibaba.app import router as alibaba_router
from lookalike.api.console.app import console_refusal
from lookalike.api.console.app import router as console_router
from lookalike.api.console.app import static_files as console_static_files
from lookalike.api.limits import Refusal, RequestLimitsMiddleware
from lookalike.api.rest.routers import ROUTERS as REST_ROUTERS
from lookalike.api.shared.errors import error_response, install_error_handlers
from lookalike.api.shared.request_id import RequestIdMiddleware
from lookalike.domain import errors as e
from lookalike.observability.install import install_metrics
from lookalike.service.container import Services


def create_app(services: Services, *, close_on_shutdown: bool = True) -> FastAPI:
    """The application over `services`; it closes them on shutdown unless the caller owns them."""

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
    app.state.services = services  # read by the dependencies in lookalike.api.shared.dependencies
    # Signature nonces of the Alibaba dialect: shared by replicas when Redis is configured.
    app.state.nonce_store = services.nonces

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
    for router in REST_ROUTERS:
        app.include_router(router)
    # The console: static files first, then its pages (whose last route answers any other /console path).
    app.mount("/console/static", console_static_files(), name="console-static")
    app.include_router(console_router)
    app.include_router(alibaba_router)
    install_metrics(app, services)  # GET /metrics; its middleware goes outermost, timing all of the above
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
