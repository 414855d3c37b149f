"""Error bodies of the native API: {code, message, request_id} with the right HTTP status. The app-wide
exception handlers answer in this shape; the Alibaba dialect and the console catch their own errors first."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.api.limits import BodyTooLarge
from lookalike.api.shared.request_id import request_id
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError

log = logging.getLogger(__name__)


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "request_id": request_id(request)},
        status_code=status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LookalikeError)
    async def _lookalike(request: Request, exc: LookalikeError) -> JSONResponse:
        headers: dict[str, str] = {}
        if exc.retry_after is not None:
            wait = max(1, math.ceil(exc.retry_after))
            headers["Retry-After"] = str(wait)
            headers["RateLimit-Remaining"] = "0"
            headers["RateLimit-Reset"] = str(wait)
        if exc.code == e.SIGNATURE_MISMATCH or exc.http_status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="lookalike"'
        return error_response(request, exc.http_status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors()[:5]
        )
        return error_response(request, 400, e.INVALID_PARAMETER, problems or "Invalid request.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestTooLarge"}.get(
            exc.status_code, "HttpError"
        )
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(BodyTooLarge)
    async def _cut(request: Request, exc: BodyTooLarge) -> JSONResponse:
        # Never sent: the limits middleware replaces it with the refusal in the request's dialect. Handled
        # here only so a cut body is not logged as a crash.
        return error_response(request, 413, e.INVALID_PIC_CONTENT, "The request body is too large.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, e.INTERNAL_ERROR, "An internal server error occurred.")
