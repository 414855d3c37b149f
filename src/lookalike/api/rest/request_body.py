"""Typed request bodies of the native API: one Pydantic model per operation validates the body and is what
`/openapi.json` shows.

A body still arrives as JSON, an urlencoded form or multipart (a picture as a file part), with query
parameters filling in fields the body left out (lookalike.api.shared.payload.read_payload); its fields are
read as loosely as ever ("10" for 10, "true"/"1"/"yes" for true). So the models are not FastAPI `Body`
parameters, whose parser knows one encoding and answers its own 422: `RequestBody.parsed` reads the body,
validates it with the model, and a bad field is refused with the field's documented code and message (the
validators raise LookalikeError, which Pydantic passes through). `RequestBody.openapi` describes the
same model as the operation's requestBody, in each encoding it is accepted in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

from annotated_types import GroupedMetadata
from fastapi import Request
from pydantic import BaseModel, BeforeValidator, ValidationError, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticUseDefault

from lookalike.api.shared.payload import base64_picture, loose_bool, loose_int, loose_text, read_payload
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError


def _text(value: object) -> str:
    found = loose_text(value)
    if found is None:
        raise PydanticUseDefault()
    return found


def _flag(value: object, info: ValidationInfo) -> bool:
    found = loose_bool(value, info.field_name or "")
    if found is None:
        raise PydanticUseDefault()
    return found


def _optional_flag(value: object, info: ValidationInfo) -> bool | None:
    return loose_bool(value, info.field_name or "")


def whole(code: str = e.INVALID_PARAMETER) -> BeforeValidator:
    """A whole number within 64 bits, from a JSON number or text; anything else is refused with `code`."""

    def check(value: object, info: ValidationInfo) -> int:
        found = loose_int(value, info.field_name or "", code)
        if found is None:
            raise PydanticUseDefault()
        return found

    return BeforeValidator(check)


class _FilePart:
    """Marks a field that only a multipart file part fills (never JSON or form text)."""


# Text as sent; another JSON value as its text (42 -> "42"), as every native route has read it.
Text = Annotated[str | None, BeforeValidator(_text)]
# true/false; also "true", "1", "yes" and "false", "0", "no"; absent or empty: the field's default.
Flag = Annotated[bool, BeforeValidator(_flag)]
# The same, None when absent or empty (the route decides what that means).
OptionalFlag = Annotated[bool | None, BeforeValidator(_optional_flag)]
FilePart = Annotated[bytes | None, _FilePart()]


@dataclass(frozen=True)
class Base64Picture(GroupedMetadata):
    """A picture as base64 text, used when the multipart file part `file_field` (an earlier field of the
    model) did not come; with neither, NoSpecifiedPicContent, in the field's place in the model's order.
    The field needs `= Field(None, validate_default=True)` so that an absent one is checked too."""

    file_field: str

    def __iter__(self) -> Iterator[Any]:
        file_field = self.file_field

        def check(value: object, info: ValidationInfo) -> bytes | None:
            if info.data.get(file_field) is not None:
                return None  # the file part wins, as it always has; this text is not even decoded
            return base64_picture(loose_text(value), file_field, info.field_name or "")

        yield BeforeValidator(check)
        yield WithJsonSchema({"type": "string", "contentEncoding": "base64"})


class RequestBody(BaseModel):
    """Base of the native API's request models. Fields are validated in the order they are declared, so the
    first bad field named in a refusal is the one the hand-written parsing named before the models."""

    _file_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._file_fields = frozenset(
            name
            for name, info in cls.model_fields.items()
            if any(isinstance(m, _FilePart) for m in info.metadata)
        )

    @classmethod
    async def parsed(cls, request: Request) -> Self:
        """The FastAPI dependency: the body (and query) read into this model."""
        payload = await read_payload(request)
        data: dict[str, Any] = {k: v for k, v in payload.fields.items() if k not in cls._file_fields}
        data.update({k: v for k, v in payload.files.items() if k in cls._file_fields})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:  # not expected: the validators refuse with our codes first
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
            )
            raise LookalikeError(e.INVALID_PARAMETER, problems or "Invalid request.") from None

    @classmethod
    def openapi(cls) -> dict[str, Any]:
        """The operation's `openapi_extra`: this model as its requestBody, in JSON, form and multipart."""
        schema = cls.model_json_schema()
        assert "$defs" not in schema, "request models are flat: the schema is inlined in the operation"
        text_only = {
            **schema,
            "properties": {k: v for k, v in schema["properties"].items() if k not in cls._file_fields},
        }
        return {
            "requestBody": {
                "required": bool(schema.get("required")),
                "content": {
                    "application/json": {"schema": text_only},
                    "application/x-www-form-urlencoded": {"schema": text_only},
                    "multipart/form-data": {"schema": schema},
                },
            }
        }
