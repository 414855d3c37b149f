"""Web console tests in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright for Python.

Never a downloaded browser: Playwright only drives the executable the system package installed
(scripts/test-servers installs `chromium`). Each test gets fresh Services on a ManualClock served by uvicorn
on loopback (alibaba_live.live_server), and a new browser context (cookies start empty).

    def test_x(console: Console) -> None:
        tenant = console.new_tenant("shop-a")
        page = console.page()
        console.sign_in(page, tenant)
        page.goto("/console/dashboard")
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from alibaba_live import live_server
from lookalike.clock import ManualClock
from lookalike.domain.models import Account
from lookalike.service.container import Services

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"


@dataclass
class ConsoleUser:
    account: Account
    password: str
    key_id: str
    secret: str

    @property
    def name(self) -> str:
        return self.account.name


@dataclass
class Console:
    """One console server (fresh Services) plus a browser to look at it with."""

    services: Services
    clock: ManualClock
    base_url: str
    browser: Any  # playwright.sync_api.Browser
    contexts: list[Any] = field(default_factory=list)

    def page(self, viewport: dict[str, int] | None = None) -> Any:
        """A page in a new browser context (its own cookies), at `viewport` (default 1280 x 900)."""
        context = self.browser.new_context(base_url=self.base_url, viewport=viewport or DESKTOP)
        context.set_default_timeout(30_000)
        self.contexts.append(context)
        return context.new_page()

    def new_tenant(self, name: str, password: str = PASSWORD) -> ConsoleUser:
        account, key = self.services.accounts.create_account(name)
        self.services.console_auth.set_password(account.id, password)
        return ConsoleUser(account, password, key.access_key_id, key.access_key_secret)

    def operator(self, password: str = PASSWORD) -> ConsoleUser:
        key = self.services.bootstrap_key
        assert key is not None, "fresh Services create the operator account"
        self.services.console_auth.set_password(key.account_id, password)
        account = self.services.accounts.get_account(key.account_id)
        return ConsoleUser(account, password, key.access_key_id, key.access_key_secret)

    def sign_in(self, page: Any, user: ConsoleUser) -> None:
        page.goto("/console/sign-in")
        page.get_by_label("Account name").fill(user.name)
        page.get_by_label("Password").fill(user.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/dashboard")

    def api(self, user: ConsoleUser) -> httpx.Client:
        """The native REST API as this user (HTTP Basic with the user's AccessKey)."""
        return httpx.Client(base_url=self.base_url, auth=(user.key_id, user.secret), timeout=60)

    def api_with(self, key_id: str, secret: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=(key_id, secret), timeout=60)

    def top_up(self, user: ConsoleUser, amount_minor: int, key: str) -> None:
        self.services.billing.payments.top_up(
            user.account.id, amount_minor, reference=None, idempotency_key=key
        )


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as docs/screenshots/<name>.png (the README shows these)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Per module, not per session: while Playwright's sync API runs, its event loop is the main thread's running
# loop, and a later test module calling asyncio.run() (the signing tests do) would fail on it.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing (scripts/test-servers installs it)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def console(services: Services, clock: ManualClock, chromium: Any) -> Iterator[Console]:
    with live_server(services) as endpoint:
        found = Console(services, clock, f"http://{endpoint}", chromium)
        try:
            yield found
        finally:
            for context in found.contexts:
                context.close()
