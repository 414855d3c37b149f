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
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import loads_strict, parse_int
from lookalike.domain.models import Attributes, AttributeUpdate

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass
class Payload:
    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else str(value)

    def integer(self, name: str, *, code: str = e.INVALID_PARAMETER) -> int | None:
        value = self.fields.get(name)
        if value is None or value == "":
            return None
        try:
            return parse_int(value)
        except ValueError as exc:
            raise LookalikeError(code, f"{name} must be an integer: {exc}.") from None

    def boolean(self, name: str, default: bool) -> bool:
        value = self.fields.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise LookalikeError(e.INVALID_PARAMETER, f"{name} must be true or false, got {str(value)[:20]!r}.")

    def picture(self, file_field: str = "picture", base64_field: str = "pic_content") -> bytes:
        if file_field in self.files:
            return self.files[file_field]
        encoded = self.text(base64_field)
        if encoded is None:
            raise LookalikeError(
                e.NO_SPECIFIED_PIC_CONTENT,
                f"Send the picture as a multipart file '{file_field}' or base64 text '{base64_field}'.",
            )
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise LookalikeError(e.INVALID_PIC_CONTENT, f"{base64_field} is not valid base64.") from None

    def attributes(self) -> Attributes:
        update = self.attribute_update()
        return Attributes(
            int_attr=update.int_attr or 0,
            int_attr2=update.int_attr2 or 0,
            int_attr3=update.int_attr3 or 0,
            int_attr4=update.int_attr4 or 0,
            str_attr=update.str_attr or "",
            str_attr2=update.str_attr2 or "",
            str_attr3=update.str_attr3 or "",
            str_attr4=update.str_attr4 or "",
        )

    def attribute_update(self) -> AttributeUpdate:
        ints = {name: self.integer(name, code=code) for name, code in _INT_FIELDS}
        strs = {name: self.text(name) for name in _STR_FIELDS}
        return AttributeUpdate(
            int_attr=ints["int_attr"],
            int_attr2=ints["int_attr2"],
            int_attr3=ints["int_attr3"],
            int_attr4=ints["int_attr4"],
            str_attr=strs["str_attr"],
            str_attr2=strs["str_attr2"],
            str_attr3=strs["str_attr3"],
            str_attr4=strs["str_attr4"],
            custom_content=self.text("custom_content"),
        )


_INT_FIELDS = [
    ("int_attr", e.INVALID_INT_ATTR),
    ("int_attr2", e.INVALID_INT_ATTR + "2"),
    ("int_attr3", e.INVALID_INT_ATTR + "3"),
    ("int_attr4", e.INVALID_INT_ATTR + "4"),
]
_STR_FIELDS = ["str_attr", "str_attr2", "str_attr3", "str_attr4"]


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
