"""Alibaba-shaped error answers: our LookalikeError codes -> Image Search / POP codes and HTTP statuses.

The domain already uses Alibaba's names wherever the product has one (domain/errors.py), so this is mostly
a status table (reference §8); the few renames are listed below with the reason for each.

The official SDKs decide the exception class from the HTTP status alone (4xx ClientException, 5xx
ServerException, ThrottlingException only if a positive `x-acs-retry-after` header is present) and copy
`Code` from the JSON body, so the status and `Code` here are what a migrating customer's `except` blocks see.

Decisions:
* `DeniedRequest` (flow control) is 403 like Image Search documents, WITHOUT `x-acs-retry-after`: the SDK
  then raises ClientException(code="DeniedRequest"), which is what code written against the real service
  catches. A plain `Retry-After` header is added for other HTTP clients; the SDKs ignore it.
* `InstanceStatusError` (expired, overdue, released-pending) is 409, as the help page and the 2019 metadata
  say (the 2020 metadata says 400; the issue asks for 409).
* The console-type actions (Detail, DumpMeta, DumpMetaList, IncreaseInstance, IncreaseList) use the
  `Console.` family their metadata lists: an unknown (or another tenant's) instance is
  `Console.InstanceNotFound` 400 and an unavailable one `Console.InstanceStatusError` 409.
* Native statuses that differ from Alibaba's are overridden: PicNotExist (native 404), UnsupportedPicFormat
  (native 415), an oversized picture (native 413) all answer 400 as Image Search does.
* Native codes Alibaba lacks: InvalidScoreThreshold -> `InvalidParameter` (POP's generic code, which
  customer code may already handle; the message still names the parameter); MissingCredentials ->
  `MissingAccessKeyId`. Billing/operator codes (CapacityBelowUsage, InsufficientBalance, …) cannot come
  from an Image Search action; if one ever does, it keeps its own code and native status, which is more
  useful than a made-up translation.
* Any other code keeps its code and its native status (400 for codes the native table does not list,
  e.g. the per-slot InvalidIntAttr2..4 / InvalidStrAttr2..4).
* 5xx answers never carry the internal message (it may name files or SQL); the log has it.
"""

from __future__ import annotations

import math
from typing import Final

from starlette.responses import JSONResponse

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError

# POP gateway codes the domain does not define (raised by signing.py and app.py).
MISSING_ACCESS_KEY_ID: Final = "MissingAccessKeyId"
INCOMPLETE_SIGNATURE: Final = "IncompleteSignature"
TIMESTAMP_EXPIRED: Final = "InvalidTimeStamp.Expired"
TIMESTAMP_FORMAT: Final = "InvalidTimeStamp.Format"
NONCE_USED: Final = "SignatureNonceUsed"
MISSING_NONCE: Final = "MissingSignatureNonce"
INVALID_ACTION: Final = "InvalidAction.NotFound"
CONTENT_MD5_MISMATCH: Final = "InvalidContentMD5"  # ROA Content-MD5 header does not match the body
CONSOLE_INSTANCE_NOT_FOUND: Final = "Console.InstanceNotFound"
CONSOLE_INSTANCE_STATUS_ERROR: Final = "Console.InstanceStatusError"
CONSOLE_TASK_ALREADY_EXIST: Final = "Console.TaskAlreadyExist"

HOST_ID: Final = "lookalike"

CONSOLE_ACTIONS: Final = frozenset({"Detail", "DumpMeta", "DumpMetaList", "IncreaseInstance", "IncreaseList"})

# Native code -> Alibaba code, for every action.
_RENAMES: Final[dict[str, str]] = {
    e.INVALID_SCORE_THRESHOLD: e.INVALID_PARAMETER,
    e.MISSING_CREDENTIALS: MISSING_ACCESS_KEY_ID,
}
# Native code -> Alibaba code, console-type actions only.
_CONSOLE_RENAMES: Final[dict[str, str]] = {
    e.INVALID_INSTANCE: CONSOLE_INSTANCE_NOT_FOUND,
    e.INSTANCE_STATUS_ERROR: CONSOLE_INSTANCE_STATUS_ERROR,
}

