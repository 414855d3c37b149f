"""Console passwords, sessions and sign-in throttling, on the real database (no browser)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lookalike.clock import ManualClock
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.service.console_auth import SIGN_IN_FAILED, ConsoleAuthService, token_hash
from lookalike.service.container import Services, build_console_auth
from lookalike.service.passwords import hash_password, password_problem, verify_password
from lookalike.storage.ratelimit_store import InMemoryRateLimitStore

PASSWORD = "a long enough password"


@settings(max_examples=15, deadline=None)  # scrypt is slow on purpose
@given(st.text(min_size=10, max_size=40), st.text(min_size=1, max_size=40))
def test_a_hash_verifies_its_password_and_nothing_else(password: str, other: str) -> None:
    stored = hash_password(password)
    assert verify_password(password, stored)
    assert verify_password(other, stored) == (other == password)
    assert password not in stored


@pytest.mark.parametrize(
    "stored", ["", "scrypt$", "md5$1$2$3$4$5", "scrypt$x$8$1$AA==$AA==", "scrypt$16384$8$1$!$!"]
)
def test_a_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything at all", stored)


def test_password_rules() -> None:
    assert password_problem("short") is not None
    assert password_problem(" " * 12) is not None
    assert password_problem("x" * 257) is not None
    assert password_problem(PASSWORD) is None


@pytest.fixture
def auth(services: Services) -> tuple[ConsoleAuthService, ManualClock]:
    clock = ManualClock()
    found = build_console_auth(
        services.settings, services.engine, services.accounts, clock, InMemoryRateLimitStore()
    )
    return found, clock


def test_sessions_live_for_their_ttl_and_store_only_a_hash(
    services: Services, auth: tuple[ConsoleAuthService, ManualClock]
) -> None:
    console, clock = auth
    account, _key = services.accounts.create_account("shop")
    console.set_password(account.id, PASSWORD)
    new = console.sign_in("shop", PASSWORD)
    assert new.session.token_hash == token_hash(new.token) != new.token
    assert console.session(new.token) is not None
    assert console.session(new.token + "x") is None
    clock.advance(timedelta(seconds=services.settings.console_session_ttl_s - 1))
    assert console.session(new.token) is not None
    clock.advance(2)
    assert console.session(new.token) is None


def test_changing_the_password_ends_every_session(
    services: Services, auth: tuple[ConsoleAuthService, ManualClock]
) -> None:
    console, _clock = auth
    account, _key = services.accounts.create_account("shop")
    console.set_password(account.id, PASSWORD)
    first, second = console.sign_in("shop", PASSWORD), console.sign_in("shop", PASSWORD)
    console.set_password(account.id, "another long password")
    assert console.session(first.token) is None and console.session(second.token) is None
    with pytest.raises(LookalikeError):
        console.sign_in("shop", PASSWORD)


def test_a_flash_is_shown_once(services: Services, auth: tuple[ConsoleAuthService, ManualClock]) -> None:
    console, _clock = auth
    account, _key = services.accounts.create_account("shop")
    console.set_password(account.id, PASSWORD)
    session = console.sign_in("shop", PASSWORD).session
    console.flash(session, "Saved.")
    assert console.pop_flash(session) == "Saved."
    assert console.pop_flash(session) is None


def test_sign_in_attempts_are_throttled_per_account_name(
    services: Services, auth: tuple[ConsoleAuthService, ManualClock]
) -> None:
    console, clock = auth
    account, _key = services.accounts.create_account("shop")
    console.set_password(account.id, PASSWORD)
    for _ in range(20):
        with pytest.raises(LookalikeError) as wrong:
            console.sign_in("shop", "guess guess guess")
        assert wrong.value.message == SIGN_IN_FAILED
    with pytest.raises(LookalikeError) as throttled:
        console.sign_in("Shop ", PASSWORD)  # even the right password, under any spelling of the name
    assert throttled.value.code == e.DENIED_REQUEST and throttled.value.http_status == 429
    with pytest.raises(LookalikeError) as other:  # other names are not affected
        console.sign_in("other-name", PASSWORD)
    assert other.value.message == SIGN_IN_FAILED
    clock.advance(timedelta(minutes=3))
    assert console.session(console.sign_in("shop", PASSWORD).token) is not None
