"""Error types shared by every layer.

One exception class carries an Alibaba-style error code; each API dialect maps
the code to its own HTTP status and body. Codes are the Alibaba Image Search
codes where one exists, so the compatibility adapter needs no translation table.
"""

from __future__ import annotations

from typing import Final


class LookalikeError(Exception):
    """A refusal the caller can act on: a stable code plus a human message."""

    def __init__(
        self, code: str, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self._status = status

    @property
    def http_status(self) -> int:
        """Native API status; `status` overrides the code's default (e.g. 413 for an oversized picture)."""
        return self._status or NATIVE_HTTP_STATUS.get(self.code, 400)


# Codes (Alibaba names where the product has one).
INVALID_PIC_CONTENT: Final = "InvalidPicContent"  # empty, too large, undecodable
UNSUPPORTED_PIC_FORMAT: Final = "UnsupportedPicFormat"
UNSUPPORTED_PIC_PIXELS: Final = "UnsupportedPicPixels"  # side too small/large, decompression bomb
INVALID_REGION: Final = "InvalidRegion"
INVALID_FILTER_CLAUSE: Final = "InvalidFilterClause"
INVALID_CATEGORY: Final = "InvalidCategory"
INVALID_NUM: Final = "InvalidNumParameter"
INVALID_START: Final = "InvalidStartParameter"
OVERFLOW_MAX_RETURN_NUM: Final = "OverflowMaxReturnNum"
OVERFLOW_MAX_RESULT_NUM: Final = "OverflowMaxResultNum"
INVALID_SCORE_THRESHOLD: Final = "InvalidScoreThreshold"
INVALID_PRODUCT_ID: Final = "InvalidProductId"
INVALID_PIC_NAME: Final = "InvalidPicName"
INVALID_CUSTOM_CONTENT: Final = "InvalidCustomContent"
INVALID_INT_ATTR: Final = "InvalidIntAttr"  # suffixed 2..4 for the other slots
INVALID_STR_ATTR: Final = "InvalidStrAttr"
NO_SPECIFIED_PRODUCT_ID: Final = "NoSpecifiedProductId"
NO_SPECIFIED_PIC_NAME: Final = "NoSpecifiedPicName"
NO_SPECIFIED_PIC_CONTENT: Final = "NoSpecifiedPicContent"
PIC_NOT_EXIST: Final = "PicNotExist"
INVALID_PARAMETER: Final = "InvalidParameter"
INVALID_INSTANCE: Final = "InvalidInstance"  # unknown, or another tenant's: indistinguishable on purpose
INVALID_INSTANCE_NAME: Final = "InvalidInstanceName"
INSTANCE_ALREADY_EXISTS: Final = "InstanceAlreadyExists"
INSTANCE_OVER_QUOTA: Final = "InstanceOverQuota"
INSTANCE_STATUS_ERROR: Final = "InstanceStatusError"
DENIED_REQUEST: Final = "DeniedRequest"  # rate limit
INVALID_ACCESS_KEY: Final = "InvalidAccessKeyId.NotFound"
ACCESS_KEY_DISABLED: Final = "InvalidAccessKeyId.Inactive"
SIGNATURE_MISMATCH: Final = "SignatureDoesNotMatch"
MISSING_CREDENTIALS: Final = "MissingCredentials"
NO_PERMISSION: Final = "NoPermission"
ACCOUNT_NOT_FOUND: Final = "AccountNotFound"
INTERNAL_ERROR: Final = "InternalError"
# Billing (no Alibaba equivalent).
INVALID_PACKAGE: Final = "InvalidPackage"  # unknown, not offered to this account, or unusable for the order
INVALID_PERIOD: Final = "InvalidPeriod"  # subscription duration unit/count
INVALID_CATALOGUE: Final = "InvalidCatalogue"  # operator's catalogue file fails validation
CAPACITY_BELOW_USAGE: Final = "CapacityBelowUsage"  # package capacity < pictures already stored
INSUFFICIENT_BALANCE: Final = "InsufficientBalance"  # no overdraft: the order is refused whole
TRIAL_UNAVAILABLE: Final = "TrialUnavailable"  # already used by this account, or no seat left
IDEMPOTENCY_KEY_REQUIRED: Final = "IdempotencyKeyRequired"
IDEMPOTENCY_CONFLICT: Final = "IdempotencyConflict"  # same key, different parameters
INVALID_AMOUNT: Final = "InvalidAmount"
TEXT_SEARCH_UNAVAILABLE: Final = "TextSearchUnavailable"  # the operator has not installed the text model
PRICE_CHANGED: Final = "PriceChanged"  # the order now costs more than the `max_total` the customer confirmed

# Statuses for the native REST API; the Alibaba adapter keeps its own table.
NATIVE_HTTP_STATUS: Final[dict[str, int]] = {
    INVALID_PIC_CONTENT: 400,
    UNSUPPORTED_PIC_FORMAT: 415,
    UNSUPPORTED_PIC_PIXELS: 400,
    INVALID_INSTANCE: 404,
    ACCOUNT_NOT_FOUND: 404,
    PIC_NOT_EXIST: 404,
    INSTANCE_ALREADY_EXISTS: 409,
    INSTANCE_OVER_QUOTA: 409,
    INSTANCE_STATUS_ERROR: 409,
    CAPACITY_BELOW_USAGE: 409,
    INSUFFICIENT_BALANCE: 402,
    TRIAL_UNAVAILABLE: 409,
    IDEMPOTENCY_KEY_REQUIRED: 400,
    IDEMPOTENCY_CONFLICT: 409,
    PRICE_CHANGED: 409,
    DENIED_REQUEST: 429,
    TEXT_SEARCH_UNAVAILABLE: 503,
    INVALID_ACCESS_KEY: 401,
    ACCESS_KEY_DISABLED: 401,
    SIGNATURE_MISMATCH: 401,
    MISSING_CREDENTIALS: 401,
    NO_PERMISSION: 403,
    INTERNAL_ERROR: 500,
}

PAYLOAD_TOO_LARGE: Final = 413  # used by the API for bodies over the byte limit


def pic_too_large(limit_bytes: int) -> LookalikeError:
    return LookalikeError(
        INVALID_PIC_CONTENT, f"The image size exceeds {limit_bytes} bytes.", status=PAYLOAD_TOO_LARGE
    )
