"""One increment.meta item (a JSON object per line, named as the Alibaba API names its fields) read into
what a line asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from lookalike.domain import errors as e
from lookalike.domain.attributes import INT_SLOTS, STR_SLOTS
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import JSON_YES_NO, parse_bool, parse_int, parse_text
from lookalike.domain.models import Attributes
from lookalike.service.bulk_analysis import PictureJob
from lookalike.service.tasks.buckets import resolve_in_bucket

INVALID_META_ITEM: Final = "InvalidMetaItem"  # an increment.meta line that is not a valid item
UNSUPPORTED_OPERATION: Final = "UnsupportedOperationType"


def operation_of(item: dict[str, Any]) -> str:
    return str(item.get("OperationType") or "").upper()


def text_field(item: dict[str, Any], key: str) -> str:
    try:
        return parse_text(item.get(key))
    except ValueError:
        raise LookalikeError(INVALID_META_ITEM, f"{key} must be a string.") from None


def _integer(value: Any, key: str, code: str) -> int:
    if value is None:
        return 0
    try:
        return parse_int(value)
    except ValueError as exc:
        raise LookalikeError(code, f"{key} must be a whole number: {exc}.") from None


def _boolean(value: Any) -> bool:
    try:
        return parse_bool(value, JSON_YES_NO)
    except ValueError:
        raise LookalikeError(INVALID_META_ITEM, "Crop must be true or false.") from None


def _attributes(item: dict[str, Any]) -> Attributes:
    # An increment.meta item names the slots as the Alibaba API does (IntAttr, StrAttr2, ...).
    fields: dict[str, int | str] = {}
    for slot in INT_SLOTS:
        fields[slot.name] = _integer(item.get(slot.alibaba), slot.alibaba, slot.error_code)
    for slot in STR_SLOTS:
        fields[slot.name] = text_field(item, slot.alibaba)
    return Attributes.from_fields(fields)


def picture_job(
    root: Path,
    base: Path,
    item: dict[str, Any],
    product_id: str,
    pic_name: str,
    *,
    key: str,
    max_bytes: int,
) -> PictureJob:
    """An ADD line's picture file and options (raises that line's error)."""
    if not pic_name:
        raise LookalikeError(e.NO_SPECIFIED_PIC_NAME, "The parameter PicName no specified.")
    # PicName is the picture's path: relative to increment.meta's folder, or absolute in the bucket.
    picture_path = resolve_in_bucket(root, pic_name, base)
    if not picture_path.is_file():
        raise LookalikeError(e.PIC_NOT_EXIST, f"No picture file {pic_name[:200]!r} in the bucket.")
    if picture_path.stat().st_size > max_bytes:
        raise e.pic_too_large(max_bytes)
    category = item.get("CategoryId")
    return PictureJob(
        key=key,
        path=str(picture_path),
        product_id=product_id,
        pic_name=pic_name,
        category_id=None if category is None else _integer(category, "CategoryId", e.INVALID_CATEGORY),
        crop=_boolean(item.get("Crop", True)),
        region=text_field(item, "Region") or None,
        attributes=_attributes(item),
        custom_content=text_field(item, "CustomContent"),
    )
