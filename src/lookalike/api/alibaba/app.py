"""HTTP routes of the Alibaba dialect, mounted on the same FastAPI app as the native API (/v1).

    POST|GET /                      2020-12-14 RPC (x-acs-action, or Action in the query)
    POST     /v2/image/add|search|delete   2019-03-25 ROA

Every request goes parse -> authenticate (signature, timestamp, nonce) -> ACTIONS[(version, action)] ->
`{"RequestId", **body}`; every refusal is an Alibaba error body (errors.py). None of these routes is in the
OpenAPI schema: they are documented by Alibaba's reference, and their parameters live in a form body the
schema could not describe anyway.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import uuid
from typing import Final

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lookalike.api.alibaba import errors as ae
from lookalike.api.alibaba.dispatch import ACTIONS, Context, new_request_id
from lookalike.api.alibaba.request import ROA_PATHS, AcsRequest, parse_request
from lookalike.api.alibaba.signing import authenticate
from lookalike.api.limits import BodyTooLarge, Refusal
from lookalike.api.rest.errors import request_id as native_request_id
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.service.container import Services
from lookalike.storage.nonce_store import InMemoryNonceStore, NonceStore

log = logging.getLogger(__name__)


BROWSER_HINT: Final = {
    "Service": "Lookalike",
    "Message": (
        "This endpoint speaks the Alibaba Cloud Image Search API (2020-12-14 RPC on POST /, "
        "2019-03-25 ROA on /v2/image/*). Use an official Alibaba Cloud SDK with endpoint set to this "
        "host and protocol 'http' or 'https'. The native API and its documentation are under /v1 and /docs."
    ),
}


def _load_action_modules() -> None:
    """Import every module of the adapter package, so each @action decorator registers its handler.

    Discovering them (rather than listing them here) means a new action module needs no edit to this file.
    """
    package = importlib.import_module("lookalike.api.alibaba")
    for module in pkgutil.iter_modules(package.__path__, prefix="lookalike.api.alibaba."):
        if module.name != __name__:
            importlib.import_module(module.name)


def _request_id(request: Request) -> str:
    """The id the app middleware puts in X-Request-Id, in Alibaba's dashed upper-case UUID form."""
    try:
        return str(uuid.UUID(hex=native_request_id(request))).upper()
    except ValueError:
        return new_request_id()


def is_alibaba_path(path: str) -> bool:
    return path == "/" or path in ROA_PATHS


def alibaba_refusal(request: Request, refusal: Refusal) -> Response:
    """An Alibaba error body for a request refused by its size (an oversized body is InvalidPicContent,
    as the real service answers a too-large picture)."""
    code = e.INVALID_PIC_CONTENT if refusal.status == 413 else e.INVALID_PARAMETER
    return ae.error_response(LookalikeError(code, refusal.reason), _request_id(request), "")


def install_alibaba_routes(app: FastAPI, nonces: NonceStore | None = None) -> None:
    """Add the Alibaba routes to `app` (which must carry `app.state.services`).

    Each app gets its own nonce store unless one is passed (e.g. a shared Redis-backed store when several
    processes serve the same keys: a nonce seen by one must be refused by all).
    """
    _load_action_modules()
    app.state.nonce_store = nonces or InMemoryNonceStore()

    async def rpc_root(request: Request) -> Response:
        if (
            request.method == "GET"
            and "x-acs-action" not in request.headers
            and "authorization" not in request.headers
            and "Signature" not in request.query_params
        ):
            return JSONResponse(BROWSER_HINT)
        return await handle(request)

    app.add_api_route("/", rpc_root, methods=["GET", "POST"], include_in_schema=False)
    for path in ROA_PATHS:
        app.add_api_route(path, handle, methods=["POST"], include_in_schema=False)


async def handle(request: Request) -> Response:
    rid = _request_id(request)
    services: Services = request.app.state.services
    nonces: NonceStore = request.app.state.nonce_store
    acs: AcsRequest | None = None
    try:
        acs = await parse_request(request, services.settings.request_limits.max_form_fields)
        account = await run_in_threadpool(authenticate, acs, services, nonces)
        handler = ACTIONS.get((acs.version, acs.action))
        if handler is None:
            raise LookalikeError(
                ae.INVALID_ACTION,
                f"Specified api is not found: action {acs.action[:64]!r}, version {acs.version[:16]!r}.",
            )
        body = await run_in_threadpool(handler, Context(services, account, rid), acs)
    except LookalikeError as exc:
        action = acs.action if acs is not None else ""
        if exc.http_status >= 500 or exc.code == e.INTERNAL_ERROR:
            log.error("Alibaba %s failed [%s]: %s", action or request.url.path, rid, exc)
        return ae.error_response(exc, rid, action)
    except BodyTooLarge:
        raise  # the limits middleware answers it
    except Exception:
        log.exception("Alibaba %s crashed [%s]", acs.action if acs else request.url.path, rid)
        return ae.internal_error_response(rid)
    return JSONResponse({"RequestId": rid, **body})
