"""Strict reading of client values (lookalike.domain.loose_values): pure functions, property-tested."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.loose_values import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    loads_strict,
    parse_int,
    parse_positive_id,
)

int64 = st.integers(INT64_MIN, INT64_MAX)


@given(int64)
def test_whole_numbers_in_64_bits_read_back_from_every_form(number: int) -> None:
    assert parse_int(number) == number
    assert parse_int(str(number)) == number
    assert parse_int(f"  {number} ") == number
    if abs(number) < 2**53:  # exactly representable as a float
        assert parse_int(float(number)) == number


@given(st.integers(INT64_MAX + 1, 10**40) | st.integers(-(10**40), INT64_MIN - 1))
def test_numbers_past_64_bits_are_refused(number: int) -> None:
    with pytest.raises(ValueError):
        parse_int(number)
    if len(str(number)) <= 19:
        with pytest.raises(ValueError):
            parse_int(str(number))


@given(st.floats().filter(lambda x: not (math.isfinite(x) and x.is_integer())))
def test_fractions_and_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(ValueError):
        parse_int(value)


@pytest.mark.parametrize(
    "text", ["", "5.7", "1e3", "1_000", "١٢", "５", "0x10", "nan", "inf", "+", "--1", "1 2"]
)
def test_text_that_is_not_plain_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_int(text)


@pytest.mark.parametrize("value", [True, False, None, [], {}, b"1"])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_int(value)


json_values = st.recursive(
    st.none() | st.booleans() | int64 | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_standard_json_reads_as_json_loads_does(value: object) -> None:
    text = json.dumps(value)
    assert loads_strict(text) == json.loads(text)
    assert loads_strict(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[Infinity]",
        '{"a": -Infinity}',
        "1e400",
        "[-1e400]",
        "1" + "0" * 5000,
        '"\\ud800"',
        '{"\\udfff": 1}',
        '["ok", {"deep": "\\ud83d"}]',  # half of a surrogate pair
        "[" * 100_000,
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
        b"\xff\xfe",
        "{",
    ],
)
def test_json_no_store_can_keep_is_refused(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads_strict(text)


def test_surrogate_pairs_and_the_depth_limit_itself_are_fine() -> None:
    assert loads_strict('"\\ud83d\\ude00"') == "\U0001f600"
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_strict(nested) is not None


@given(st.text(max_size=25))
def test_positive_id_takes_plain_digits_within_the_column_only(text: str) -> None:
    plain = text.isascii() and text.isdigit() and 0 < len(text) <= 9 and int(text) > 0
    if plain:
        assert parse_positive_id(text, 9) == int(text)
    else:
        with pytest.raises(ValueError):
            parse_positive_id(text, 9)
