"""Self-service sign-up, on a server whose operator allows it (setting `console_signup`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import PHONE, Console
from conftest import make_settings
from lookalike.config import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path, database_url: str | None) -> Settings:
    return make_settings(tmp_path / "data", database_url, model_cache_dir=model_cache, console_signup=True)


def test_a_visitor_signs_up_gets_a_key_once_and_uses_it(console: Console) -> None:
    page = console.page(PHONE)
    page.goto("/console/sign-in")
    page.get_by_role("link", name="Create one").click()
    page.get_by_label("Account name").fill("new-shop")
    page.get_by_label("Password (at least 10 characters)").fill("a fine password")
    page.get_by_label("Password again").fill("a different one")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("alert").inner_text() == "The two passwords differ."
    assert all(a.name != "new-shop" for a in console.services.accounts.list_accounts())

    page.get_by_label("Password (at least 10 characters)").fill("short")
    page.get_by_label("Password again").fill("short")
    # The browser's own minlength check stops the form; the server says the same to a client that skips it.
    token = page.locator("input[name=csrf_token]").get_attribute("value") or ""
    response = page.request.post(
        "/console/sign-up",
        form={"name": "new-shop", "password": "short", "confirm": "short", "csrf_token": token},
    )
    assert response.status == 400 and "at least 10 characters" in response.text()

    page.get_by_label("Password (at least 10 characters)").fill("a fine password")
    page.get_by_label("Password again").fill("a fine password")
    page.get_by_role("button", name="Create account").click()
    assert page.get_by_role("heading", name="Welcome, new-shop").is_visible()
    key_id = page.locator("#access-key-id").inner_text()
    secret = page.locator("#access-key-secret").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url("**/console/dashboard")

    with console.api_with(key_id, secret) as api:
        assert api.get("/v1/instances").json() == {"instances": []}
    page.goto("/console/keys")
    assert key_id in page.content() and secret not in page.content()

    # The name is taken now, for everybody.
    other = console.page()
    other.goto("/console/sign-up")
    other.get_by_label("Account name").fill("new-shop")
    other.get_by_label("Password (at least 10 characters)").fill("another password")
    other.get_by_label("Password again").fill("another password")
    other.get_by_role("button", name="Create account").click()
    assert "already exists" in other.get_by_role("alert").inner_text()
