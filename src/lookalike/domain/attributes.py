"""A picture's eight attribute slots (four signed 64-bit integers, four short strings), said once.

Every other place derives from ``SLOTS``: the SQL columns and the Milvus fields (``Slot.name``), the filter
language's fields, the native API's and the console's keys (also ``Slot.name``), the Alibaba wire names
(``Slot.alibaba``: IntAttr, IntAttr2, ...), the per-slot error codes (InvalidIntAttr, InvalidIntAttr2, ...)
and the limits. The two records below spell the names out once more, as fields, so type checkers see them;
an import-time check keeps them equal to ``SLOTS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, TypeAlias

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError

Kind: TypeAlias = Literal["int", "str"]
Value: TypeAlias = int | str

SLOTS_PER_KIND: Final = 4
# An int slot is a signed 64-bit integer (BIGINT in SQL, INT64 in Milvus).
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_STR_ATTR: Final = 128  # characters (the SQL column is VARCHAR(128))


@dataclass(frozen=True)
class Slot:
    """One attribute slot. ``number`` is 1..4 within its kind; the first slot of a kind has no suffix
    (``int_attr``, ``IntAttr``, ``InvalidIntAttr``), the others end in their number."""

    kind: Kind
    number: int
    name: str  # SQL column, Milvus field, filter field, native API and console key
    alibaba: str  # the Alibaba API's parameter and response key
    error_code: str  # the code an invalid value of this slot is refused with
    default: Value  # what an unset slot holds: 0 or ""


def _slot(kind: Kind, number: int) -> Slot:
    suffix = "" if number == 1 else str(number)
    camel = "IntAttr" if kind == "int" else "StrAttr"
    return Slot(
        kind=kind,
        number=number,
        name=f"{kind}_attr{suffix}",
        alibaba=f"{camel}{suffix}",
        error_code=(e.INVALID_INT_ATTR if kind == "int" else e.INVALID_STR_ATTR) + suffix,
        default=0 if kind == "int" else "",
    )


INT_SLOTS: Final = tuple(_slot("int", n) for n in range(1, SLOTS_PER_KIND + 1))
STR_SLOTS: Final = tuple(_slot("str", n) for n in range(1, SLOTS_PER_KIND + 1))
# The integers first, then the strings: the order of the SQL columns, the records and every response.
SLOTS: Final = INT_SLOTS + STR_SLOTS
BY_NAME: Final = {slot.name: slot for slot in SLOTS}


@dataclass(frozen=True)
class Attributes:
    """The filterable and returned fields of a picture; unset ints are 0, unset strings ""."""

    int_attr: int = 0
    int_attr2: int = 0
    int_attr3: int = 0
    int_attr4: int = 0
    str_attr: str = ""
    str_attr2: str = ""
    str_attr3: str = ""
    str_attr4: str = ""

    @staticmethod
    def from_fields(values: Mapping[Any, Any]) -> Attributes:
        """From slot name -> value (a dict, a SQL row's mapping); a missing name is a KeyError."""
        typed: dict[str, Any] = {slot.name: _typed(slot, values[slot.name]) for slot in SLOTS}
        return Attributes(**typed)

    def get(self, slot: Slot) -> Value:
        value: Value = getattr(self, slot.name)
        return value

    def as_filter_fields(self) -> dict[str, Value]:
        """Slot name -> value, in slot order (what filters evaluate and the native API returns)."""
        return {slot.name: getattr(self, slot.name) for slot in SLOTS}

    def by_alibaba_name(self) -> dict[str, Value]:
        """Alibaba name -> value, in slot order (IntAttr ... StrAttr4, as Alibaba's responses list them)."""
        return {slot.alibaba: getattr(self, slot.name) for slot in SLOTS}


@dataclass(frozen=True)
class AttributeUpdate:
    """A partial update: None leaves the stored value alone."""

    int_attr: int | None = None
    int_attr2: int | None = None
    int_attr3: int | None = None
    int_attr4: int | None = None
    str_attr: str | None = None
    str_attr2: str | None = None
    str_attr3: str | None = None
    str_attr4: str | None = None
    custom_content: str | None = None

    @staticmethod
    def of_slots(values: Mapping[str, Value | None], custom_content: str | None = None) -> AttributeUpdate:
        """From slot name -> value (None or absent: unchanged)."""
        given: dict[str, Any] = {slot.name: values.get(slot.name) for slot in SLOTS}
        return AttributeUpdate(**given, custom_content=custom_content)

    def get(self, slot: Slot) -> Value | None:
        value: Value | None = getattr(self, slot.name)
        return value

    def filled(self) -> Attributes:
        """The attributes of a new picture: each slot left unset takes its default."""
        values: dict[str, Any] = {slot.name: _or_default(slot, self.get(slot)) for slot in SLOTS}
        return Attributes(**values)

    def changed(self) -> dict[str, Value]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _or_default(slot: Slot, value: Value | None) -> Value:
    return slot.default if value is None else value


def _typed(slot: Slot, value: Any) -> Value:
    # A record holds Python ints and strs whatever numeric type a driver or a JSON reader handed back.
    return int(value) if slot.kind == "int" else str(value)


def validate_slot(slot: Slot, value: Value) -> None:
    """Refuse a value the stores cannot keep, with the slot's own code (InvalidIntAttr3, ...)."""
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise LookalikeError(slot.error_code, f"{slot.alibaba} is out of range.")
    elif len(value) > MAX_STR_ATTR or "\x00" in value:
        # PostgreSQL text cannot hold NUL; refused on every store alike.
        raise LookalikeError(slot.error_code, f"{slot.alibaba} must be at most {MAX_STR_ATTR} characters.")


def validate_attributes(attrs: Attributes) -> None:
    """Every slot, in slot order (the first bad one names the error)."""
    for slot in SLOTS:
        validate_slot(slot, attrs.get(slot))


def validate_update(change: AttributeUpdate) -> None:
    """Every slot the update sets, in slot order."""
    for slot in SLOTS:
        value = change.get(slot)
        if value is not None:
            validate_slot(slot, value)


def _check_records() -> None:
    # The records' fields are written out for type checkers; they must be exactly the slots, in order.
    names = [slot.name for slot in SLOTS]
    for record, extra in ((Attributes, []), (AttributeUpdate, ["custom_content"])):
        declared = [f.name for f in fields(record)]
        if declared != names + extra:
            raise AssertionError(f"{record.__name__} fields {declared} differ from the slots {names}")
    for f in fields(Attributes):  # postponed annotations: f.type is the text "int" or "str"
        if f.type != BY_NAME[f.name].kind:
            raise AssertionError(f"Attributes.{f.name} is {f.type}, its slot {BY_NAME[f.name].kind}")


_check_records()
