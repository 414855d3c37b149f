"""Quotes and proration, worked out by hand from the default catalogue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.billing import (
    Cycle,
    check_capacity_fits,
    prorate,
    quote_buy,
    quote_change,
    quote_renewal,
    quote_trial,
)
from lookalike.domain.calendar import PeriodUnit
from lookalike.domain.catalogue import Package, default_catalogue
from lookalike.domain.errors import (
    CAPACITY_BELOW_USAGE,
    INSTANCE_STATUS_ERROR,
    INVALID_PACKAGE,
    INVALID_PERIOD,
    LookalikeError,
)
from lookalike.domain.money import Money

CAT = default_catalogue()
P800 = CAT.get("2.5m-5qps")
P1500 = CAT.get("2.5m-10qps")
TRIAL = CAT.get("100k-1qps")
JAN = Cycle(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC), PeriodUnit.MONTH, 1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def usd(amount: int) -> Money:
    return Money(amount, "USD")


# --- the worked scenario ----------------------------------------------------------------------------


def test_buy_one_month() -> None:
    q = quote_buy(P800, PeriodUnit.MONTH, 1, utc(2027, 1, 1))
    assert q.kind == "buy" and q.total == usd(800_00)
    assert q.new_cycle == JAN and q.effective_at == utc(2027, 1, 1)
    (line,) = q.lines
    assert line.package_id == "2.5m-5qps" and line.proration is None and line.amount == usd(800_00)
    assert (line.period_start, line.period_end) == (utc(2027, 1, 1), utc(2027, 2, 1))
    assert line.description == "Subscription: 2.5M images / 5 QPS, 1 month"


def test_upgrade_mid_cycle_charges_36129() -> None:
    q = quote_change(P800, P1500, JAN, utc(2027, 1, 16), stored_count=10)
    assert q.kind == "change" and q.total == usd(361_29)
    assert q.new_cycle is None and q.effective_at == utc(2027, 1, 16)
    (line,) = q.lines
    assert line.proration == Fraction(16, 31)
    assert (line.period_start, line.period_end) == (utc(2027, 1, 16), utc(2027, 2, 1))
    assert line.package_id == "2.5m-10qps" and line.description.startswith("Upgrade")
    assert q.total.format(CAT.exponent) == "361.29 USD"


def test_downgrade_back_refunds_18065() -> None:
    q = quote_change(P1500, P800, JAN, utc(2027, 1, 24), stored_count=10)
    assert q.total == usd(-180_65)
    assert q.lines[0].proration == Fraction(8, 31) and q.lines[0].description.startswith("Downgrade")


def test_change_at_cycle_start_is_the_full_difference() -> None:
    assert quote_change(P800, P1500, JAN, utc(2027, 1, 1), 0).total == usd(700_00)


def test_yearly_cycle_uses_yearly_prices() -> None:
    q = quote_buy(P800, PeriodUnit.YEAR, 1, utc(2027, 1, 1))
    assert q.total == usd(8_000_00) and q.new_cycle is not None
    assert q.new_cycle.end == utc(2028, 1, 1)
    # Half-way through (by seconds: 2027 has 365 days) the upgrade costs half of 15,000 − 8,000.
    year = q.new_cycle
    mid = year.start + (year.end - year.start) / 2
    assert quote_change(P800, P1500, year, mid, 0).total == usd(3_500_00)


def test_multi_month_cycle_price_is_months_times_monthly() -> None:
    q = quote_buy(P800, PeriodUnit.MONTH, 3, utc(2027, 1, 31))
    assert q.total == usd(2_400_00)
    assert q.new_cycle == Cycle(utc(2027, 1, 31), utc(2027, 4, 30), PeriodUnit.MONTH, 3)
    assert q.lines[0].description.endswith("3 months")
    # A change prorates the 3-month difference over the 3-month cycle.
    cycle = q.new_cycle
    assert quote_change(P800, P1500, cycle, cycle.start, 0).total == usd(3 * 700_00)


def test_jan_31_buy_ends_feb_28() -> None:
    q = quote_buy(P800, PeriodUnit.MONTH, 1, utc(2027, 1, 31, 9, 30))
    assert q.new_cycle is not None and q.new_cycle.end == utc(2027, 2, 28, 9, 30)


# --- rounding ---------------------------------------------------------------------------------------


def test_half_a_minor_unit_rounds_up_away_from_zero() -> None:
    # Prices one cent apart, changed exactly half-way through a 31-day cycle: 0.5 cent exactly.
    a = Package("a", 10, 1, 100_00, 1_000_00, "USD")
    b = Package("b", 10, 1, 100_01, 1_000_10, "USD")
    half = utc(2027, 1, 16, 12)
    up = quote_change(a, b, JAN, half, 0)
    assert up.lines[0].proration == Fraction(1, 2)
    assert up.total == usd(1)  # +0.5 → +1
    assert quote_change(b, a, JAN, half, 0).total == usd(-1)  # −0.5 → −1 (symmetric)
    c = Package("c", 10, 1, 100_03, 1_000_30, "USD")
    assert quote_change(a, c, JAN, half, 0).total == usd(2)  # 1.5 → 2
    assert prorate(5, 1, 2) == 3 and prorate(-5, 1, 2) == -3
    assert prorate(1, 1, 3) == 0 and prorate(2, 1, 3) == 1 and prorate(-2, 1, 3) == -1


def test_prorate_rejects_bad_durations() -> None:
    with pytest.raises(ValueError):
        prorate(100, 1, 0)
    with pytest.raises(ValueError):
        prorate(100, 5, 4)
    with pytest.raises(ValueError):
        prorate(100, -1, 4)


def decimal_oracle(diff: int, remaining: int, total: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 200  # far beyond the inputs' digits: the division is effectively exact
        return int((Decimal(diff) * remaining / total).quantize(Decimal(1), rounding=ROUND_HALF_UP))


cycles = st.integers(1, 10**13)


@given(st.integers(-(10**12), 10**12), cycles, st.data())
def test_prorate_matches_decimal_half_up(diff: int, total: int, data: st.DataObject) -> None:
    remaining = data.draw(st.integers(0, total))
    assert prorate(diff, remaining, total) == decimal_oracle(diff, remaining, total)


@given(st.integers(-(10**12), 10**12), cycles, st.data())
def test_prorate_monotone_bounded_exact_at_ends(diff: int, total: int, data: st.DataObject) -> None:
    r1 = data.draw(st.integers(0, total))
    r2 = data.draw(st.integers(r1, total))
    a, b = prorate(diff, r1, total), prorate(diff, r2, total)
    assert (a <= b) if diff >= 0 else (a >= b)
    assert abs(a) <= abs(diff) and abs(b) <= abs(diff)
    assert prorate(diff, 0, total) == 0
    assert prorate(diff, total, total) == diff
    assert prorate(-diff, r1, total) == -a  # symmetric rounding


@given(st.integers(-(10**9), 10**9), cycles, st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_split_prorations_differ_by_at_most_one_unit_per_rounding(
    diff: int, total: int, weights: list[int]
) -> None:
    # Cut the whole cycle into pieces; each piece's rounding can be off by at most half a minor unit.
    weight_sum = sum(weights) or 1
    cuts = [total * sum(weights[: i + 1]) // weight_sum for i in range(len(weights))]
    cuts[-1] = total
    pieces = [b - a for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
    split = sum(prorate(diff, p, total) for p in pieces)
    assert abs(split - prorate(diff, total, total)) <= len(pieces)


package_pairs = st.lists(
    st.builds(
        lambda i, m: Package(f"p{i}", 10**6, 5, m, 10 * m, "USD"),
        st.integers(0, 10**6),
        st.integers(0, 10**8),
    ),
    min_size=2,
    max_size=2,
    unique_by=lambda p: p.id,
)


@given(
    package_pairs,
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(list(PeriodUnit)),
    st.integers(1, 24),
    st.floats(0, 1, exclude_max=True),
)
def test_upgrade_then_reverse_at_the_same_instant_nets_zero(
    pair: list[Package], start: datetime, unit: PeriodUnit, count: int, at: float
) -> None:
    old, new = pair
    cycle = Cycle.starting(start, unit, count)
    now = cycle.start + timedelta(
        microseconds=int((cycle.end - cycle.start) / timedelta(microseconds=1) * at)
    )
    now = min(now, cycle.end - timedelta(microseconds=1))
    there = quote_change(old, new, cycle, now, 0)
    back = quote_change(new, old, cycle, now, 0)
    assert there.total + back.total == usd(0)
    assert there.lines[0].proration == back.lines[0].proration
    assert there.lines[0].proration is not None and 0 < there.lines[0].proration <= 1


# --- refusals ---------------------------------------------------------------------------------------


def test_change_refusals() -> None:
    with pytest.raises(LookalikeError) as err:
        quote_change(P800, P800, JAN, utc(2027, 1, 10), 0)
    assert err.value.code == INVALID_PACKAGE
    for outside in (utc(2026, 12, 31, 23, 59), utc(2027, 2, 1)):  # before start; exactly at end
        with pytest.raises(LookalikeError) as err:
            quote_change(P800, P1500, JAN, outside, 0)
        assert err.value.code == INSTANCE_STATUS_ERROR


def test_downgrade_below_stored_pictures_is_refused() -> None:
    small = CAT.get("100k-1qps")
    with pytest.raises(LookalikeError) as err:
        quote_change(P800, small, JAN, utc(2027, 1, 10), stored_count=100_001)
    assert err.value.code == CAPACITY_BELOW_USAGE
    assert err.value.http_status == 409
    assert "100001" in err.value.message
    # Exactly full is fine.
    assert quote_change(P800, small, JAN, utc(2027, 1, 10), stored_count=100_000).total < usd(0)
    check_capacity_fits(small, 100_000)
    with pytest.raises(LookalikeError):
        check_capacity_fits(small, 100_001)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        quote_buy(P800, PeriodUnit.MONTH, 1, datetime(2027, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        quote_change(P800, P1500, JAN, datetime(2027, 1, 10), 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        Cycle(datetime(2027, 1, 1), utc(2027, 2, 1), PeriodUnit.MONTH, 1)


def test_bad_cycles_and_periods() -> None:
    with pytest.raises(ValueError, match="not after start"):
        Cycle(utc(2027, 2, 1), utc(2027, 2, 1), PeriodUnit.MONTH, 1)
    for unit, count in ((PeriodUnit.MONTH, 0), ("fortnight", 1)):
        with pytest.raises(LookalikeError) as err:
            quote_buy(P800, unit, count, utc(2027, 1, 1))
        assert err.value.code == INVALID_PERIOD


def test_mixed_currency_change_is_a_programming_error() -> None:
    yen = Package("yen", 10**6, 5, 1000, 10000, "JPY")
    with pytest.raises(ValueError, match="currency mismatch"):
        quote_change(P800, yen, JAN, utc(2027, 1, 10), 0)


# --- trial ------------------------------------------------------------------------------------------


def test_trial_is_free_for_one_month() -> None:
    q = quote_trial(TRIAL, utc(2027, 1, 31))
    assert q.kind == "trial" and q.total == usd(0)
    assert q.new_cycle == Cycle(utc(2027, 1, 31), utc(2027, 2, 28), PeriodUnit.MONTH, 1)
    assert q.lines[0].amount == usd(0) and q.lines[0].package_id == "100k-1qps"


def test_trial_only_on_trial_package() -> None:
    with pytest.raises(LookalikeError) as err:
        quote_trial(P800, utc(2027, 1, 1))
    assert err.value.code == INVALID_PACKAGE


# --- renewal ----------------------------------------------------------------------------------------


def test_renewal_while_active_starts_at_the_end_of_the_cycle() -> None:
    q = quote_renewal(
        P800, PeriodUnit.MONTH, 1, utc(2027, 1, 20), utc(2027, 2, 1), expired=False, stored_count=5
    )
    assert q.kind == "renew" and q.total == usd(800_00)
    assert q.new_cycle == Cycle(utc(2027, 2, 1), utc(2027, 3, 1), PeriodUnit.MONTH, 1)
    assert q.effective_at == utc(2027, 2, 1)


def test_renewal_after_expiry_starts_now() -> None:
    q = quote_renewal(
        P800, PeriodUnit.MONTH, 1, utc(2027, 2, 5), utc(2027, 2, 1), expired=True, stored_count=5
    )
    assert q.new_cycle == Cycle(utc(2027, 2, 5), utc(2027, 3, 5), PeriodUnit.MONTH, 1)
    assert q.effective_at == utc(2027, 2, 5)


def test_renewal_for_years_with_another_package() -> None:
    q = quote_renewal(
        P1500, PeriodUnit.YEAR, 2, utc(2027, 1, 20), utc(2027, 2, 1), expired=False, stored_count=0
    )
    assert q.total == usd(2 * 15_000_00)
    assert q.new_cycle is not None and q.new_cycle.end == utc(2029, 2, 1)
    assert q.lines[0].package_id == "2.5m-10qps" and q.lines[0].description.endswith("2 years")


def test_renewal_refusals() -> None:
    small = CAT.get("100k-1qps")
    with pytest.raises(LookalikeError) as err:
        quote_renewal(
            small, PeriodUnit.MONTH, 1, utc(2027, 1, 20), utc(2027, 2, 1), False, stored_count=200_000
        )
    assert err.value.code == CAPACITY_BELOW_USAGE
    with pytest.raises(LookalikeError) as err:
        quote_renewal(P800, PeriodUnit.MONTH, 0, utc(2027, 1, 20), utc(2027, 2, 1), False, 0)
    assert err.value.code == INVALID_PERIOD
    # "Active" with a cycle already over contradicts the clock: the caller's bug, not the tenant's.
    with pytest.raises(ValueError, match="expired=True"):
        quote_renewal(P800, PeriodUnit.MONTH, 1, utc(2027, 2, 1), utc(2027, 2, 1), False, 0)


def test_renewal_without_a_current_cycle_starts_now() -> None:
    q = quote_renewal(P800, PeriodUnit.MONTH, 1, utc(2027, 3, 1), None, expired=False, stored_count=0)
    assert q.new_cycle is not None and q.new_cycle.start == utc(2027, 3, 1)
