"""Buying through the console in headless Chromium: catalogue with private quotes, the trial offer and its
refusals, quote before paying, and refusals (bad name, too little balance, taken name) that charge nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from browser import PHONE, Console, screenshot

pytestmark = pytest.mark.slow


def choose(page: Any, package_id: str, name: str, unit: str = "month", count: str = "1") -> None:
    page.goto("/console/buy")
    page.locator(f'tr[data-package="{package_id}"] input[type="radio"]').check()
    page.get_by_label("Instance name", exact=True).fill(name)
    page.get_by_label("Billed per").select_option(unit)
    page.get_by_label("Number of periods").fill(count)
    page.get_by_role("button", name="See the price").click()
    page.wait_for_url("**/console/buy/quote?**")


def test_buy_page_quotes_before_paying_and_refusals_charge_nothing(console: Console) -> None:
    tenant = console.new_tenant("shop-b")
    billing = console.services.billing
    billing.catalogues.create_private_package(
        tenant.account.id,
        capacity=60_000_000,
        qps=20,
        monthly=2_500_000,
        yearly=25_000_000,
        package_id="60m-20qps-b",
    )
    stranger = console.new_tenant("stranger")
    billing.catalogues.create_private_package(
        stranger.account.id, capacity=70_000_000, qps=20, monthly=1, yearly=1, package_id="not-for-b"
    )
    page = console.page()
    console.sign_in(page, tenant)
    page.goto("/console/buy")
    private = page.locator('tr[data-package="60m-20qps-b"]')
    assert "Private quote for you" in private.inner_text() and "25000.00" in private.inner_text()
    assert page.locator('tr[data-package="not-for-b"]').count() == 0
    assert page.locator('tr[data-package="100k-1qps"]').count() == 1
    assert page.get_by_role("button", name="Review the free trial").is_visible()
    screenshot(page, "buy")

    # A bad name is caught on the way to the quote.
    page.goto("/console/buy/quote?package_id=2.5m-5qps&name=bad%20name!&unit=month&count=1")
    assert "Instance names use ASCII letters" in page.get_by_role("alert").inner_text()

    # Too little balance: the quote says so and offers no Confirm; posting anyway is refused whole.
    choose(page, "2.5m-5qps", "store", "year", "2")
    assert page.locator("td.total").get_attribute("data-total") == "1600000"
    assert "short of this order" in page.get_by_role("alert").inner_text()
    assert page.get_by_role("button", name="Confirm and pay 16000.00 USD").count() == 0
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value") or ""
    order = {
        "package_id": "2.5m-5qps",
        "name": "store",
        "service_type": "product",
        "unit": "year",
        "count": "2",
        "csrf_token": token,
        "idempotency_key": "console-k1",
    }
    poor = page.request.post("/console/buy", form=order)
    assert poor.status == 402 and "but the balance is 0.00" in poor.text()
    assert (
        billing.receipts.orders(tenant.account.id) == [] and billing.payments.balance(tenant.account.id) == 0
    )

    # With money, the console's quote equals the native quote and the charge equals both.
    console.top_up(tenant, 2_000_000, key="pay-b")
    choose(page, "2.5m-5qps", "store", "year", "2")
    shown = int(page.locator("td.total").get_attribute("data-total") or "")
    with console.api(tenant) as api:
        native = api.post(
            "/v1/billing/quote",
            json={"kind": "buy", "instance": "store", "package_id": "2.5m-5qps", "unit": "year", "count": 2},
        ).json()
    assert shown == native["total"] == 1_600_000
    page.get_by_role("button", name="Confirm and pay 16000.00 USD").click()
    page.wait_for_url("**/console/instances/store")
    assert "16000.00 USD charged" in page.get_by_role("status").inner_text()
    assert billing.payments.balance(tenant.account.id) == 2_000_000 - shown

    # The name is taken now: a second purchase under it is refused with the reason, nothing charged.
    choose(page, "100k-1qps", "store")
    page.get_by_role("button", name="Confirm and pay 300.00 USD").click()
    assert "already" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Instance name", exact=True).input_value() == "store"
    assert billing.payments.balance(tenant.account.id) == 2_000_000 - shown
    assert len(billing.receipts.orders(tenant.account.id)) == 2  # the top-up and the one purchase

    # The buy page fits a phone.
    phone = console.page(PHONE)
    console.sign_in(phone, tenant)
    phone.goto("/console/buy")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_trial_offer_only_while_the_account_can_take_it_and_seats_remain(console: Console) -> None:
    first = console.new_tenant("first")
    page = console.page()
    console.sign_in(page, first)
    page.goto("/console/buy")
    page.get_by_label("Trial instance name").fill("try-1")
    page.get_by_role("button", name="Review the free trial").click()
    confirm = page.get_by_role("button", name="Confirm")
    confirm.click()
    page.wait_for_url("**/console/instances/try-1")
    page.goto("/console/buy")
    refusal = page.locator("[data-trial-refusal]").inner_text()
    assert refusal == "This account has already used its free trial."
    assert page.get_by_role("button", name="Review the free trial").count() == 0
    refused = page.goto("/console/buy/trial?name=try-2&service_type=product")
    assert refused is not None and refused.status == 409
    assert "already used its free trial" in page.get_by_role("alert").inner_text()

    console.services.billing.trials.set_seats(1)  # the one seat is the first tenant's
    second = console.new_tenant("second")
    other = console.page()
    console.sign_in(other, second)
    other.goto("/console/buy")
    assert "All free-trial seats are taken" in other.locator("[data-trial-refusal]").inner_text()
    assert console.services.billing.trials.seats()["left"] == 0


def test_confirming_after_the_price_rose_requotes_and_charges_only_the_new_confirmed_price(
    console: Console,
) -> None:
    console.clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    tenant = console.new_tenant("shop-c")
    billing = console.services.billing
    console.top_up(tenant, 500_000, key="pay-c")
    billing.orders.buy(tenant.account, "shop", "2.5m-5qps", idempotency_key="buy-c")
    console.clock.set(datetime(2027, 1, 16, tzinfo=UTC))
    page = console.page()
    console.sign_in(page, tenant)
    page.goto("/console/instances/shop/change?package_id=2.5m-10qps")
    assert page.locator("td.total").get_attribute("data-total") == "36129"  # 700.00 × 16/31

    # The order is priced again at confirm time; a day earlier in the cycle the upgrade costs more.
    console.clock.set(datetime(2027, 1, 15, tzinfo=UTC))
    balance = billing.payments.balance(tenant.account.id)
    orders = billing.receipts.orders(tenant.account.id)
    page.get_by_role("button", name="Confirm and pay 361.29 USD").click()
    page.wait_for_url("**/console/instances/shop/change?package_id=2.5m-10qps")
    notice = page.get_by_role("status").inner_text()
    assert "price changed" in notice and "383.87 USD" in notice and "361.29 USD" in notice
    assert page.locator("td.total").get_attribute("data-total") == "38387"  # 700.00 × 17/31
    assert (
        billing.payments.balance(tenant.account.id) == balance
        and billing.receipts.orders(tenant.account.id) == orders
    )

    # Confirming the fresh quote charges exactly its total.
    page.get_by_role("button", name="Confirm and pay 383.87 USD").click()
    page.wait_for_url("**/console/instances/shop")
    assert "383.87 USD charged" in page.get_by_role("status").inner_text()
    assert billing.payments.balance(tenant.account.id) == balance - 38387

    # Buying and renewing are guarded the same way: a confirmed total below the price comes back (303) to
    # the same quote page, with nothing charged.
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value") or ""
    buy = {
        "package_id": "100k-1qps",
        "name": "second",
        "service_type": "product",
        "unit": "month",
        "count": "1",
        "csrf_token": token,
        "idempotency_key": "console-c2",
        "max_total": "29999",
    }
    renew = {
        "package_id": "2.5m-5qps",
        "unit": "month",
        "count": "1",
        "csrf_token": token,
        "idempotency_key": "console-c3",
        "max_total": "79999",
    }
    for action, form, quote_page in (
        (
            "/console/buy",
            buy,
            "/console/buy/quote?package_id=100k-1qps&name=second&service_type=product&unit=month&count=1",
        ),
        (
            "/console/instances/shop/renew",
            renew,
            "/console/instances/shop/renew?package_id=2.5m-5qps&unit=month&count=1",
        ),
    ):
        answer = page.request.post(action, form=form, max_redirects=0)
        assert (answer.status, answer.headers["location"]) == (303, quote_page)
    assert billing.payments.balance(tenant.account.id) == balance - 38387
