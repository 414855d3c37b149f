"""Console sign-in, sessions and CSRF, in headless Chromium."""

from __future__ import annotations

import re

import httpx
import pytest

from browser import PHONE, Console, screenshot

pytestmark = pytest.mark.slow


def test_sign_in_shows_dashboard_and_sign_out_ends_the_session(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = console.page()
    page.goto("/console/dashboard")
    page.wait_for_url(re.compile(r".*/console/sign-in\?next=%2Fconsole%2Fdashboard$"))
    screenshot(page, "sign-in")
    console.sign_in(page, tenant)
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.get_by_text("No instances yet").is_visible()

    headers = page.request.get("/console/dashboard").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    cookie = next(c for c in page.context.cookies() if c["name"] == "lookalike_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/console"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/sign-in")
    page.goto("/console/dashboard")
    page.wait_for_url(re.compile(r".*/console/sign-in.*"))
    # The old cookie value is dead on the server too, not only forgotten by the browser.
    stale = httpx.get(
        f"{console.base_url}/console/dashboard",
        cookies={"lookalike_session": "x" * 43},
        follow_redirects=False,
    )
    assert stale.status_code == 303


def test_wrong_password_and_unknown_account_get_the_same_clear_error(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = console.page()
    for name, password in ((tenant.name, "wrong password!"), ("nobody-here", "whatever123")):
        page.goto("/console/sign-in")
        page.get_by_label("Account name").fill(name)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").inner_text() == "Account name or password is wrong."
    assert not any(c["name"] == "lookalike_session" for c in page.context.cookies())


def test_a_form_without_the_csrf_token_changes_nothing(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = console.page()
    console.sign_in(page, tenant)
    # A cross-site form would post without our token: the server refuses before doing anything.
    response = page.request.post("/console/sign-out", form={"csrf_token": "forged"})
    assert response.status == 403
    assert "Form expired" in response.text()
    page.goto("/console/dashboard")
    assert page.get_by_role("heading", name="Dashboard").is_visible()  # still signed in


def test_disabled_account_cannot_sign_in_and_loses_its_sessions(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = console.page()
    console.sign_in(page, tenant)
    console.services.accounts.set_account_disabled(tenant.account.id, True)
    page.goto("/console/dashboard")
    page.wait_for_url(re.compile(r".*/console/sign-in.*"))
    page.get_by_label("Account name").fill(tenant.name)
    page.get_by_label("Password").fill(tenant.password)
    page.get_by_role("button", name="Sign in").click()
    assert "disabled" in page.get_by_role("alert").inner_text()


def test_sign_up_is_closed_unless_the_operator_allows_it(console: Console) -> None:
    page = console.page(PHONE)
    page.goto("/console/sign-up")
    assert "closed" in page.get_by_role("alert").inner_text()
    page.goto("/console/sign-in")  # a real form token, so the refusal below is the closed sign-up's
    token = page.locator("input[name=csrf_token]").get_attribute("value") or ""
    response = page.request.post(
        "/console/sign-up",
        form={"name": "intruder", "password": "x" * 12, "confirm": "x" * 12, "csrf_token": token},
    )
    assert response.status == 403 and "closed" in response.text()
    assert all(a.name != "intruder" for a in console.services.accounts.list_accounts())


def test_the_sign_in_form_refuses_a_post_from_another_site(console: Console) -> None:
    """Login CSRF: a foreign page posting the sign-in form cannot repeat the form cookie's token."""
    tenant = console.new_tenant("shop-a")
    page = console.page()
    page.goto("/console/sign-in")
    good = page.locator("input[name=csrf_token]").get_attribute("value")
    cookies = page.context.cookies()
    assert good and any(c["name"] == "lookalike_form" and c["sameSite"] == "Strict" for c in cookies)
    for token in ("", "forged"):
        form = {"name": tenant.name, "password": tenant.password, "next": "/console/dashboard"}
        form["csrf_token"] = token
        response = page.request.post("/console/sign-in", form=form, max_redirects=0)
        assert response.status == 403 and "form expired" in response.text()
    assert not any(c["name"] == "lookalike_session" for c in page.context.cookies())
    # The page it answered with carries a fresh token: signing in from it works.
    console.sign_in(page, tenant)
