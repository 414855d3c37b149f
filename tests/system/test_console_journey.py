"""The issue's story in one run, every step through the console in headless Chromium: a tenant signs in,
takes the trial, adds pictures, searches with an edited photo; the operator tops the account up; the
tenant upgrades at the price the API quotes; the operator's demo clock runs the month out; the tenant sees
the instance expired and renews it; another tenant cannot open it by URL."""

from __future__ import annotations

import re
from typing import Any

import pytest

from browser import Console
from photos import EDITS, encode, load_photo
from test_console_pictures import add_through_form

pytestmark = pytest.mark.slow

PHOTOS = ("chelsea", "coffee", "rocket")


def notice(page: Any) -> str:
    return str(page.get_by_role("status").inner_text())


def test_trial_pictures_search_top_up_upgrade_expiry_and_renewal(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = console.page()
    console.sign_in(page, tenant)

    # The free trial, quoted at zero before confirming.
    page.get_by_role("navigation").get_by_role("link", name="Buy").click()
    page.get_by_label("Trial instance name").fill("shop")
    page.get_by_role("button", name="Review the free trial").click()
    assert page.locator("td.total").get_attribute("data-total") == "0"
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/console/instances/shop")
    page.get_by_role("navigation").get_by_role("link", name="Dashboard").click()
    assert page.locator("article[data-instance='shop'] .badge").inner_text() == "active"

    # Pictures through the form; the trial package adds 1 picture per second, so the test moves its clock.
    for photo in PHOTOS:
        add_through_form(page, encode(load_photo(photo)), photo, f"{photo}.jpg")
        assert notice(page) == f"Added picture {photo}.jpg of product {photo}."
        console.clock.advance(1.5)

    # Search with an edited copy: the original comes first.
    page.goto("/console/instances/shop/search")
    edited = EDITS["crop70"](load_photo("coffee"))
    query = {"name": "q.jpg", "mimeType": "image/jpeg", "buffer": encode(edited)}
    page.set_input_files("#picture", files=[query])
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#hits figure").first.wait_for()
    assert page.locator("#hits figure").first.get_attribute("data-product") == "coffee"

    # The operator records a payment of 2000.00 for the tenant, in its own browser.
    operator = console.operator()
    desk = console.page()
    console.sign_in(desk, operator)
    desk.goto("/console/operator/accounts")
    desk.get_by_role("link", name="shop-a").click()
    desk.get_by_label("Amount (USD)").fill("2000.00")
    desk.get_by_role("button", name="Credit the balance").click()
    assert "2000.00" in notice(desk)
    page.goto("/console/billing")
    assert "2000.00" in page.locator("main").inner_text()

    # Ten days into the cycle, upgrade: the console's quote is the API's quote, and that is what is charged.
    console.clock.advance(10 * 86400)
    page.goto("/console/instances/shop")
    page.get_by_label("New package").select_option("2.5m-5qps")
    page.get_by_role("button", name="See the change price").click()
    shown = int(page.locator("td.total").get_attribute("data-total") or "")
    with console.api(tenant) as api:
        quoted = api.post(
            "/v1/billing/quote", json={"kind": "change", "instance": "shop", "package_id": "2.5m-5qps"}
        ).json()
    assert shown == quoted["total"] > 0
    page.get_by_role("button", name=re.compile(r"^Confirm and pay")).click()
    page.wait_for_url("**/console/instances/shop")
    assert console.services.billing.payments.balance(tenant.account.id) == 200_000 - shown

    # The operator's demo clock runs past the end of the cycle: the instance expires (the sweep runs).
    desk.goto("/console/operator/clock")
    desk.get_by_label("Days").fill("25")
    desk.get_by_role("button", name="Advance the clock").click()
    page.goto("/console/dashboard")
    card = page.locator("article[data-instance='shop']")
    assert card.locator(".badge").inner_text() == "expired"
    assert re.search(r"kept \d more days? and released", card.inner_text())

    # Renew: quoted, confirmed, active again with its pictures.
    page.goto("/console/instances/shop")
    page.get_by_label("Renewal package").select_option("2.5m-5qps")
    page.get_by_role("button", name="See the renewal price").click()
    renewal = int(page.locator("td.total").get_attribute("data-total") or "")
    page.get_by_role("button", name=re.compile(r"^Confirm and pay")).click()
    page.wait_for_url("**/console/instances/shop")
    assert console.services.billing.payments.balance(tenant.account.id) == 200_000 - shown - renewal
    page.goto("/console/dashboard")
    assert card.locator(".badge").inner_text() == "active"
    assert "3 of 2,500,000" in card.inner_text()

    # Another tenant, signed in, gets the same answer for this instance as for one that does not exist.
    stranger = console.new_tenant("shop-b")
    other = console.page()
    console.sign_in(other, stranger)
    for page_of_it in ("", "/pictures", "/search"):
        path = f"/console/instances/shop{page_of_it}"
        theirs, unknown = other.goto(path), other.goto(path.replace("/shop", "/no-such-shop"))
        assert theirs is not None and unknown is not None
        assert theirs.status == unknown.status == 404
