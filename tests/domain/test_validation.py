"""Paging and field validation (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.errors import LookalikeError
from lookalike.domain.region import parse_region
from lookalike.domain.validation import parse_score_threshold, validate_instance_name, validate_paging


@given(num=st.integers(-5, 200), start=st.integers(-5, 700))
def test_paging_accepts_exactly_the_documented_window(num: int, start: int) -> None:
    valid = 1 <= num <= 100 and 0 <= start <= 499 and start + num <= 500
    try:
        validate_paging(num, start)
        assert valid
    except LookalikeError as err:
        assert not valid
        if num > 100:
            assert err.code == "OverflowMaxReturnNum"
        elif num < 1:
            assert err.code == "InvalidNumParameter"
        elif not 0 <= start <= 499:
            assert err.code == "InvalidStartParameter"
        else:
            assert err.code == "OverflowMaxResultNum"


@pytest.mark.parametrize(
    "value,expected", [(None, 0.0), ("", 0.0), ("0.00", 0.0), ("0.85", 0.85), ("1.00", 1.0)]
)
def test_score_threshold(value: str | None, expected: float) -> None:
    assert parse_score_threshold(value) == expected


@pytest.mark.parametrize("value", ["-0.1", "1.01", "abc"])
def test_bad_score_threshold(value: str) -> None:
    with pytest.raises(LookalikeError):
        parse_score_threshold(value)


@given(x1=st.integers(0, 300), w=st.integers(1, 300), y1=st.integers(0, 300), h=st.integers(1, 300))
def test_region_inside_the_image_parses_back(x1: int, w: int, y1: int, h: int) -> None:
    text = f"{x1},{x1 + w},{y1},{y1 + h}"
    inside = x1 + w <= 400 and y1 + h <= 400 and w >= 10 and h >= 10
    try:
        box = parse_region(text, 400, 400)
        assert inside and box.to_str() == text
    except LookalikeError as err:
        assert not inside and err.code == "InvalidRegion"


@pytest.mark.parametrize("name", ["", "x" * 21, "has space", "名字"])
def test_bad_instance_names(name: str) -> None:
    with pytest.raises(LookalikeError) as err:
        validate_instance_name(name)
    assert err.value.code == "InvalidInstanceName"
