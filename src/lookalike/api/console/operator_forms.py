"""Operator form fields: decimal amounts and whole numbers, refused with a message a person can act on.

Only the shape of the input is checked here; what the values may be (a positive top-up, seats not below those
taken, a valid package) is the service's rule and its error is shown as it is.
"""

from __future__ import annotations

from starlette.datastructures import FormData

from lookalike.api.console.web import field
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.money import parse_decimal_amount

# Counts (seats, days, capacity, QPS) far above any real one: a typo of extra digits gets a message here;
# the service's own bounds apply below this.
MAX_NUMBER = 10**15


def amount_field(form: FormData, name: str, label: str, exponent: int) -> int:
    """A decimal amount in the catalogue currency ("500.00"), as integer minor units."""
    text = field(form, name)
    example = "500" if exponent == 0 else "500." + "0" * exponent
    if not text:
        raise LookalikeError(e.INVALID_AMOUNT, f"{label}: enter an amount, e.g. {example}.")
    try:
        minor = parse_decimal_amount(text, exponent)
    except ValueError:
        places = "no decimals" if exponent == 0 else f"at most {exponent} decimals"
        raise LookalikeError(
            e.INVALID_AMOUNT,
            f"{label}: {text!r} is not an amount; write digits with {places}, e.g. {example}.",
        ) from None
    return minor  # how large an amount may be is the service's rule (domain.money.MAX_AMOUNT)


def whole_number(form: FormData, name: str, label: str, *, required: bool = True) -> int | None:
    """A non-negative whole number, or None when the field is blank and not required."""
    text = field(form, name)
    if not text:
        if required:
            raise LookalikeError(e.INVALID_PARAMETER, f"{label}: enter a whole number.")
        return None
    if not text.isascii() or not text.isdigit():
        raise LookalikeError(e.INVALID_PARAMETER, f"{label}: {text!r} is not a whole number of 0 or more.")
    value = int(text)
    if value >= MAX_NUMBER:
        raise LookalikeError(e.INVALID_PARAMETER, f"{label}: {text} is too large.")
    return value
