"""The operator's console pages (accounts, top-ups, instances, catalogue and quotes, trial seats, demo clock)
in headless Chromium; a tenant gets none of them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from browser import PHONE, Console, ConsoleUser, screenshot

pytestmark = pytest.mark.slow

OPERATOR_PAGES = [
    "/console/operator",
    "/console/operator/accounts",
    "/console/operator/instances",
    "/console/operator/catalogue",
    "/console/operator/trial-seats",
    "/console/operator/clock",
]


def signed_in_operator(console: Console, viewport: dict[str, int] | None = None) -> Any:
    page = console.page(viewport)
    console.sign_in(page, console.operator())
    return page


def form_fields(page: Any, selector: str) -> dict[str, str]:
    """The fields a form would post, read from the page as drawn (hidden ones included)."""
    fields: dict[str, str] = page.eval_on_selector(
        selector, "f => Object.fromEntries(new FormData(f).entries())"
    )
    return fields


def notice(page: Any) -> str:
    text: str = page.get_by_role("status").inner_text()
    return text


def alert(page: Any) -> str:
    text: str = page.get_by_role("alert").inner_text()
    return text


def test_a_tenant_gets_no_operator_page_and_no_operator_action(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = console.page()
    console.sign_in(page, tenant)
    assert page.get_by_role("link", name="Operator").count() == 0
    for path in [*OPERATOR_PAGES, f"/console/operator/accounts/{tenant.account.id}"]:
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert "for the operator" in alert(page)
    # Crafted posts with the tenant's own valid CSRF token: refused before anything runs.
    page.goto("/console/dashboard")
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    svc = console.services
    seats_before, now_before = svc.billing.trials.seats(), svc.clock.now()
    posts = {
        f"/console/operator/accounts/{tenant.account.id}/top-up": {
            "amount": "1000.00",
            "idempotency_key": "k1",
        },
        "/console/operator/accounts": {"name": "sneaky", "password": ""},
        f"/console/operator/accounts/{tenant.account.id}/password": {"password": "a new password 123"},
        "/console/operator/quotes": {
            "account_id": tenant.account.id,
            "capacity": "1000000",
            "qps": "50",
            "monthly": "0.01",
            "yearly": "0.01",
        },
        "/console/operator/trial-seats": {"total": "999"},
        "/console/operator/clock": {"days": "400"},
        "/console/operator/catalogue/reload": {},
    }
    for path, form in posts.items():
        response = page.request.post(path, form={"csrf_token": csrf, **form})
        assert response.status == 403, path
    operator = console.operator()
    response = page.request.post(
        f"/console/operator/accounts/{operator.account.id}/enable", form={"csrf_token": csrf}
    )
    assert response.status == 403
    assert svc.billing.payments.balance(tenant.account.id) == 0
    assert all(a.name != "sneaky" for a in svc.accounts.list_accounts())
    assert all(
        p.private_for is None for p in svc.billing.catalogues.catalogue_for(tenant.account.id).packages
    )
    assert svc.billing.trials.seats() == seats_before and svc.clock.now() == now_before
    page.goto("/console/dashboard")  # the tenant's password did not change: still signed in
    assert page.get_by_role("heading", name="Dashboard").is_visible()


def test_operator_creates_an_account_that_signs_in_with_the_password_shown_once(console: Console) -> None:
    page = signed_in_operator(console)
    page.get_by_role("link", name="Operator").click()
    page.wait_for_url("**/console/operator")
    assert page.get_by_role("heading", name="Accounts").is_visible()

    # A refused password creates nothing and keeps the typed name.
    page.get_by_label("Account name").fill("acme")
    page.get_by_label("Console password").fill("short")
    page.get_by_role("button", name="Create account").click()
    assert "at least" in alert(page)
    assert page.get_by_label("Account name").input_value() == "acme"
    assert all(a.name != "acme" for a in console.services.accounts.list_accounts())

    page.get_by_label("Console password").fill("")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("heading", name="Account acme created").is_visible()
    password = page.locator("#console-password").inner_text()
    key_id = page.locator("#access-key-id").inner_text()
    secret = page.locator("#access-key-secret").inner_text()
    account_id = page.locator("#account-id").inner_text()

    tenant_page = console.page()
    created = console.services.accounts.get_account(account_id)
    console.sign_in(tenant_page, ConsoleUser(created, password, key_id, secret))
    assert tenant_page.get_by_text("acme").first.is_visible()
    with console.api(ConsoleUser(created, password, key_id, secret)) as api:
        assert api.get("/v1/billing/ledger").status_code == 200

    page.goto("/console/operator/accounts")
    row = page.locator("tr[data-account=acme]")
    assert row.locator("td").nth(1).inner_text() == account_id
    assert row.locator("td").nth(4).inner_text() == "0.00"
    page.get_by_label("Account name").fill("acme")  # names are unique
    page.get_by_role("button", name="Create account").click()
    assert alert(page)
    assert sum(a.name == "acme" for a in console.services.accounts.list_accounts()) == 1
    page.goto("/console/operator/accounts")
    screenshot(page, "operator-accounts")

    phone = signed_in_operator(console, PHONE)
    for path in [*OPERATOR_PAGES, f"/console/operator/accounts/{account_id}"]:
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path


def test_a_top_up_moves_the_balance_by_exactly_its_amount_and_a_double_submit_credits_once(
    console: Console,
) -> None:
    tenant = console.new_tenant("shop-a")
    page = signed_in_operator(console)
    page.goto("/console/operator/accounts")
    page.get_by_role("link", name="shop-a").click()
    assert page.get_by_role("heading", name=re.compile("shop-a")).is_visible()

    for bad, said in (("-5.00", "positive"), ("12.345", "at most 2 decimals"), ("lots", "not an amount")):
        page.get_by_label("Amount (USD)").fill(bad)
        page.get_by_role("button", name="Credit the balance").click()
        assert said in alert(page), bad
        assert page.get_by_label("Amount (USD)").input_value() == bad
    assert console.services.billing.payments.balance(tenant.account.id) == 0

    page.get_by_label("Amount (USD)").fill("123.45")
    page.get_by_label("Payment reference (optional)").fill("wire 7781")
    posted = form_fields(page, "#topup-form")
    assert posted["idempotency_key"]
    page.get_by_role("button", name="Credit the balance").click()
    assert notice(page) == "Credited 123.45 USD. Balance now 123.45 USD."
    # The same form posted again (a double click, a resubmitted page): replayed, not credited twice.
    again = page.request.post(f"/console/operator/accounts/{tenant.account.id}/top-up", form=posted)
    assert again.ok and "already credited" in again.text()

    assert console.services.billing.payments.balance(tenant.account.id) == 12345
    with console.api(tenant) as api:
        ledger = api.get("/v1/billing/ledger").json()
    assert ledger["balance"] == 12345
    assert [(e["kind"], e["amount"], e["reference"]) for e in ledger["entries"]] == [
        ("topup", 12345, "wire 7781")
    ]
    page.reload()
    assert page.locator("#balance").inner_text() == "123.45 USD"
    # The redrawn form has a fresh key: a second, deliberate top-up is credited.
    page.get_by_label("Amount (USD)").fill("0.55")
    page.get_by_role("button", name="Credit the balance").click()
    assert notice(page) == "Credited 0.55 USD. Balance now 124.00 USD."
    assert console.services.billing.payments.balance(tenant.account.id) == 12400


def test_disabling_an_account_ends_its_sessions_and_refuses_its_keys(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    tenant_page = console.page()
    console.sign_in(tenant_page, tenant)
    with console.api(tenant) as api:
        assert api.get("/v1/billing/ledger").status_code == 200

        page = signed_in_operator(console)
        page.goto(f"/console/operator/accounts/{tenant.account.id}")
        page.get_by_role("button", name="Disable account").click()
        assert "disabled" in notice(page)

        tenant_page.goto("/console/dashboard")
        tenant_page.wait_for_url(re.compile(r".*/console/sign-in.*"))
        refused = api.get("/v1/billing/ledger")
        assert refused.status_code == 401 and refused.json()["code"] == "InvalidAccessKeyId.Inactive"
        page.goto("/console/operator/accounts")
        assert page.locator("tr[data-account=shop-a]").get_by_text("disabled").is_visible()

        page.goto(f"/console/operator/accounts/{tenant.account.id}")
        page.get_by_role("button", name="Enable account").click()
        assert "enabled again" in notice(page)
        assert api.get("/v1/billing/ledger").status_code == 200

    # A new password from the operator, generated and shown once, replaces the old one.
    page.get_by_role("button", name="Set password").click()
    new_password = page.locator("#console-password").inner_text()
    fresh = console.page()
    console.sign_in(fresh, ConsoleUser(tenant.account, new_password, tenant.key_id, tenant.secret))


def test_private_quote_reaches_the_tenants_catalogue_and_trial_seats_are_set(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = signed_in_operator(console)
    page.goto("/console/operator/catalogue")
    public = [
        p
        for p in console.services.billing.catalogues.catalogue_for(tenant.account.id).packages
        if not p.private_for
    ]
    assert page.locator("#public-packages tbody tr").count() == len(public)
    page.get_by_label("Account", exact=True).select_option(label="shop-a")
    page.get_by_label("Capacity (pictures)").fill("5000000")
    page.get_by_label("Search QPS").fill("7")
    page.get_by_label("Monthly price (USD)").fill("999.99")
    page.get_by_label("Yearly price (USD)").fill("9000.5")
    page.get_by_label("Package id (optional)").fill("acme-5m")
    page.get_by_role("button", name="Create quote").click()
    assert "acme-5m" in notice(page)
    row = page.locator("#private-packages tbody tr")
    assert row.count() == 1 and "shop-a" in row.inner_text() and "9000.50" in row.inner_text()
    with console.api(tenant) as api:
        packages = api.get("/v1/billing/catalogue").json()["packages"]
    mine = [p for p in packages if p["id"] == "acme-5m"]
    assert mine == [
        {
            "id": "acme-5m",
            "name": mine[0]["name"],
            "capacity": 5_000_000,
            "qps": 7,
            "monthly": "999.99",
            "yearly": "9000.50",
            "trial": False,
            "private_for": tenant.account.id,
        }
    ]
    # The same id again is refused and the typed values stay for correcting.
    page.get_by_label("Account", exact=True).select_option(label="shop-a")
    for label, value in (("Capacity (pictures)", "10"), ("Search QPS", "1"), ("Monthly price (USD)", "1")):
        page.get_by_label(label).fill(value)
    page.get_by_label("Yearly price (USD)").fill("10")
    page.get_by_label("Package id (optional)").fill("acme-5m")
    page.get_by_role("button", name="Create quote").click()
    assert "already taken" in alert(page)
    assert page.get_by_label("Capacity (pictures)").input_value() == "10"
    page.get_by_role("button", name="Reload catalogue").click()
    assert "Catalogue reloaded" in notice(page)
    screenshot(page, "operator-catalogue")

    page.get_by_role("link", name="Trial seats").click()
    page.get_by_label("Total seats").fill("3")
    page.get_by_role("button", name="Set total").click()
    assert notice(page) == "Trial seats: 3 in total, 0 used, 3 left."
    console.services.billing.trials.trial(tenant.account, "try-it", idempotency_key="t1")
    for bad, said in (("0", "1 trial seats are already used"), ("-1", "not a whole number")):
        page.get_by_label("Total seats").fill(bad)
        page.get_by_role("button", name="Set total").click()
        assert said in alert(page)
    page.get_by_label("Total seats").fill("1")
    page.get_by_role("button", name="Set total").click()
    assert console.services.billing.trials.seats() == {"total": 1, "used": 1, "left": 0}
    assert page.locator("#seats-left").inner_text() == "0"


def test_advancing_the_demo_clock_expires_an_instance_past_its_paid_until(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    instance = console.services.billing.orders.grant(
        tenant.account.id, "shop-a-main", capacity=20000, qps=2, months=1
    )
    assert instance.expires_at is not None
    page = signed_in_operator(console)
    page.goto("/console/operator/instances")
    row = page.locator("tr[data-instance=shop-a-main]")
    assert row.locator(".badge").inner_text() == "active"
    assert "shop-a" in row.inner_text() and "0 / 20,000" in row.inner_text()
    assert (
        row.get_by_role("link", name="shop-a-main").get_attribute("href") == "/console/instances/shop-a-main"
    )
    screenshot(page, "operator-instances")

    page.get_by_role("link", name="Demo clock").click()
    for bad in ("-3", "2.5"):
        page.get_by_label("Days").fill(bad)
        page.get_by_role("button", name="Advance the clock").click()
        assert "not a whole number" in alert(page)
    page.get_by_label("Days").fill("")
    page.get_by_role("button", name="Advance the clock").click()
    assert "Enter a number of days or hours" in alert(page)

    before = console.clock.now()
    days = (instance.expires_at - before).days + 1
    page.get_by_label("Days").fill(str(days))
    page.get_by_label("Hours").fill("2")
    page.get_by_role("button", name="Advance the clock").click()
    report = notice(page)
    assert "expired: shop-a-main" in report, report
    assert console.clock.now() - before == timedelta(days=days, hours=2)
    assert page.locator("#server-time").inner_text() == console.clock.now().strftime("%Y-%m-%d %H:%M UTC")
    screenshot(page, "operator-clock")
    page.get_by_role("link", name="Instances").click()
    assert page.locator("tr[data-instance=shop-a-main] .badge").inner_text() == "expired"
