"""Values as clients send them (JSON numbers, form text), read strictly: whole numbers that fit the stores,
yes/no in each reader's own words, text fields, and JSON that any store can keep. Pure functions; the API
dialects, the settings and the batch importers turn the ValueError into their own error code.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

# The range of the stores' integer columns (re-exported: callers bound their numbers with it).
from lookalike.domain.attributes import INT64_MAX as INT64_MAX
from lookalike.domain.attributes import INT64_MIN as INT64_MIN

MAX_JSON_DEPTH: Final = 64  # no request of ours nests deeper than 3; a deep body is an attack or a bug

_WHOLE = re.compile(r"[+-]?[0-9]{1,19}")  # ASCII digits only: int() also takes "1_000" and "５"


def parse_int(value: object) -> int:
    """A whole number from a JSON number or text, within 64 bits. A fraction (5.7), a non-finite number,
    a boolean or anything else is a ValueError, never silently cut or wrapped."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _WHOLE.fullmatch(text):
            raise ValueError(f"{value[:40]!r} is not a whole number")
        number = int(text)
    else:
        raise ValueError(f"a {type(value).__name__} is not a whole number")
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"{str(number)[:40]} is out of range")
    return number


@dataclass(frozen=True)
class YesNo:
    """The words a reader takes for yes and for no (compared trimmed and in lower case)."""

    true: frozenset[str]
    false: frozenset[str]


# Each reader's words. They differ on purpose: each is what that reader's clients have always been able to
# send, so none may shrink (a client would break) and none is widened here.
# Manifest lines and increment.meta items: JSON, so a JSON boolean, or the text of one.
JSON_YES_NO: Final = YesNo(true=frozenset({"true"}), false=frozenset({"false"}))
# The Alibaba dialect: what the official SDKs put on the wire (Python's True/False, Java's true/false).
ALIBABA_YES_NO: Final = YesNo(true=frozenset({"true", "1"}), false=frozenset({"false", "0"}))
# The native API and the console: form fields and query strings people also type by hand.
REST_YES_NO: Final = YesNo(true=frozenset({"true", "1", "yes"}), false=frozenset({"false", "0", "no"}))
# Settings (environment variables, config files): also the on/off of shell and ini habits.
CONFIG_YES_NO: Final = YesNo(
    true=frozenset({"true", "1", "yes", "on"}), false=frozenset({"false", "0", "no", "off"})
)


def parse_bool(value: object, words: YesNo) -> bool:
    """A JSON boolean as it is; anything else by its text, trimmed and in lower case, if it is one of
    ``words`` (so a JSON 1 is yes where "1" is). ValueError otherwise."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in words.true:
        return True
    if word in words.false:
        return False
    raise ValueError(f"{str(value)[:20]!r} is not one of {', '.join(sorted(words.true | words.false))}")


def parse_text(value: object) -> str:
    """A text field of a JSON item: a string, or a whole number written without quotes; absent (None) is
    "". A boolean, a fraction, a list or an object is a ValueError."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"a {type(value).__name__} is not text")
    return str(value)


def parse_positive_id(text: str, digits: int = 18) -> int:
    """A number named in a URL (a report id, a group, a page): plain ASCII digits, at least 1, at most
    ``digits`` of them (what the column holding it can store); ValueError otherwise."""
    if not (text.isascii() and text.isdigit()) or not 0 < len(text) <= digits or int(text) == 0:
        raise ValueError(f"{text[:20]!r} is not a positive whole number")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is out of range")
    return number


def loads_strict(raw: bytes | str) -> Any:
    """`json.loads`, refusing what the standard leaves out or a store cannot keep: NaN and Infinity,
    numbers that overflow a float (1e400) or have over 4,300 digits, strings with lone surrogates
    ("\\ud800"), and nesting deeper than MAX_JSON_DEPTH. Every refusal is a ValueError."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise ValueError("the JSON is not UTF-8") from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
