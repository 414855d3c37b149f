"""The package catalogue: what can be bought, at what price.

A package bundles a maximum image capacity and a search QPS with a monthly and a
yearly price; the two cannot be bought separately. The catalogue is an operator-
replaceable JSON document (currency, minor-unit exponent, packages); prices are
decimal strings parsed exactly into integer minor units, never floats. A private
quotation is a package with `private_for` set: only that account sees or buys it.

Validation is strict (unknown keys, duplicate ids, non-positive capacity/QPS,
negative prices, more decimals than the currency has) because a typo in a price
file is silently wrong money otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib import resources
from typing import Any, Final

from lookalike.domain.calendar import PeriodUnit
from lookalike.domain.errors import INVALID_CATALOGUE, INVALID_PACKAGE, INVALID_PERIOD, LookalikeError
from lookalike.domain.money import MAX_AMOUNT, Money, format_amount, parse_decimal_amount

MAX_PERIOD_COUNT: Final = 100  # guard only: keeps period arithmetic far from datetime's year 9999
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_TOP_KEYS: Final = frozenset({"currency", "exponent", "packages", "notes"})
_REQUIRED_TOP_KEYS: Final = frozenset({"currency", "exponent", "packages"})
_PACKAGE_KEYS: Final = frozenset(
    {"id", "capacity", "qps", "monthly", "yearly", "trial", "name", "private_for"}
)
_REQUIRED_PACKAGE_KEYS: Final = frozenset({"id", "capacity", "qps", "monthly", "yearly"})


def check_period(unit: PeriodUnit | str, count: int) -> PeriodUnit:
    """Validate a subscription duration; LookalikeError(InvalidPeriod) for a bad unit or count."""
    try:
        period_unit = PeriodUnit(unit)
    except ValueError:
        raise LookalikeError(
            INVALID_PERIOD, f"Period unit must be 'month' or 'year', got {unit!r}."
        ) from None
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PERIOD_COUNT:
        raise LookalikeError(INVALID_PERIOD, f"Period count must be an integer in 1..{MAX_PERIOD_COUNT}.")
    return period_unit


def capacity_label(capacity: int) -> str:
    """100000 -> "100K", 2500000 -> "2.5M"; falls back to the plain number for odd sizes."""
    for scale, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if capacity >= scale:
            value = Decimal(capacity) / scale
            if value == value.quantize(Decimal("0.01")):
                return f"{value.normalize():f}{suffix}"
            break
    return f"{capacity:,}"


@dataclass(frozen=True)
class Package:
    """One resource package. Prices are integer minor units of `currency`."""

    id: str
    capacity: int
    qps: int
    monthly: int
    yearly: int
    currency: str
    trial: bool = False
    private_for: str | None = None  # account id of a private quotation; None = public
    name: str = field(default="")  # display name; generated from capacity and QPS when empty

    def __post_init__(self) -> None:
        problem = _package_problem(self)
        if problem:
            raise LookalikeError(INVALID_PACKAGE, f"Package {self.id!r}: {problem}")
        if not self.name:
            # Frozen dataclass: object.__setattr__ is the sanctioned way to fill a derived field.
            object.__setattr__(self, "name", f"{capacity_label(self.capacity)} images / {self.qps} QPS")

    def price(self, unit: PeriodUnit | str, count: int) -> Money:
        """Price of `count` periods: monthly × months or yearly × years (no proration here)."""
        period_unit = check_period(unit, count)
        per = self.yearly if period_unit is PeriodUnit.YEAR else self.monthly
        return Money(per * count, self.currency)

    def to_dict(self, exponent: int) -> dict[str, Any]:
        """The catalogue-file shape of this package (round-trips through parse_package)."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "capacity": self.capacity,
            "qps": self.qps,
            "monthly": format_amount(self.monthly, self.currency, exponent),
            "yearly": format_amount(self.yearly, self.currency, exponent),
            "trial": self.trial,
        }
        if self.private_for is not None:
            data["private_for"] = self.private_for
        return data


