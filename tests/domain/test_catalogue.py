"""The default catalogue, catalogue validation and private quotations."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.calendar import PeriodUnit
from lookalike.domain.catalogue import (
    Catalogue,
    Package,
    default_catalogue,
    default_catalogue_text,
    load_catalogue_json,
    parse_catalogue,
    parse_package,
)
from lookalike.domain.errors import INVALID_CATALOGUE, INVALID_PACKAGE, INVALID_PERIOD, LookalikeError
from lookalike.domain.money import Money

# (id, capacity, qps, monthly USD) exactly as the billing terms list them.
EXPECTED = [
    ("100k-1qps", 100_000, 1, 300_00),
    ("2.5m-5qps", 2_500_000, 5, 800_00),
    ("2.5m-10qps", 2_500_000, 10, 1_500_00),
    ("5m-5qps", 5_000_000, 5, 1_600_00),
    ("5m-10qps", 5_000_000, 10, 2_900_00),
    ("10m-5qps", 10_000_000, 5, 2_900_00),
    ("10m-10qps", 10_000_000, 10, 5_500_00),
    ("20m-5qps", 20_000_000, 5, 5_500_00),
    ("20m-10qps", 20_000_000, 10, 10_300_00),
    ("30m-5qps", 30_000_000, 5, 7_900_00),
    ("30m-10qps", 30_000_000, 10, 14_700_00),
    ("40m-5qps", 40_000_000, 5, 10_000_00),
    ("40m-10qps", 40_000_000, 10, 18_600_00),
    ("50m-5qps", 50_000_000, 5, 11_800_00),
    ("50m-10qps", 50_000_000, 10, 22_100_00),
]


def base_doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(default_catalogue_text())
    return data


def test_default_catalogue_is_exactly_the_price_list() -> None:
    cat = default_catalogue()
    assert cat.currency == "USD" and cat.exponent == 2
    got = [(p.id, p.capacity, p.qps, p.monthly) for p in cat.packages]
    assert got == EXPECTED
    assert all(p.private_for is None and p.currency == "USD" for p in cat.packages)


def test_default_yearly_is_ten_months_and_says_so() -> None:
    cat = default_catalogue()
    for p in cat.packages:
        assert p.yearly == 10 * p.monthly
        assert p.price(PeriodUnit.YEAR, 1) == Money(10 * p.monthly, "USD")
        assert p.price(PeriodUnit.YEAR, 2) == Money(20 * p.monthly, "USD")
        assert p.price(PeriodUnit.MONTH, 3) == Money(3 * p.monthly, "USD")
    assert "10 times" in cat.notes and "yearly" in cat.notes


def test_only_the_100k_package_has_the_trial() -> None:
    cat = default_catalogue()
    assert [p.id for p in cat.packages if p.trial] == ["100k-1qps"]
    assert cat.trial_package().id == "100k-1qps"


def test_names() -> None:
    cat = default_catalogue()
    assert cat.get("2.5m-5qps").name == "2.5M images / 5 QPS"
    assert cat.get("100k-1qps").name == "100K images / 1 QPS"
    assert cat.get("50m-10qps").name == "50M images / 10 QPS"


def test_get_unknown_package() -> None:
    with pytest.raises(LookalikeError) as err:
        default_catalogue().get("nope")
    assert err.value.code == INVALID_PACKAGE


@pytest.mark.parametrize(("unit", "count"), [("week", 1), (PeriodUnit.MONTH, 0), (PeriodUnit.YEAR, -1)])
def test_bad_periods(unit: Any, count: int) -> None:
    with pytest.raises(LookalikeError) as err:
        default_catalogue().get("100k-1qps").price(unit, count)
    assert err.value.code == INVALID_PERIOD


def test_round_trip_to_dict() -> None:
    cat = default_catalogue()
    assert parse_catalogue(cat.to_dict()) == cat


def test_other_currency_with_exponent_zero() -> None:
    doc = {
        "currency": "JPY",
        "exponent": 0,
        "packages": [{"id": "small", "capacity": 100_000, "qps": 1, "monthly": "45000", "yearly": "450000"}],
    }
    cat = parse_catalogue(doc)
    assert cat.get("small").price(PeriodUnit.MONTH, 2) == Money(90000, "JPY")
    assert cat.notes == ""
    doc["packages"][0]["monthly"] = "45000.5"  # type: ignore[index]
    with pytest.raises(LookalikeError, match="more than 0 decimal"):
        parse_catalogue(doc)


ONE: dict[str, Any] = {"id": "p", "capacity": 1, "qps": 1, "monthly": "1.00", "yearly": "10.00"}


def _mutations() -> list[tuple[str, Any, str]]:
    def dup(d: dict[str, Any]) -> None:
        d["packages"].append(copy.deepcopy(d["packages"][1]))

    def set_pkg(key: str, value: Any) -> Any:
        def f(d: dict[str, Any]) -> None:
            d["packages"][1][key] = value

        return f

    def set_top(key: str, value: Any) -> Any:
        def f(d: dict[str, Any]) -> None:
            d[key] = value

        return f

    def del_pkg(key: str) -> Any:
        def f(d: dict[str, Any]) -> None:
            del d["packages"][1][key]

        return f

    def second_trial(d: dict[str, Any]) -> None:
        d["packages"][1]["trial"] = True

    return [
        ("duplicate id", dup, "Duplicate package id '2.5m-5qps'"),
        ("zero capacity", set_pkg("capacity", 0), "capacity must be a positive integer"),
        ("negative capacity", set_pkg("capacity", -5), "capacity must be a positive integer"),
        ("float capacity", set_pkg("capacity", 2.5), "capacity must be a positive integer"),
        ("zero qps", set_pkg("qps", 0), "qps must be a positive integer"),
        ("bool qps", set_pkg("qps", True), "qps must be a positive integer"),
        ("huge capacity", set_pkg("capacity", 10**13), "capacity must be a positive integer up to"),
        ("huge qps", set_pkg("qps", 2**31), "qps must be a positive integer up to"),
        ("huge price", set_pkg("monthly", "100000000000000.00"), "at most 1000000000000000 minor units"),
        ("negative price", set_pkg("monthly", "-1.00"), "monthly price must be a non-negative"),
        ("too many decimals", set_pkg("yearly", "8000.001"), "more than 2 decimal places"),
        ("float price", set_pkg("monthly", 800.0), 'decimal string like "800.00"'),
        ("garbage price", set_pkg("monthly", "eight hundred"), "not a plain decimal amount"),
        ("unknown package key", set_pkg("colour", "red"), "unknown key(s) colour"),
        ("missing package key", del_pkg("yearly"), "missing key(s) yearly"),
        ("bad id", set_pkg("id", "has space"), "id must be"),
        ("trial not bool", set_pkg("trial", "yes"), "trial must be true or false"),
        ("two trials", second_trial, "At most one trial package"),
        ("private trial", set_top("packages", [{**ONE, "trial": True, "private_for": "a"}]), "free trial"),
        ("unknown top key", set_top("vat", "20%"), "Unknown key(s) vat"),
        ("bad currency", set_top("currency", "usd"), "three-letter"),
        ("bad exponent", set_top("exponent", 2.0), "exponent must be an integer"),
        ("exponent too big", set_top("exponent", 9), "exponent must be an integer"),
        ("empty packages", set_top("packages", []), "non-empty list"),
        ("packages not list", set_top("packages", {"a": 1}), "non-empty list"),
        ("package not object", set_top("packages", ["x"]), "must be a JSON object"),
        ("notes not string", set_top("notes", 5), "notes must be a string"),
    ]


@pytest.mark.parametrize(("label", "mutate", "message"), _mutations(), ids=[m[0] for m in _mutations()])
def test_catalogue_validation_errors(label: str, mutate: Any, message: str) -> None:
    doc = base_doc()
    mutate(doc)
    with pytest.raises(LookalikeError) as err:
        parse_catalogue(doc)
    assert err.value.code == INVALID_CATALOGUE
    assert message in err.value.message


def test_missing_top_key_and_non_object() -> None:
    doc = base_doc()
    del doc["packages"]
    with pytest.raises(LookalikeError, match="Missing key"):
        parse_catalogue(doc)
    with pytest.raises(LookalikeError, match="JSON object"):
        parse_catalogue([])  # type: ignore[arg-type]


def test_load_json_errors() -> None:
    with pytest.raises(LookalikeError) as err:
        load_catalogue_json("{not json")
    assert err.value.code == INVALID_CATALOGUE
    with pytest.raises(LookalikeError, match="Duplicate key 'monthly'"):
        load_catalogue_json(
            '{"currency": "USD", "exponent": 2, "packages": [{"id": "a", "capacity": 1, "qps": 1,'
            ' "monthly": "1.00", "monthly": "2.00", "yearly": "1.00"}]}'
        )


def test_error_names_the_package_index() -> None:
    doc = base_doc()
    doc["packages"][3]["qps"] = 0
    with pytest.raises(LookalikeError, match=r"packages\[3\]: Package '5m-5qps': qps"):
        parse_catalogue(doc)


# --- private quotations -----------------------------------------------------------------------------


def private(account: str, pid: str = "acme-7m") -> Package:
    return parse_package(
        {"id": pid, "capacity": 7_000_000, "qps": 8, "monthly": "2000.00", "yearly": "20000.00",
         "private_for": account},
        "USD",
        2,
    )  # fmt: skip


def test_private_package_is_visible_only_to_its_account() -> None:
    cat = default_catalogue().with_private(private("acme"))
    assert [p.id for p in cat.visible_to("acme")][-1] == "acme-7m"
    assert len(cat.visible_to("acme")) == 16
    assert "acme-7m" not in [p.id for p in cat.visible_to("other")]
    assert len(cat.visible_to("other")) == 15
    assert cat.get_for("acme-7m", "acme").qps == 8
    with pytest.raises(LookalikeError) as err:
        cat.get_for("acme-7m", "other")
    assert err.value.code == INVALID_PACKAGE and err.value.message == "No package 'acme-7m'."
    assert cat.get("acme-7m").name == "7M images / 8 QPS"
    # The original catalogue is untouched (immutable value).
    assert len(default_catalogue().packages) == 15


def test_with_private_refusals() -> None:
    cat = default_catalogue()
    public = Package("x", 10, 1, 100, 1000, "USD")
    with pytest.raises(LookalikeError, match="needs private_for"):
        cat.with_private(public)
    with pytest.raises(LookalikeError, match="already exists"):
        cat.with_private(private("acme", pid="2.5m-5qps"))
    with pytest.raises(LookalikeError, match="JPY"):
        cat.with_private(Package("y", 10, 1, 100, 1000, "JPY", private_for="acme"))


def test_catalogue_without_trial() -> None:
    cat = Catalogue("USD", 2, (Package("x", 10, 1, 100, 1000, "USD"),))
    with pytest.raises(LookalikeError) as err:
        cat.trial_package()
    assert err.value.code == INVALID_PACKAGE


def test_package_constructor_validates() -> None:
    with pytest.raises(LookalikeError) as err:
        Package("x", 0, 1, 100, 1000, "USD")
    assert err.value.code == INVALID_PACKAGE


@given(
    st.lists(
        st.tuples(st.integers(1, 10**9), st.integers(1, 1000), st.integers(0, 10**9), st.integers(0, 10**10)),
        min_size=1,
        max_size=8,
    )
)
def test_any_valid_catalogue_round_trips(rows: list[tuple[int, int, int, int]]) -> None:
    packages = tuple(Package(f"p{i}", c, q, m, y, "EUR") for i, (c, q, m, y) in enumerate(rows))
    cat = Catalogue("EUR", 2, packages, "n")
    assert load_catalogue_json(json.dumps(cat.to_dict())) == cat
