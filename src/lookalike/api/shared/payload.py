"""One request-body reader for the native API: JSON, urlencoded form or multipart.

Pictures arrive either as a multipart file part or as base64 text; every field is read
the same way whatever the encoding, so endpoints see plain Python values.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from lookalike.domain import errors as e
from lookalike.domain.attributes import SLOTS, Attributes, AttributeUpdate, Slot
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import REST_YES_NO, loads_strict, parse_bool, parse_int, parse_positive_id


# --- one field, as clients send it (JSON value or form text); the typed request models use these too ---
def loose_text(value: object) -> str | None:
    """Text as given; any other JSON value as its Python text (42 -> "42"); None when absent."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def loose_int(value: object, name: str, code: str = e.INVALID_PARAMETER) -> int | None:
    """A whole number from a JSON number or text ("42"); None when absent or empty; else `code`."""
    if value is None or value == "":
        return None
    try:
        return parse_int(value)
    except ValueError as exc:
        raise LookalikeError(code, f"{name} must be an integer: {exc}.") from None


def loose_bool(value: object, name: str) -> bool | None:
    """true/false, also as text (REST_YES_NO: "true", "1", "yes" / "false", "0", "no"); None when absent or
    empty."""
    if value is None or value == "":
        return None
    try:
        return parse_bool(value, REST_YES_NO)
    except ValueError:
        raise LookalikeError(
            e.INVALID_PARAMETER, f"{name} must be true or false, got {str(value)[:20]!r}."
        ) from None


def base64_picture(encoded: str | None, file_field: str, base64_field: str) -> bytes:
    """A picture sent as base64 text; NoSpecifiedPicContent when neither it nor the file part came."""
    if encoded is None:
        raise LookalikeError(
            e.NO_SPECIFIED_PIC_CONTENT,
            f"Send the picture as a multipart file '{file_field}' or base64 text '{base64_field}'.",
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise LookalikeError(e.INVALID_PIC_CONTENT, f"{base64_field} is not valid base64.") from None


@dataclass
class Payload:
    """A body's fields and file parts, read one field at a time (the console's forms; the native API reads
    its bodies into typed request models, lookalike.api.rest.requests)."""

    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        return loose_text(self.fields.get(name))

    def integer(self, name: str, *, code: str = e.INVALID_PARAMETER) -> int | None:
        return loose_int(self.fields.get(name), name, code)

    def boolean(self, name: str, default: bool) -> bool:
        found = loose_bool(self.fields.get(name), name)
        return default if found is None else found

    def picture(self, file_field: str = "picture", base64_field: str = "pic_content") -> bytes:
        if file_field in self.files:
            return self.files[file_field]
        return base64_picture(self.text(base64_field), file_field, base64_field)

    def attributes(self) -> Attributes:
        return self.attribute_update().filled()

    def attribute_update(self) -> AttributeUpdate:
        values: dict[str, int | str | None] = {slot.name: self.slot_value(slot) for slot in SLOTS}
        return AttributeUpdate.of_slots(values, custom_content=self.text("custom_content"))

    def slot_value(self, slot: Slot) -> int | str | None:
        if slot.kind == "int":
            return self.integer(slot.name, code=slot.error_code)
        return self.text(slot.name)


async def read_payload(request: Request) -> Payload:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    payload = Payload()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_part_size=64 * 1024 * 1024)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                payload.files[key] = await value.read()
            else:
                payload.fields[key] = value
    elif content_type == "application/json" or (content_type == "" and await request.body()):
        raw = await request.body()
        if raw:
            try:
                body = loads_strict(raw)
            except ValueError as exc:
                raise LookalikeError(e.INVALID_PARAMETER, f"The body is not valid JSON: {exc}.") from None
            if not isinstance(body, dict):
                raise LookalikeError(e.INVALID_PARAMETER, "The JSON body must be an object.")
            payload.fields.update(body)
    elif content_type:
        raise LookalikeError(
            e.INVALID_PARAMETER, f"Unsupported Content-Type {content_type!r}: use JSON, form or multipart."
        )
    # Query parameters fill in what the body did not give (handy for curl and GET-like calls).
    for key, value in request.query_params.items():
        payload.fields.setdefault(key, value)
    return payload


def positive_number(text: str, name: str, digits: int = 18) -> int:
    """A report id, group or page named in a URL (the REST routes and the console pages)."""
    try:
        return parse_positive_id(text, digits)
    except ValueError:
        raise LookalikeError(e.INVALID_PARAMETER, f"{name} must be a positive whole number.") from None
