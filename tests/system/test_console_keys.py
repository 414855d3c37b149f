"""The access keys page in headless Chromium: create (secret shown once), disable, enable, delete; the API
follows at once; another tenant's keys cannot be touched."""

from __future__ import annotations

import httpx
import pytest

from browser import PHONE, Console, ConsoleUser, screenshot

pytestmark = pytest.mark.slow


def api_status(console: Console, key_id: str, secret: str) -> int:
    with httpx.Client(base_url=console.base_url, auth=(key_id, secret), timeout=60) as client:
        return client.get("/v1/instances").status_code


def test_create_use_disable_enable_and_delete_a_key(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    page = console.page()
    console.sign_in(page, tenant)
    page.get_by_role("link", name="Access keys").click()
    page.wait_for_url("**/console/keys")
    assert page.locator("tr[data-key]").count() == 1
    assert page.locator(f"tr[data-key='{tenant.key_id}'] .badge").inner_text() == "enabled"

    page.get_by_role("button", name="Create AccessKey").click()
    page.get_by_role("heading", name="AccessKey created").wait_for()
    key_id = page.locator("#access-key-id").inner_text()
    secret = page.locator("#access-key-secret").inner_text()
    assert key_id.startswith("LTAI") and len(secret) >= 20
    assert api_status(console, key_id, secret) == 200

    page.get_by_role("link", name="Continue").click()
    page.wait_for_url("**/console/keys")
    assert page.locator("tr[data-key]").count() == 2
    assert secret not in page.content()  # shown once, never again
    assert tenant.secret not in page.content()

    page.get_by_role("button", name=f"Disable AccessKey {key_id}").click()
    assert "is disabled" in page.get_by_role("status").first.inner_text()
    assert page.locator(f"tr[data-key='{key_id}'] .badge").inner_text() == "disabled"
    assert api_status(console, key_id, secret) == 401
    screenshot(page, "keys")

    page.get_by_role("button", name=f"Enable AccessKey {key_id}").click()
    assert page.locator(f"tr[data-key='{key_id}'] .badge").inner_text() == "enabled"
    assert api_status(console, key_id, secret) == 200

    page.get_by_role("button", name=f"Delete AccessKey {key_id}…").click()
    page.get_by_role("heading", name="Delete AccessKey?").wait_for()
    assert page.locator(".warning").count() == 0  # another key stays enabled
    page.get_by_role("button", name=f"Delete AccessKey {key_id}").click()
    page.wait_for_url("**/console/keys")
    assert "is deleted" in page.get_by_role("status").first.inner_text()
    assert page.locator(f"tr[data-key='{key_id}']").count() == 0
    assert api_status(console, key_id, secret) == 401
    assert api_status(console, tenant.key_id, tenant.secret) == 200

    # The last enabled key may go (a leaked key must be stoppable), with a warning first.
    page.get_by_role("button", name=f"Delete AccessKey {tenant.key_id}…").click()
    assert "only enabled key" in page.locator(".warning").inner_text()
    page.get_by_role("link", name="Cancel").click()
    page.get_by_role("button", name=f"Disable AccessKey {tenant.key_id}").click()
    assert "No enabled key is left" in page.get_by_role("status").first.inner_text()
    assert api_status(console, tenant.key_id, tenant.secret) == 401

    phone = console.page(PHONE)
    console.sign_in(phone, tenant)
    phone.goto("/console/keys")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_another_tenants_key_answers_like_an_unknown_one(console: Console) -> None:
    tenant, other = console.new_tenant("shop-a"), console.new_tenant("shop-b")
    page = console.page()
    console.sign_in(page, tenant)
    page.goto("/console/keys")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert csrf

    def crafted(path: str) -> tuple[int, str]:
        response = page.request.post(path, form={"csrf_token": csrf}, max_redirects=0)
        return response.status, response.text()

    for action in ("disable", "delete"):
        foreign = crafted(f"/console/keys/{other.key_id}/{action}")
        unknown = crafted(f"/console/keys/LTAI00000000000000000000/{action}")
        assert foreign[0] == unknown[0] == 404
        assert "There is no such AccessKey in this account." in foreign[1]
        assert foreign[1].replace(other.key_id, "") == unknown[1].replace("LTAI00000000000000000000", "")
    assert page.request.get(f"/console/keys/{other.key_id}/delete").status == 404
    assert api_status(console, other.key_id, other.secret) == 200
    assert keys_of(console, other) == [(other.key_id, False)]
    # A forged form (no CSRF token) changes nothing either, even for the tenant's own key.
    assert page.request.post(f"/console/keys/{tenant.key_id}/disable", form={"csrf_token": "x"}).status == 403
    assert keys_of(console, tenant) == [(tenant.key_id, False)]


def keys_of(console: Console, user: ConsoleUser) -> list[tuple[str, bool]]:
    return [(k.id, k.disabled) for k in console.services.accounts.list_access_keys(user.account.id)]