# Bounds far above any real package that keep the values inside their SQL columns (qps is a 32-bit INTEGER).
MAX_CAPACITY = 10**12
MAX_QPS = 1_000_000


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _package_problem(p: Package) -> str | None:
    if not isinstance(p.id, str) or not _ID_RE.fullmatch(p.id):
        return "id must be 1-64 characters of letters, digits, '.', '_' or '-', starting alphanumeric"
    if not _is_int(p.capacity) or not 0 < p.capacity <= MAX_CAPACITY:
        return f"capacity must be a positive integer up to {MAX_CAPACITY}"
    if not _is_int(p.qps) or not 0 < p.qps <= MAX_QPS:
        return f"qps must be a positive integer up to {MAX_QPS}"
    for label, price in (("monthly", p.monthly), ("yearly", p.yearly)):
        if not _is_int(price) or price < 0:
            return f"{label} price must be a non-negative integer of minor units"
        if price > MAX_AMOUNT:
            return f"{label} price must be at most {MAX_AMOUNT} minor units"
    if not isinstance(p.trial, bool):
        return "trial must be true or false"
    if p.private_for is not None and (not isinstance(p.private_for, str) or not p.private_for):
        return "private_for must be a non-empty account id or null"
    if p.trial and p.private_for is not None:
        return "a private quotation cannot carry the free trial"
    if not isinstance(p.name, str):
        return "name must be a string"
    return None


def parse_package(data: Mapping[str, Any], currency: str, exponent: int) -> Package:
    """Build a package from its catalogue-file shape (also the admin private-quote shape).

    Errors are LookalikeError(InvalidPackage) naming the offending field.
    """
    if not isinstance(data, Mapping):
        raise LookalikeError(INVALID_PACKAGE, "A package must be a JSON object.")
    pid = data.get("id")
    where = f"Package {pid!r}" if isinstance(pid, str) else "Package"
    unknown = sorted(str(k) for k in data if k not in _PACKAGE_KEYS)
    if unknown:
        raise LookalikeError(INVALID_PACKAGE, f"{where}: unknown key(s) {', '.join(unknown)}.")
    missing = sorted(_REQUIRED_PACKAGE_KEYS - set(data))
    if missing:
        raise LookalikeError(INVALID_PACKAGE, f"{where}: missing key(s) {', '.join(missing)}.")
    prices: dict[str, int] = {}
    for label in ("monthly", "yearly"):
        text = data[label]
        if not isinstance(text, str):
            # JSON numbers become floats; "800.00" strings keep prices exact.
            raise LookalikeError(INVALID_PACKAGE, f'{where}: {label} must be a decimal string like "800.00".')
        try:
            prices[label] = parse_decimal_amount(text, exponent)
        except ValueError as exc:
            raise LookalikeError(INVALID_PACKAGE, f"{where}: {label}: {exc}.") from None
    return Package(
        id=data["id"],
        capacity=data["capacity"],
        qps=data["qps"],
        monthly=prices["monthly"],
        yearly=prices["yearly"],
        currency=currency,
        trial=data.get("trial", False),
        private_for=data.get("private_for"),
        name=data.get("name", ""),
    )


