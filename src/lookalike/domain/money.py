"""Money as integer minor units plus a currency code.

Amounts are whole minor units (cents for USD, yen for JPY) so sums are exact and
a ledger balance is a plain integer sum. How many decimals a currency has (its
exponent) lives in the catalogue, not here, so operators can price in any currency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# Plain decimal notation only: no exponents, NaN, infinities, thousands separators or signs other than "-".
_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True)
class Money:
    """An amount in integer minor units of `currency`.

    Arithmetic and ordering work only within one currency; mixing currencies raises
    ValueError rather than silently comparing numbers of different units.
    """

    amount: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; True dollars is a bug, not an amount.
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError(f"Money.amount must be an int of minor units, got {self.amount!r}")
        if not self.currency:
            raise ValueError("Money.currency must not be empty")

    @staticmethod
    def zero(currency: str) -> Money:
        return Money(0, currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def format(self, exponent: int) -> str:
        """E.g. Money(36129, "USD").format(2) == "361.29 USD"."""
        return f"{format_amount(self.amount, self.currency, exponent)} {self.currency}"


# The largest single amount (a price, a top-up) in minor units: 10^15 is 10 trillion dollars, far above any
# real order, and keeps every sum of amounts inside the signed 64-bit integers SQL stores.
MAX_AMOUNT = 10**15


def parse_decimal_amount(text: str, exponent: int) -> int:
    """Parse a decimal string into integer minor units: parse_decimal_amount("800.00", 2) == 80000.

    Refuses more decimals than the currency has (ValueError), so no price is ever rounded on load.
    """
    _check_exponent(exponent)
    if not isinstance(text, str) or not _DECIMAL_RE.fullmatch(text):
        raise ValueError(f"not a plain decimal amount: {text!r}")
    value = Decimal(text)
    exp = value.as_tuple().exponent
    assert isinstance(exp, int)  # finite by the regex
    if -exp > exponent:
        raise ValueError(f"amount {text!r} has more than {exponent} decimal places")
    return int(value.scaleb(exponent))


def format_amount(amount: int, currency: str, exponent: int) -> str:
    """Minor units to a plain decimal string: format_amount(36129, "USD", 2) == "361.29".

    `currency` is accepted for symmetry with Money and future per-currency formatting; the
    output has no symbol or thousands separators so it round-trips through parse_decimal_amount.
    """
    _check_exponent(exponent)
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**exponent)
    if exponent == 0:
        return f"{sign}{units}"
    return f"{sign}{units}.{minor:0{exponent}d}"


def _check_exponent(exponent: int) -> None:
    if not isinstance(exponent, int) or isinstance(exponent, bool) or not 0 <= exponent <= 6:
        raise ValueError(f"currency exponent must be an int in 0..6, got {exponent!r}")
