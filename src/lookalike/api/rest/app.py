"""The FastAPI application: native API under /v1, OpenAPI at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from lookalike import __version__
from lookalike.api.alibaba.app import install_alibaba_routes
from lookalike.api.console.app import console_too_large, install_console
from lookalike.api.rest.billing_routes import router as billing_router
from lookalike.api.rest.errors import error_response, install_error_handlers, request_id
from lookalike.api.rest.routes import router
from lookalike.api.rest.task_routes import router as task_router
from lookalike.api.rest.text_routes import router as text_router
from lookalike.domain import errors as e
from lookalike.service.container import Services


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
    # base64 inflates a picture by 4/3; leave room for the other fields.
    max_body = services.settings.image_limits.max_bytes * 2 + 1024 * 1024

    @app.middleware("http")
    async def limit_body_and_tag(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request_id(request)
        length = request.headers.get("content-length")
        # The Alibaba routes refuse oversized bodies themselves, in their own error shape.
        too_large = length is not None and length.isdigit() and int(length) > max_body
        if too_large and request.url.path.startswith("/v1/"):
            return error_response(
                request, 413, e.INVALID_PIC_CONTENT, f"The request body exceeds {max_body} bytes."
            )
        if too_large and request.url.path.startswith("/console/"):
            # Before the form parser spools the upload: the console's pictures obey the same limit.
            return console_too_large(request, max_body)
        response = await call_next(request)
        response.headers["X-Request-Id"] = rid
        return response

    install_error_handlers(app)
    app.include_router(router)
    app.include_router(billing_router)
    app.include_router(task_router)
    app.include_router(text_router)
    install_console(app)  # the web console at /console
    install_alibaba_routes(app, services.nonces)  # shared by replicas when Redis is configured
    return app
