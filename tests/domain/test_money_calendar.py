"""Money arithmetic and UTC calendar-month arithmetic."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.calendar import PeriodUnit, add_calendar_days, add_months, add_period
from lookalike.domain.money import Money, format_amount, parse_decimal_amount


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- money -------------------------------------------------------------------------------------------


def test_money_arithmetic_within_currency() -> None:
    a, b = Money(80000, "USD"), Money(150000, "USD")
    assert b - a == Money(70000, "USD")
    assert a + b == Money(230000, "USD")
    assert -a == Money(-80000, "USD")
    assert a < b and b > a and a <= a and b >= b
    assert Money.zero("JPY") == Money(0, "JPY")
    assert sorted([b, a]) == [a, b]


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_money_refuses_mixed_currencies(op: object) -> None:
    with pytest.raises(ValueError, match="currency mismatch"):
        op(Money(1, "USD"), Money(1, "JPY"))  # type: ignore[operator]


def test_money_rejects_non_int_amounts() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "USD")


def test_money_format() -> None:
    assert Money(36129, "USD").format(2) == "361.29 USD"
    assert Money(-18065, "USD").format(2) == "-180.65 USD"
    assert Money(5, "USD").format(2) == "0.05 USD"
    assert Money(3000, "JPY").format(0) == "3000 JPY"


@pytest.mark.parametrize(
    ("text", "exponent", "expected"),
    [("800.00", 2, 80000), ("800", 2, 80000), ("0.5", 2, 50), ("1500.00", 2, 150000), ("3000", 0, 3000)],
)
def test_parse_decimal_amount(text: str, exponent: int, expected: int) -> None:
    assert parse_decimal_amount(text, exponent) == expected


@pytest.mark.parametrize(
    ("text", "exponent"),
    [
        ("800.001", 2),
        ("1.5", 0),
        ("1e3", 2),
        ("NaN", 2),
        ("Infinity", 2),
        ("", 2),
        ("1,000.00", 2),
        (" 1", 2),
        ("+1", 2),
        ("1.", 2),
        (".5", 2),
    ],
)
def test_parse_decimal_amount_refuses(text: str, exponent: int) -> None:
    with pytest.raises(ValueError):
        parse_decimal_amount(text, exponent)


def test_format_amount() -> None:
    assert format_amount(36129, "USD", 2) == "361.29"
    assert format_amount(-1, "USD", 2) == "-0.01"
    assert format_amount(7, "JPY", 0) == "7"


@given(st.integers(-(10**15), 10**15), st.integers(0, 6))
def test_format_parse_round_trip(amount: int, exponent: int) -> None:
    assert parse_decimal_amount(format_amount(amount, "XXX", exponent), exponent) == amount


# --- calendar ----------------------------------------------------------------------------------------


def test_month_end_clamps() -> None:
    assert add_months(utc(2027, 1, 31), 1) == utc(2027, 2, 28)
    assert add_months(utc(2028, 1, 31), 1) == utc(2028, 2, 29)  # leap year
    assert add_months(utc(2027, 1, 31), 2) == utc(2027, 3, 31)  # from the anchor, not Feb 28 + 1
    assert add_months(utc(2027, 3, 31), 1) == utc(2027, 4, 30)
    assert add_months(utc(2027, 12, 15, 13, 5), 1) == utc(2028, 1, 15, 13, 5)
    assert add_months(utc(2027, 3, 31), -1) == utc(2027, 2, 28)


def test_period_units() -> None:
    assert add_period(utc(2027, 1, 1), PeriodUnit.MONTH, 1) == utc(2027, 2, 1)
    assert add_period(utc(2027, 1, 1), PeriodUnit.YEAR, 1) == utc(2028, 1, 1)
    assert add_period(utc(2028, 2, 29), PeriodUnit.YEAR, 1) == utc(2029, 2, 28)
    assert add_period(utc(2028, 2, 29), PeriodUnit.YEAR, 4) == utc(2032, 2, 29)
    assert add_period(utc(2027, 1, 1), "month", 3) == utc(2027, 4, 1)  # type: ignore[arg-type]


def test_calendar_days() -> None:
    assert add_calendar_days(utc(2027, 2, 1), 7) == utc(2027, 2, 8)
    assert add_calendar_days(utc(2028, 2, 25), 7) == utc(2028, 3, 3)


def test_naive_datetimes_refused() -> None:
    naive = datetime(2027, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_months(naive, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_calendar_days(naive, 1)


def test_non_utc_input_is_converted_to_utc() -> None:
    # 2027-01-31T23:00-02:00 is 2027-02-01T01:00Z: the month is the UTC one.
    moment = datetime(2027, 1, 31, 23, tzinfo=timezone(timedelta(hours=-2)))
    result = add_months(moment, 1)
    assert result == utc(2027, 3, 1, 1) and result.tzinfo is UTC


moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(moments, st.integers(-240, 240))
def test_add_months_lands_in_the_right_month_never_past_its_end(d: datetime, n: int) -> None:
    r = add_months(d, n)
    assert (r.year * 12 + r.month) - (d.year * 12 + d.month) == n
    last = calendar.monthrange(r.year, r.month)[1]
    assert r.day == min(d.day, last) <= last
    assert r.time() == d.time() and r.tzinfo is UTC


@given(moments, st.integers(0, 120), st.integers(0, 120))
def test_add_months_from_anchor_vs_chained(d: datetime, a: int, b: int) -> None:
    direct = add_months(d, a + b)
    chained = add_months(add_months(d, a), b)
    # Chaining can only lose days to an intermediate clamp; computing from the anchor never does.
    assert chained <= direct
    assert (chained.year, chained.month) == (direct.year, direct.month)
    if d.day <= 28:
        assert chained == direct
    assert add_months(d, 0) == d


@given(moments, st.integers(1, 30))
def test_add_months_is_monotone(d: datetime, n: int) -> None:
    assert add_months(d, n) > add_months(d, n - 1)
