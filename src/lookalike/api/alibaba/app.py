"""HTTP routes of the Alibaba dialect (`router`), mounted by lookalike.api.app beside the native API (/v1).

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
from typing import Annotated, Final

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lookalike.api.alibaba import errors as ae
from lookalike.api.alibaba.dispatch import ACTIONS, Context, new_request_id
from lookalike.api.alibaba.request import ROA_PATHS, AcsRequest, parse_request
from lookalike.api.alibaba.signing import authenticate
from lookalike.api.limits import BodyTooLarge, Refusal
from lookalike.api.shared.dependencies import AllServices
from lookalike.api.shared.request_id import request_id as native_request_id
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.storage.nonce_store import NonceStore

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


def nonce_store(request: Request) -> NonceStore:
    """The app's signature nonces (lookalike.api.app puts the services' store there: a Redis-backed one
    when several processes serve the same keys, since a nonce seen by one must be refused by all)."""
    found: NonceStore = request.app.state.nonce_store
    return found


Nonces = Annotated[NonceStore, Depends(nonce_store)]


async def handle(request: Request, services: AllServices, nonces: Nonces) -> Response:
    rid = _request_id(request)
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


async def rpc_root(request: Request, services: AllServices, nonces: Nonces) -> Response:
    if (
        request.method == "GET"
        and "x-acs-action" not in request.headers
        and "authorization" not in request.headers
        and "Signature" not in request.query_params
    ):
        return JSONResponse(BROWSER_HINT)
    return await handle(request, services, nonces)


_load_action_modules()
router = APIRouter()
router.add_api_route("/", rpc_root, methods=["GET", "POST"], include_in_schema=False)
for _path in ROA_PATHS:
    router.add_api_route(_path, handle, methods=["POST"], include_in_schema=False)
