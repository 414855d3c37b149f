"""A manifest's items as the options of an add: the same fields the local engine posts to the API
(lookalike.importer), parsed and validated as the API does, so a bad attribute is one row's error."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lookalike.domain import errors as e
from lookalike.domain.attributes import INT_SLOTS, STR_SLOTS, Attributes, validate_slot
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import JSON_YES_NO, parse_bool, parse_int, parse_text
from lookalike.domain.validation import validate_category, validate_custom_content, validate_key
from lookalike.importer import ImportItem


@dataclass(frozen=True)
class AddRow:
    """One picture to add: where its bytes are and what its add is asked."""

    key: str  # lookalike.importer.ImportItem.key: the journal's and the result file's key
    path: str
    product_id: str
    pic_name: str
    category_id: int | None
    crop: bool
    region: str | None
    attributes: Attributes
    custom_content: str

    def to_json(self) -> str:
        """A plain-JSON form, what travels to the workers."""
        return json.dumps(
            {
                "key": self.key,
                "path": self.path,
                "product_id": self.product_id,
                "pic_name": self.pic_name,
                "category_id": self.category_id,
                "crop": self.crop,
                "region": self.region,
                "attributes": self.attributes.as_filter_fields(),
                "custom_content": self.custom_content,
            },
            ensure_ascii=False,
        )

    @staticmethod
    def from_json(text: str) -> AddRow:
        raw = json.loads(text)
        return AddRow(
            key=raw["key"],
            path=raw["path"],
            product_id=raw["product_id"],
            pic_name=raw["pic_name"],
            category_id=raw["category_id"],
            crop=raw["crop"],
            region=raw["region"],
            attributes=Attributes.from_fields(raw["attributes"]),
            custom_content=raw["custom_content"],
        )


def _integer(value: Any, name: str, code: str) -> int:
    if isinstance(value, bool):
        raise LookalikeError(code, f"{name} must be a whole number.")
    try:
        return parse_int(value)
    except ValueError as exc:
        raise LookalikeError(code, f"{name} must be a whole number: {exc}.") from None


def _text(value: Any, name: str) -> str:
    try:
        return parse_text(value)
    except ValueError:
        raise LookalikeError(e.INVALID_PARAMETER, f"{name} must be a string.") from None


def _boolean(value: Any) -> bool:
    try:
        return parse_bool(value, JSON_YES_NO)
    except ValueError:
        raise LookalikeError(e.INVALID_PARAMETER, "crop must be true or false.") from None


def add_row(item: ImportItem) -> AddRow:
    """Parse and validate an item's fields as an add would (raises LookalikeError: that row's error)."""
    validate_key(item.product_id, item.pic_name)
    fields = item.fields
    values: dict[str, int | str] = {}
    for slot in INT_SLOTS:
        name = slot.name
        values[name] = _integer(fields[name], name, slot.error_code) if fields.get(name) is not None else 0
        validate_slot(slot, values[name])
    for slot in STR_SLOTS:
        values[slot.name] = _text(fields.get(slot.name), slot.name)
        validate_slot(slot, values[slot.name])
    custom_content = _text(fields.get("custom_content"), "custom_content")
    validate_custom_content(custom_content)
    category_id: int | None = None
    if fields.get("category_id") is not None:
        category_id = _integer(fields["category_id"], "category_id", e.INVALID_CATEGORY)
        validate_category(category_id)
    region = _text(fields.get("region"), "region") or None
    crop = _boolean(fields["crop"]) if fields.get("crop") is not None else True
    return AddRow(
        key=item.key,
        path=str(item.path),
        product_id=item.product_id,
        pic_name=item.pic_name,
        category_id=category_id,
        crop=crop,
        region=region,
        attributes=Attributes.from_fields(values),
        custom_content=custom_content,
    )


def last_of_each_key(items: Iterable[ImportItem]) -> list[ImportItem]:
    """One item per (ProductId, PicName), the manifest's last (what adds in the manifest's order leave)."""
    latest: dict[str, ImportItem] = {}
    for item in items:
        latest.pop(item.key, None)  # re-inserted: keeps the order of the last occurrences
        latest[item.key] = item
    return list(latest.values())