STATUS: Final[dict[str, int]] = {
    # authentication (POP gateway)
    MISSING_ACCESS_KEY_ID: 400,
    INCOMPLETE_SIGNATURE: 400,
    TIMESTAMP_EXPIRED: 400,
    TIMESTAMP_FORMAT: 400,
    NONCE_USED: 400,
    MISSING_NONCE: 400,
    CONTENT_MD5_MISMATCH: 400,
    e.SIGNATURE_MISMATCH: 400,
    e.INVALID_ACCESS_KEY: 404,
    e.ACCESS_KEY_DISABLED: 400,
    INVALID_ACTION: 404,
    e.NO_PERMISSION: 403,
    # instance
    e.INVALID_INSTANCE: 400,
    e.INVALID_INSTANCE_NAME: 400,
    e.INSTANCE_STATUS_ERROR: 409,
    e.INSTANCE_OVER_QUOTA: 400,
    e.DENIED_REQUEST: 403,
    CONSOLE_INSTANCE_NOT_FOUND: 400,
    CONSOLE_INSTANCE_STATUS_ERROR: 409,
    CONSOLE_TASK_ALREADY_EXIST: 409,
    "Console.IncrementStatusError": 409,
    "Console.BadRequest": 400,
    "Console.NoPermission": 403,
    "Console.InternalError": 500,
    # parameters and pictures
    e.INVALID_PARAMETER: 400,
    e.INVALID_PIC_CONTENT: 400,
    e.UNSUPPORTED_PIC_FORMAT: 400,
    e.UNSUPPORTED_PIC_PIXELS: 400,
    e.PIC_NOT_EXIST: 400,
    e.INVALID_REGION: 400,
    e.INVALID_CATEGORY: 400,
    e.INVALID_FILTER_CLAUSE: 400,
    e.INVALID_NUM: 400,
    e.INVALID_START: 400,
    e.OVERFLOW_MAX_RETURN_NUM: 400,
    e.OVERFLOW_MAX_RESULT_NUM: 400,
    e.INVALID_PRODUCT_ID: 400,
    e.INVALID_PIC_NAME: 400,
    e.INVALID_CUSTOM_CONTENT: 400,
    e.NO_SPECIFIED_PRODUCT_ID: 400,
    e.NO_SPECIFIED_PIC_NAME: 400,
    e.NO_SPECIFIED_PIC_CONTENT: 400,
    # internal
    e.TEXT_SEARCH_UNAVAILABLE: 503,
    e.INTERNAL_ERROR: 500,
}

GENERIC_INTERNAL_MESSAGE: Final = "An internal server error occurred."
_PUBLIC_5XX: Final = frozenset({e.TEXT_SEARCH_UNAVAILABLE})


def alibaba_code(code: str, action: str) -> str:
    if action in CONSOLE_ACTIONS and code in _CONSOLE_RENAMES:
        return _CONSOLE_RENAMES[code]
    return _RENAMES.get(code, code)


def alibaba_status(code: str, native_status: int) -> int:
    """`code` is already the Alibaba code."""
    if code in STATUS:
        return STATUS[code]
    # Per-slot variants (InvalidIntAttr2..4, InvalidStrAttr2..4) and other unlisted codes have no native
    # status entry, so they arrive as 400; billing codes keep theirs (402, 409).
    return native_status if 400 <= native_status < 600 else 400


def error_body(code: str, message: str, request_id: str) -> dict[str, str]:
    return {"RequestId": request_id, "HostId": HOST_ID, "Code": code, "Message": message, "Recommend": ""}


def error_response(exc: LookalikeError, request_id: str, action: str) -> JSONResponse:
    code = alibaba_code(exc.code, action)
    status = alibaba_status(code, exc.http_status)
    # A 5xx says nothing of the server's insides, except a refusal written for the caller (503).
    message = GENERIC_INTERNAL_MESSAGE if status >= 500 and code not in _PUBLIC_5XX else exc.message
    headers: dict[str, str] = {}
    if exc.retry_after is not None and code == e.DENIED_REQUEST:
        # Standard header only: `x-acs-retry-after` would turn the SDK's ClientException into a
        # ThrottlingException, which code written against the real service does not expect.
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse(error_body(code, message, request_id), status_code=status, headers=headers)


def internal_error_response(request_id: str) -> JSONResponse:
    return JSONResponse(error_body(e.INTERNAL_ERROR, GENERIC_INTERNAL_MESSAGE, request_id), status_code=500)
