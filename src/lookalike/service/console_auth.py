"""Console sign-in: passwords, sessions and their CSRF tokens.

The cookie carries a random token; the database keeps only its SHA-256, the account, the session's CSRF
token and its expiry. Sessions are timed by the real clock (`Services.request_clock`), not the billing
clock, so moving a demo server's clock a month ahead does not sign everybody out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.accounts import AccountService, IssuedKey
from lookalike.service.passwords import generate_password, hash_password, password_problem, verify_password
from lookalike.storage.accounts_repo import AccountRepository
from lookalike.storage.console_repo import ConsoleRepository
from lookalike.storage.ratelimit_store import RateLimitStore

SIGN_IN_FAILED = "Account name or password is wrong."
# Sign-in attempts per account name: a burst of 20, then one every 3 minutes (GCRA in the shared rate store,
# so replicas count together). Per name, not per address: a password guesser cannot spread over addresses;
# the cost is that a flood can hold one name's sign-in for minutes, which API keys do not depend on.
SIGN_IN_RATE = 20 / 3600
SIGN_IN_BURST_S = 3600.0
# Verified against when the account does not exist, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password", salt=b"\0" * 16)


@dataclass(frozen=True)
class ConsoleSession:
    token_hash: str
    account: Account
    csrf_token: str

    def csrf_matches(self, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(submitted.encode(), self.csrf_token.encode())


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie; never stored
    session: ConsoleSession


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ConsoleAuthService:
    def __init__(
        self,
        accounts: AccountService,
        account_repo: AccountRepository,
        repo: ConsoleRepository,
        clock: Clock,
        rate_store: RateLimitStore,
        *,
        session_ttl_s: float,
        signup_allowed: bool,
    ) -> None:
        self._accounts = accounts
        self._account_repo = account_repo
        self._repo = repo
        self._clock = clock
        self._rates = rate_store
        self._ttl = timedelta(seconds=session_ttl_s)
        self.signup_allowed = signup_allowed

    # --- passwords ---
    def set_password(self, account_id: str, password: str) -> None:
        """Set (or change) an account's console password; its open sessions end."""
        problem = password_problem(password)
        if problem is not None:
            raise LookalikeError(e.INVALID_PARAMETER, problem)
        self._accounts.get_account(account_id)
        self._repo.set_password(account_id, hash_password(password), self._clock.now())
        self._repo.delete_sessions_of(account_id)

    def set_generated_password(self, account_id: str) -> str:
        password = generate_password()
        self.set_password(account_id, password)
        return password

    def has_password(self, account_id: str) -> bool:
        return self._repo.has_password(account_id)

    def sign_up(self, name: str, password: str) -> tuple[Account, IssuedKey, NewSession]:
        """Self-service account creation, when the operator allows it (setting `console_signup`)."""
        if not self.signup_allowed:
            raise LookalikeError(e.NO_PERMISSION, "Sign-up is closed on this server; ask the operator.")
        problem = password_problem(password)
        if problem is not None:
            raise LookalikeError(e.INVALID_PARAMETER, problem)
        account, key = self._accounts.create_account(name)
        self._repo.set_password(account.id, hash_password(password), self._clock.now())
        return account, key, self._open(account)

    # --- sessions ---
    def sign_in(self, name: str, password: str) -> NewSession:
        key = "console-sign-in:" + hashlib.sha256(name.strip().lower().encode("utf-8")).hexdigest()
        decision = self._rates.acquire(key, SIGN_IN_RATE, self._clock.timestamp(), SIGN_IN_BURST_S)
        if not decision.allowed:
            wait = max(1, round(decision.retry_after))
            raise LookalikeError(
                e.DENIED_REQUEST,
                f"Too many sign-in attempts for this account; try again in {wait} seconds.",
                retry_after=decision.retry_after,
                status=429,
            )
        account = self._account_repo.find_by_name(name.strip()) if name.strip() else None
        stored = self._repo.password_hash(account.id) if account is not None else None
        ok = verify_password(password, stored or _DUMMY_HASH)
        if account is None or stored is None or not ok:
            raise LookalikeError(e.NO_PERMISSION, SIGN_IN_FAILED, status=401)
        if account.disabled:
            raise LookalikeError(e.NO_PERMISSION, "This account is disabled; ask the operator.", status=403)
        return self._open(account)

    def _open(self, account: Account) -> NewSession:
        now = self._clock.now()
        self._repo.delete_expired(now)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        digest = token_hash(token)
        self._repo.create_session(digest, account.id, csrf, now, now + self._ttl)
        return NewSession(token, ConsoleSession(digest, account, csrf))

    def session(self, token: str | None) -> ConsoleSession | None:
        """The live session behind a cookie value, or None (unknown, expired, or its account disabled)."""
        if not token:
            return None
        row = self._repo.get_session(token_hash(token))
        if row is None or row.expires_at <= self._clock.now():
            return None
        account = self._account_repo.get_account(row.account_id)
        if account is None or account.disabled:
            return None
        return ConsoleSession(row.token_hash, account, row.csrf_token)

    def sign_out(self, session: ConsoleSession) -> None:
        self._repo.delete_session(session.token_hash)

    # --- one-shot notices (post/redirect/get) ---
    def flash(self, session: ConsoleSession, message: str) -> None:
        self._repo.set_flash(session.token_hash, message)

    def pop_flash(self, session: ConsoleSession) -> str | None:
        return self._repo.pop_flash(session.token_hash)
