"""Validation of request fields, shared by every API dialect (pure). The attribute slots' own checks live
with the slots (lookalike.domain.attributes)."""

from __future__ import annotations

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import OTHER_CATEGORY

MAX_NUM = 100
MAX_START = 499
MAX_RESULT_WINDOW = 500
MAX_KEY_LENGTH = 256
MAX_CUSTOM_CONTENT = 4096
MAX_INSTANCE_NAME = 20

CATEGORY_IDS = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22, OTHER_CATEGORY})


def validate_paging(num: int, start: int) -> None:
    if num < 1:
        raise LookalikeError(e.INVALID_NUM, f"The specified parameter num is invalid: {num} (1-{MAX_NUM}).")
    if num > MAX_NUM:
        raise LookalikeError(
            e.OVERFLOW_MAX_RETURN_NUM,
            f"The specified number of results for each request exceeds the maximum of {MAX_NUM}.",
        )
    if start < 0 or start > MAX_START:
        raise LookalikeError(
            e.INVALID_START, f"The specified parameter start is invalid: {start} (0-{MAX_START})."
        )
    if start + num > MAX_RESULT_WINDOW:
        raise LookalikeError(
            e.OVERFLOW_MAX_RESULT_NUM,
            f"The specified number of total results exceeds the maximum of {MAX_RESULT_WINDOW} (Start+Num).",
        )


def parse_score_threshold(value: str | float | None) -> float:
    """ScoreThreshold travels as a string "0.00"-"1.00"; absent means 0."""
    if value is None or value == "":
        return 0.0
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise LookalikeError(
            e.INVALID_SCORE_THRESHOLD, f"ScoreThreshold must be a number, got {value!r}."
        ) from None
    if not 0.0 <= threshold <= 1.0:
        raise LookalikeError(e.INVALID_SCORE_THRESHOLD, f"ScoreThreshold must lie in [0, 1], got {value!r}.")
    return threshold


def validate_key(product_id: str | None, pic_name: str | None) -> tuple[str, str]:
    if not product_id:
        raise LookalikeError(e.NO_SPECIFIED_PRODUCT_ID, "The parameter ProductId is not specified.")
    if not pic_name:
        raise LookalikeError(e.NO_SPECIFIED_PIC_NAME, "The parameter PicName is not specified.")
    validate_product_id(product_id)
    validate_pic_name(pic_name)
    return product_id, pic_name


def validate_product_id(product_id: str) -> None:
    if len(product_id) > MAX_KEY_LENGTH or "\x00" in product_id:
        raise LookalikeError(e.INVALID_PRODUCT_ID, f"ProductId must be 1-{MAX_KEY_LENGTH} characters.")


def validate_pic_name(pic_name: str) -> None:
    if len(pic_name) > MAX_KEY_LENGTH or "\x00" in pic_name:
        raise LookalikeError(e.INVALID_PIC_NAME, f"PicName must be 1-{MAX_KEY_LENGTH} characters.")


def validate_custom_content(value: str) -> None:
    if len(value) > MAX_CUSTOM_CONTENT:
        raise LookalikeError(
            e.INVALID_CUSTOM_CONTENT, f"CustomContent exceeds {MAX_CUSTOM_CONTENT} characters."
        )
    if "\x00" in value:  # PostgreSQL text cannot hold NUL; refused on every store alike
        raise LookalikeError(e.INVALID_CUSTOM_CONTENT, "CustomContent must not contain NUL characters.")


def validate_category(category_id: int) -> None:
    if category_id not in CATEGORY_IDS:
        raise LookalikeError(
            e.INVALID_CATEGORY,
            f"The specified category {category_id} is invalid; use one of {sorted(CATEGORY_IDS)}.",
        )


def validate_instance_name(name: str) -> None:
    if not name or len(name) > MAX_INSTANCE_NAME:
        raise LookalikeError(
            e.INVALID_INSTANCE_NAME, f"Instance names are 1-{MAX_INSTANCE_NAME} characters, got {len(name)}."
        )
    if not all(c.isalnum() or c in "-_" for c in name) or not name.isascii():
        raise LookalikeError(
            e.INVALID_INSTANCE_NAME, "Instance names use ASCII letters, digits, '-' and '_'."
        )
