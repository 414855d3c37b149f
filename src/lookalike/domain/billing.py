"""Quotes: what buying, a trial, a renewal or a package change costs, and the cycle it yields.

Pure functions of their arguments (the caller passes `now`); nothing here stores
anything. A quote is what a tenant sees before paying and, unchanged, what the
order records as its receipt lines.

Proration (package change mid-cycle)
------------------------------------
The cycle's start and end stay. The tenant pays (upgrade) or gets back (downgrade)
the difference between the new and the old package's price for the whole cycle,
scaled by the part of the cycle that remains:

    amount = round_half_up((new_cycle_price - old_cycle_price) * remaining / cycle_length)

where a cycle price is the monthly price × months or the yearly price × years of the
cycle, and `remaining` and `cycle_length` are exact durations (seconds, with the
datetime's microsecond resolution kept, so at whole-second times it is exactly
seconds). There is exactly ONE rounding step, to the currency's minor unit,
ROUND_HALF_UP as the `decimal` module defines it: ties round away from zero. Being
symmetric, a refund of −x.5 minor units rounds to −(x+1), so an upgrade and the
reverse downgrade at the same instant net to zero. The quotient is computed with
exact integer arithmetic; this equals Decimal(diff × remaining) / Decimal(length)
quantized with ROUND_HALF_UP at unlimited precision (the tests check it against
Decimal), whereas a plain Decimal division would first round at the context's 28
digits: a hidden second rounding step.

Worked example: cycle 2027-01-01 → 2027-02-01 (31 days) on a $800 package; upgrade to
$1,500 at 2027-01-16 → 700.00 × 16/31 = 361.290… → $361.29 charged; back down at
2027-01-24 → −700.00 × 8/31 = −180.645… → $180.65 refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Final

from lookalike.domain.calendar import PeriodUnit, add_period, ensure_utc
from lookalike.domain.catalogue import Package, check_period
from lookalike.domain.errors import (
    CAPACITY_BELOW_USAGE,
    INSTANCE_STATUS_ERROR,
    INVALID_PACKAGE,
    INVALID_PERIOD,
    LookalikeError,
)
from lookalike.domain.money import Money

KIND_BUY: Final = "buy"
KIND_TRIAL: Final = "trial"
KIND_RENEW: Final = "renew"
KIND_CHANGE: Final = "change"

_TICK: Final = timedelta(microseconds=1)  # datetime's resolution: durations in ticks are exact integers


@dataclass(frozen=True)
class Cycle:
    """A billing cycle [start, end) bought as `count` periods of `unit`."""

    start: datetime
    end: datetime
    unit: PeriodUnit
    count: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start, "cycle start"))
        object.__setattr__(self, "end", ensure_utc(self.end, "cycle end"))
        object.__setattr__(self, "unit", check_period(self.unit, self.count))
        if self.end <= self.start:
            raise ValueError(f"cycle end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @classmethod
    def starting(cls, start: datetime, unit: PeriodUnit | str, count: int) -> Cycle:
        """The cycle of `count` `unit`s from `start`, its end by calendar arithmetic from the anchor."""
        period_unit = check_period(unit, count)
        try:
            end = add_period(start, period_unit, count)
        except OverflowError:
            raise LookalikeError(INVALID_PERIOD, "The period ends beyond the supported calendar.") from None
        return cls(start=start, end=end, unit=period_unit, count=count)

    def contains(self, moment: datetime) -> bool:
        return self.start <= ensure_utc(moment) < self.end


@dataclass(frozen=True)
class LineItem:
    description: str
    package_id: str
    period_start: datetime
    period_end: datetime
    proration: Fraction | None  # remaining / cycle length, exact; None when the full price applies
    amount: Money  # positive = charge, negative = refund


@dataclass(frozen=True)
class Quote:
    kind: str  # "buy" | "trial" | "renew" | "change"
    total: Money  # positive = charge, negative = refund
    lines: tuple[LineItem, ...]
    new_cycle: Cycle | None  # None for a change: the cycle stays as it was
    effective_at: datetime  # when the quoted package takes effect


def prorate(amount_diff: int, remaining_seconds: int, cycle_seconds: int) -> int:
    """round_half_up(amount_diff × remaining / cycle), the single rounding step; ties away from zero.

    Any common duration unit works (billing passes microsecond ticks); only the ratio matters.
    """
    if cycle_seconds <= 0:
        raise ValueError("cycle length must be positive")
    if not 0 <= remaining_seconds <= cycle_seconds:
        raise ValueError("remaining time must lie within the cycle")
    quotient, remainder = divmod(abs(amount_diff) * remaining_seconds, cycle_seconds)
    if 2 * remainder >= cycle_seconds:  # exactly half rounds up (away from zero)
        quotient += 1
    return quotient if amount_diff >= 0 else -quotient


def check_capacity_fits(package: Package, stored_count: int) -> None:
    """Refuse a package that cannot hold the pictures already stored (nothing is ever dropped to fit)."""
    if stored_count > package.capacity:
        raise LookalikeError(
            CAPACITY_BELOW_USAGE,
            f"Package {package.id!r} holds {package.capacity} images but {stored_count} are stored; "
            "delete pictures first or choose a larger package.",
        )


def _full_price_line(kind_word: str, package: Package, cycle: Cycle, amount: Money) -> LineItem:
    plural = "" if cycle.count == 1 else "s"
    return LineItem(
        description=f"{kind_word}: {package.name}, {cycle.count} {cycle.unit.value}{plural}",
        package_id=package.id,
        period_start=cycle.start,
        period_end=cycle.end,
        proration=None,
        amount=amount,
    )


def quote_buy(package: Package, unit: PeriodUnit | str, count: int, now: datetime) -> Quote:
    """A new subscription: cycle [now, now + period), full price."""
    cycle = Cycle.starting(ensure_utc(now, "now"), unit, count)
    price = package.price(cycle.unit, count)
    line = _full_price_line("Subscription", package, cycle, price)
    return Quote(KIND_BUY, price, (line,), cycle, cycle.start)


def quote_trial(package: Package, now: datetime) -> Quote:
    """The free one-month trial; only a package marked trial=True offers it (seat limits are the caller's)."""
    if not package.trial:
        raise LookalikeError(INVALID_PACKAGE, f"Package {package.id!r} has no free trial.")
    cycle = Cycle.starting(ensure_utc(now, "now"), PeriodUnit.MONTH, 1)
    line = _full_price_line("Free trial", package, cycle, Money.zero(package.currency))
    return Quote(KIND_TRIAL, Money.zero(package.currency), (line,), cycle, cycle.start)


def quote_renewal(
    package: Package,
    unit: PeriodUnit | str,
    count: int,
    now: datetime,
    current_cycle_end: datetime | None,
    expired: bool,
    stored_count: int,
) -> Quote:
    """Renew for `count` `unit`s of `package` (which may differ from the current one).

    An active instance's new cycle starts where the current one ends (the new package takes
    effect then); an expired one's starts now. Full price, no proration.
    """
    now = ensure_utc(now, "now")
    check_capacity_fits(package, stored_count)
    if expired or current_cycle_end is None:
        start = now
    else:
        start = ensure_utc(current_cycle_end, "current_cycle_end")
        if start <= now:
            # The caller's state and clock disagree: at paid_until the instance is already expired.
            raise ValueError("an active instance's cycle must end after now; pass expired=True")
    cycle = Cycle.starting(start, unit, count)
    price = package.price(cycle.unit, count)
    line = _full_price_line("Renewal", package, cycle, price)
    return Quote(KIND_RENEW, price, (line,), cycle, cycle.start)


def quote_change(old: Package, new: Package, cycle: Cycle, now: datetime, stored_count: int) -> Quote:
    """Upgrade or downgrade at `now`, effective at once, cycle unchanged; see the module docstring."""
    now = ensure_utc(now, "now")
    if old.id == new.id:
        raise LookalikeError(INVALID_PACKAGE, f"The instance already holds package {new.id!r}.")
    if not cycle.contains(now):
        raise LookalikeError(
            INSTANCE_STATUS_ERROR, "The package can only be changed during an active billing cycle."
        )
    check_capacity_fits(new, stored_count)
    diff = new.price(cycle.unit, cycle.count) - old.price(cycle.unit, cycle.count)  # ValueError on currency
    remaining = (cycle.end - now) // _TICK
    length = (cycle.end - cycle.start) // _TICK
    amount = Money(prorate(diff.amount, remaining, length), diff.currency)
    word = "Upgrade" if diff.amount > 0 else "Downgrade" if diff.amount < 0 else "Change"
    line = LineItem(
        description=f"{word}: {old.name} → {new.name} for the rest of the cycle",
        package_id=new.id,
        period_start=now,
        period_end=cycle.end,
        proration=Fraction(remaining, length),
        amount=amount,
    )
    return Quote(KIND_CHANGE, amount, (line,), None, now)