@dataclass(frozen=True)
class Catalogue:
    currency: str
    exponent: int  # minor-unit decimals: 2 for USD, 0 for JPY
    packages: tuple[Package, ...]
    notes: str = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for p in self.packages:
            if p.id in seen:
                raise LookalikeError(INVALID_CATALOGUE, f"Duplicate package id {p.id!r}.")
            seen.add(p.id)
            if p.currency != self.currency:
                raise LookalikeError(
                    INVALID_CATALOGUE, f"Package {p.id!r} is priced in {p.currency}, not {self.currency}."
                )
        trials = [p.id for p in self.packages if p.trial]
        if len(trials) > 1:
            raise LookalikeError(INVALID_CATALOGUE, f"At most one trial package, got {', '.join(trials)}.")

    def get(self, package_id: str) -> Package:
        """Any package by id, private ones included; InvalidPackage if there is none."""
        for p in self.packages:
            if p.id == package_id:
                return p
        raise LookalikeError(INVALID_PACKAGE, f"No package {package_id!r}.")

    def get_for(self, package_id: str, account_id: str) -> Package:
        """A package `account_id` may buy; another account's private quote reads as unknown on purpose."""
        p = self.get(package_id)
        if p.private_for is not None and p.private_for != account_id:
            raise LookalikeError(INVALID_PACKAGE, f"No package {package_id!r}.")
        return p

    def visible_to(self, account_id: str) -> list[Package]:
        """Public packages plus this account's private quotations, in catalogue order."""
        return [p for p in self.packages if p.private_for is None or p.private_for == account_id]

    def trial_package(self) -> Package:
        for p in self.packages:
            if p.trial:
                return p
        raise LookalikeError(INVALID_PACKAGE, "This catalogue offers no free trial.")

    def with_private(self, package: Package) -> Catalogue:
        """A new catalogue that also offers `package`, a private quotation for one account."""
        if package.private_for is None:
            raise LookalikeError(INVALID_PACKAGE, "A private quotation needs private_for (an account id).")
        if package.currency != self.currency:
            raise LookalikeError(
                INVALID_PACKAGE,
                f"Private package in {package.currency}, catalogue in {self.currency}.",
            )
        if any(p.id == package.id for p in self.packages):
            raise LookalikeError(INVALID_PACKAGE, f"Package id {package.id!r} already exists.")
        return replace(self, packages=(*self.packages, package))

    def to_dict(self) -> dict[str, Any]:
        """The catalogue-file shape (round-trips through parse_catalogue)."""
        return {
            "currency": self.currency,
            "exponent": self.exponent,
            "notes": self.notes,
            "packages": [p.to_dict(self.exponent) for p in self.packages],
        }


def parse_catalogue(data: Mapping[str, Any]) -> Catalogue:
    """Validate a catalogue document; every problem is LookalikeError(InvalidCatalogue, ...)."""
    if not isinstance(data, Mapping):
        raise LookalikeError(INVALID_CATALOGUE, "The catalogue must be a JSON object.")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise LookalikeError(INVALID_CATALOGUE, f"Unknown key(s) {', '.join(unknown)}.")
    missing = sorted(_REQUIRED_TOP_KEYS - set(data))
    if missing:
        raise LookalikeError(INVALID_CATALOGUE, f"Missing key(s) {', '.join(missing)}.")
    currency, exponent, notes = data["currency"], data["exponent"], data.get("notes", "")
    if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
        raise LookalikeError(INVALID_CATALOGUE, "currency must be a three-letter ISO 4217 code like 'USD'.")
    if not _is_int(exponent) or not 0 <= exponent <= 6:
        raise LookalikeError(INVALID_CATALOGUE, "exponent must be an integer in 0..6 (2 for USD, 0 for JPY).")
    if not isinstance(notes, str):
        raise LookalikeError(INVALID_CATALOGUE, "notes must be a string.")
    raw_packages = data["packages"]
    if not isinstance(raw_packages, list) or not raw_packages:
        raise LookalikeError(INVALID_CATALOGUE, "packages must be a non-empty list.")
    packages: list[Package] = []
    for i, raw in enumerate(raw_packages):
        try:
            packages.append(parse_package(raw, currency, exponent))
        except LookalikeError as exc:
            raise LookalikeError(INVALID_CATALOGUE, f"packages[{i}]: {exc.message}") from None
    return Catalogue(currency=currency, exponent=exponent, packages=tuple(packages), notes=notes)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys silently; a doubled "monthly" must not pass.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise LookalikeError(INVALID_CATALOGUE, f"Duplicate key {key!r} in the catalogue JSON.")
        result[key] = value
    return result


def load_catalogue_json(text: str) -> Catalogue:
    """Parse and validate catalogue JSON text (what an operator's file holds)."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise LookalikeError(INVALID_CATALOGUE, f"Not valid JSON: {exc}.") from None
    return parse_catalogue(data)


def default_catalogue_text() -> str:
    """The packaged default catalogue (package data, not the filesystem, so it works from a wheel)."""
    return resources.files("lookalike.data").joinpath("catalogue.json").read_text(encoding="utf-8")


def default_catalogue() -> Catalogue:
    return load_catalogue_json(default_catalogue_text())
