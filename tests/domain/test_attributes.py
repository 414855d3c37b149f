"""The attribute slots said once (lookalike.domain.attributes): names, wire names, codes, limits, records."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.attributes import (
    INT64_MAX,
    INT64_MIN,
    INT_SLOTS,
    MAX_STR_ATTR,
    SLOTS,
    STR_SLOTS,
    Attributes,
    AttributeUpdate,
    validate_attributes,
    validate_slot,
    validate_update,
)
from lookalike.domain.errors import LookalikeError
from lookalike.domain.filters import INT_FIELDS, STR_FIELDS

int64 = st.integers(INT64_MIN, INT64_MAX)
short_text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=MAX_STR_ATTR
)


def _slot_values(
    ints: st.SearchStrategy[int | None], texts: st.SearchStrategy[str | None]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {slot.name: ints for slot in INT_SLOTS} | {slot.name: texts for slot in STR_SLOTS}
    )


def test_the_eight_slots_and_their_spellings() -> None:
    # The names every store and dialect has used since the first schema; changing one breaks clients.
    assert [s.name for s in SLOTS] == [
        "int_attr", "int_attr2", "int_attr3", "int_attr4", "str_attr", "str_attr2", "str_attr3", "str_attr4"
    ]  # fmt: skip
    assert [s.alibaba for s in SLOTS] == [
        "IntAttr", "IntAttr2", "IntAttr3", "IntAttr4", "StrAttr", "StrAttr2", "StrAttr3", "StrAttr4"
    ]  # fmt: skip
    assert [s.error_code for s in SLOTS] == [
        "InvalidIntAttr", "InvalidIntAttr2", "InvalidIntAttr3", "InvalidIntAttr4",
        "InvalidStrAttr", "InvalidStrAttr2", "InvalidStrAttr3", "InvalidStrAttr4",
    ]  # fmt: skip
    assert [(s.kind, s.number, s.default) for s in INT_SLOTS] == [("int", n, 0) for n in range(1, 5)]
    assert [(s.kind, s.number, s.default) for s in STR_SLOTS] == [("str", n, "") for n in range(1, 5)]
    assert {s.name for s in INT_SLOTS} == INT_FIELDS and {s.name for s in STR_SLOTS} == STR_FIELDS


def test_records_default_to_the_slot_defaults() -> None:
    assert Attributes().as_filter_fields() == {s.name: s.default for s in SLOTS}
    assert AttributeUpdate().changed() == {}
    assert AttributeUpdate().filled() == Attributes()


@given(_slot_values(int64, short_text))
def test_fields_round_trip_in_slot_order(values: dict[str, Any]) -> None:
    attrs = Attributes.from_fields(values)
    assert attrs.as_filter_fields() == values
    assert list(attrs.as_filter_fields()) == [s.name for s in SLOTS]
    assert attrs.by_alibaba_name() == {s.alibaba: values[s.name] for s in SLOTS}
    assert list(attrs.by_alibaba_name()) == [s.alibaba for s in SLOTS]
    assert all(attrs.get(s) == getattr(attrs, s.name) == values[s.name] for s in SLOTS)
    assert Attributes(**values) == attrs


@given(_slot_values(int64 | st.none(), short_text | st.none()), st.none() | st.text(max_size=5))
def test_an_update_sets_what_it_names_and_fills_the_rest_with_defaults(
    values: dict[str, Any], custom_content: str | None
) -> None:
    update = AttributeUpdate.of_slots(values, custom_content)
    assert all(update.get(s) == values[s.name] for s in SLOTS)
    expected = {k: v for k, v in values.items() if v is not None}
    if custom_content is not None:
        expected["custom_content"] = custom_content
    assert update.changed() == expected
    assert update.filled().as_filter_fields() == {
        s.name: s.default if values[s.name] is None else values[s.name] for s in SLOTS
    }


def test_an_update_of_some_slots_leaves_the_others_unset() -> None:
    update = AttributeUpdate.of_slots({"int_attr3": 0, "str_attr": ""})
    assert update.changed() == {"int_attr3": 0, "str_attr": ""}  # 0 and "" are values, not "unset"


@given(st.sampled_from(INT_SLOTS), int64)
def test_every_64_bit_integer_fits_an_int_slot(slot: Any, value: int) -> None:
    validate_slot(slot, value)


@given(st.sampled_from(INT_SLOTS), st.integers(INT64_MAX + 1, 2**80) | st.integers(-(2**80), INT64_MIN - 1))
def test_an_integer_past_64_bits_is_refused_with_the_slots_code(slot: Any, value: int) -> None:
    with pytest.raises(LookalikeError) as caught:
        validate_slot(slot, value)
    assert (caught.value.code, caught.value.message) == (slot.error_code, f"{slot.alibaba} is out of range.")


@given(st.sampled_from(STR_SLOTS), short_text)
def test_short_text_without_nul_fits_a_str_slot(slot: Any, value: str) -> None:
    validate_slot(slot, value)


@given(
    st.sampled_from(STR_SLOTS),
    st.text(min_size=MAX_STR_ATTR + 1, max_size=MAX_STR_ATTR + 40)
    | st.tuples(short_text, short_text).map(lambda parts: (parts[0] + "\x00" + parts[1])[-MAX_STR_ATTR:]),
)
def test_long_text_or_a_nul_is_refused_with_the_slots_code(slot: Any, value: str) -> None:
    if "\x00" not in value and len(value) <= MAX_STR_ATTR:  # the NUL was cut off with the prefix
        return
    with pytest.raises(LookalikeError) as caught:
        validate_slot(slot, value)
    assert (caught.value.code, caught.value.message) == (
        slot.error_code,
        f"{slot.alibaba} must be at most {MAX_STR_ATTR} characters.",
    )


@given(st.sets(st.sampled_from(SLOTS), min_size=1))
def test_the_first_bad_slot_in_slot_order_names_the_error(bad: set[Any]) -> None:
    values = {
        s.name: (INT64_MAX + 1 if s.kind == "int" else "x" * (MAX_STR_ATTR + 1)) if s in bad else s.default
        for s in SLOTS
    }
    first = next(s for s in SLOTS if s in bad)
    with pytest.raises(LookalikeError) as caught:
        validate_attributes(Attributes(**values))
    assert caught.value.code == first.error_code
    with pytest.raises(LookalikeError) as caught:
        validate_update(AttributeUpdate.of_slots({s.name: values[s.name] for s in bad}))
    assert caught.value.code == first.error_code


def test_an_update_checks_only_what_it_sets() -> None:
    validate_update(AttributeUpdate(custom_content="x" * 10_000))  # CustomContent has its own check
    validate_update(AttributeUpdate.of_slots({"int_attr4": INT64_MIN, "str_attr2": "x" * MAX_STR_ATTR}))
