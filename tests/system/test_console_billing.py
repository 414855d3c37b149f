"""Console instance overview and billing in headless Chromium: trial, upgrade with proration equal to the
native quote, a double submit charging once, a refused downgrade, expiry and renewal, receipts."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import pypdf
import pytest

from browser import PHONE, Console, screenshot
from photos import encode, load_photo

pytestmark = pytest.mark.slow


def hidden_fields(page: Any, form: str) -> dict[str, str]:
    """The name/value pairs a form would post (to post them again, as a double submit does)."""
    values: dict[str, str] = page.eval_on_selector(
        form, "f => Object.fromEntries(new FormData(f).entries())"
    )
    return values


def balance(console: Console, account_id: str) -> int:
    return console.services.billing.payments.balance(account_id)


def test_trial_upgrade_refused_downgrade_expiry_renewal_and_receipts(console: Console) -> None:
    console.clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    tenant = console.new_tenant("shop-a")
    billing = console.services.billing
    billing.catalogues.create_private_package(
        tenant.account.id, capacity=1, qps=1, monthly=1000, yearly=10000, package_id="tiny-for-a"
    )
    page = console.page()
    console.sign_in(page, tenant)

    # The free trial through the console; the instance shows up active on its page and the dashboard.
    page.goto("/console/buy")
    page.get_by_label("Trial instance name").fill("shop")
    page.get_by_role("button", name="Review the free trial").click()
    assert page.locator("td.total").get_attribute("data-total") == "0"
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/console/instances/shop")
    assert "created" in page.get_by_role("status").inner_text()
    assert page.locator("h1 .badge").inner_text() == "active"
    area = page.get_by_role("navigation", name="Instance shop")
    for section in ("Search", "Pictures"):
        link = area.get_by_role("link", name=section).get_attribute("href")
        assert link == f"/console/instances/shop/{section.lower()}"
    page.goto("/console/dashboard")
    assert page.locator('[data-instance="shop"] .badge').inner_text() == "active"

    # Half a month later, upgrade: the console's quote is the native API's quote for the same change.
    console.top_up(tenant, 500_000, key="pay-1")
    console.clock.set(datetime(2027, 1, 16, tzinfo=UTC))
    page.goto("/console/instances/shop")
    page.get_by_label("New package").select_option("2.5m-5qps")
    page.get_by_role("button", name="See the change price").click()
    page.wait_for_url("**/console/instances/shop/change?package_id=2.5m-5qps")
    shown = int(page.locator("td.total").get_attribute("data-total") or "")
    with console.api(tenant) as api:
        native = api.post(
            "/v1/billing/quote", json={"kind": "change", "instance": "shop", "package_id": "2.5m-5qps"}
        ).json()
    assert shown == native["total"] == 25806  # (800 - 300) × 16/31, rounded once
    assert "16/31 of the cycle" in page.locator("table.quote-lines").inner_text()
    screenshot(page, "quote")
    confirm = hidden_fields(page, "form.confirm")
    page.get_by_role("button", name=re.compile(r"Confirm and pay 258\.06 USD")).click()
    page.wait_for_url("**/console/instances/shop")
    assert "258.06 USD charged" in page.get_by_role("status").inner_text()
    assert balance(console, tenant.account.id) == 500_000 - shown
    assert page.locator("[data-package]").inner_text().startswith("2.5M images / 5 QPS")

    # The same confirm posted again (a double submit) replays the order: charged once.
    again = page.request.post("/console/instances/shop/change", form=confirm)
    assert again.ok and "already placed" in again.text()
    assert balance(console, tenant.account.id) == 500_000 - shown
    charges = [en for en in billing.payments.ledger(tenant.account.id)["entries"] if en["kind"] == "charge"]
    assert [en["amount"] for en in charges] == [-shown]

    # Two pictures stored: a downgrade to the one-picture private package is refused before confirming.
    for number, photo in enumerate(("astronaut", "coffee")):
        console.services.images.add_image(
            tenant.account, "shop", product_id=f"p{number}", pic_name=photo,
            picture=encode(load_photo(photo)),
        )
        console.clock.advance(1)
    page.goto("/console/instances/shop")
    assert page.locator("[data-usage]").get_attribute("data-usage") == "2"
    screenshot(page, "instance")
    page.get_by_label("New package").select_option("tiny-for-a")
    page.get_by_role("button", name="See the change price").click()
    refusal = page.locator("[data-refusal]")
    assert refusal.get_attribute("data-refusal") == "CapacityBelowUsage"
    assert "2 are stored" in refusal.inner_text()
    assert page.get_by_role("button", name=re.compile("Confirm")).count() == 0
    forced = page.request.post(
        "/console/instances/shop/change",
        form={**confirm, "package_id": "tiny-for-a", "idempotency_key": "console-forced"},
    )
    assert forced.status == 409 and "2 are stored" in forced.text()
    assert balance(console, tenant.account.id) == 500_000 - shown

    # Receipts of the upgrade: PDF (read back with pypdf) and CSV, with the same total.
    order_id = billing.receipts.orders(tenant.account.id)[0]["id"]
    assert billing.receipts.orders(tenant.account.id)[0]["kind"] == "change"
    page.goto("/console/billing")
    assert page.locator("[data-balance]").inner_text() == f"{(500_000 - shown) / 100:.2f} USD"
    with page.expect_download() as download:
        page.get_by_role("link", name=f"PDF receipt of {order_id}").click()
    pdf = pypdf.PdfReader(download.value.path())
    text = "\n".join(p.extract_text() for p in pdf.pages)
    assert f"Order: {order_id}" in text and "Total: 258.06 USD" in text and "Proration: 16/31" in text
    csv_response = page.request.get(f"/console/billing/orders/{order_id}.csv")
    assert csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.text())))
    assert rows[-1]["record"] == "total" and rows[-1]["amount"] == "258.06" and rows[-1]["currency"] == "USD"
    assert rows[0]["instance"] == "shop" and rows[0]["account"] == "shop-a"
    screenshot(page, "billing")

    # The cycle ends unrenewed: expired, with the days left before release, then renewed via the console.
    console.clock.set(datetime(2027, 2, 3, tzinfo=UTC))
    console.services.lifecycle.sweep()
    page.goto("/console/instances/shop")
    assert page.locator("h1 .badge").inner_text() == "expired"
    assert page.locator("[data-days-left]").get_attribute("data-days-left") == "5"
    assert "5 days left before release" in page.get_by_role("alert").inner_text()
    screenshot(page, "instance-expired")
    page.goto("/console/dashboard")
    assert page.locator('[data-instance="shop"] .badge').inner_text() == "expired"
    assert "5 more days" in page.locator('[data-instance="shop"] .release-note').inner_text()

    page.goto("/console/instances/shop")
    before = balance(console, tenant.account.id)
    page.get_by_label("Renewal package").select_option("2.5m-5qps")
    page.get_by_role("button", name="See the renewal price").click()
    assert page.locator("td.total").get_attribute("data-total") == "80000"
    page.get_by_role("button", name="Confirm and pay 800.00 USD").click()
    page.wait_for_url("**/console/instances/shop")
    assert "Renewed until 2027-03-03" in page.get_by_role("status").inner_text()
    assert page.locator("h1 .badge").inner_text() == "active"
    assert balance(console, tenant.account.id) == before - 80_000

    # Auto-renew on (per year) and off again.
    page.get_by_label("Auto-renew per").select_option("year")
    page.get_by_role("button", name="Turn auto-renew on").click()
    assert "Auto-renew is on: 1 year" in page.get_by_role("status").inner_text()
    assert page.locator("[data-auto-renew]").get_attribute("data-auto-renew") == "on"
    shop = console.services.accounts.instance_for(tenant.account, "shop")
    assert billing.subscriptions.instance_status(shop)["auto_renew"] is True
    page.get_by_role("button", name="Turn auto-renew off").click()
    assert page.locator("[data-auto-renew]").get_attribute("data-auto-renew") == "off"
    assert billing.subscriptions.instance_status(shop)["auto_renew"] is False

    # The event feed, newest first, in words; and the page fits a phone.
    phone = console.page(PHONE)
    console.sign_in(phone, tenant)
    phone.goto("/console/billing")
    kinds = phone.locator("ol.events li").evaluate_all("items => items.map(i => i.dataset.kind)")
    assert kinds.index("renewed") < kinds.index("expired") < kinds.index("package_changed")
    assert "kept until 2027-02-08 00:00 UTC" in phone.locator('li[data-kind="expired"]').inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "billing-phone")
    for path in ("/console/instances/shop", "/console/instances/shop/change?package_id=2.5m-10qps"):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path


def test_another_tenant_cannot_open_an_instance_or_its_receipts(console: Console) -> None:
    owner = console.new_tenant("owner")
    billing = console.services.billing
    console.top_up(owner, 100_000, key="pay-owner")
    bought = billing.orders.buy(owner.account, "store", "2.5m-5qps", idempotency_key="buy-store")
    order_id = bought["order_id"]

    stranger = console.new_tenant("stranger")
    page = console.page()
    console.sign_in(page, stranger)
    for path in ("/console/instances/store", "/console/instances/no-such-instance"):
        response = page.goto(path)
        assert response is not None and response.status == 404
        assert "The specified instance name is invalid." in page.get_by_role("alert").inner_text()
    for suffix in ("pdf", "csv"):
        theirs = page.request.get(f"/console/billing/orders/{order_id}.{suffix}")
        unknown = page.request.get(f"/console/billing/orders/ord-0000000000000000.{suffix}")
        assert theirs.status == unknown.status == 404
        # Word for word the answer for an order that does not exist: nothing tells the two apart.
        assert theirs.text().replace(order_id, "?") == unknown.text().replace("ord-0000000000000000", "?")
    page.goto("/console/billing")
    assert page.get_by_text("No orders yet.").is_visible()
    # Changing the owner's package by form from the stranger's session is refused the same way.
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value") or ""
    refused = page.request.post(
        "/console/instances/store/change",
        form={"csrf_token": token, "package_id": "2.5m-10qps", "idempotency_key": "k-1"},
    )
    assert refused.status == 404
    assert billing.payments.balance(owner.account.id) == 20_000

    operator = console.operator()
    admin_page = console.page()
    console.sign_in(admin_page, operator)
    as_operator = admin_page.request.get(f"/console/billing/orders/{order_id}.csv")
    assert as_operator.ok and order_id in as_operator.text()
