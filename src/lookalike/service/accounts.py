"""Accounts, AccessKeys and instances (admin-managed until billing sets capacity from packages)."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import AccessKey, Account, Instance
from lookalike.storage.accounts_repo import AccountRepository, InstanceRepository
from lookalike.storage.secrets import SecretBox, new_access_key_id, new_access_key_secret

# How long a replica trusts its cached copy of a key: a key or account disabled on another replica stops
# working here within this time (this replica's own changes drop the entry at once).
KEY_CACHE_TTL_S = 5.0


@dataclass(frozen=True)
class IssuedKey:
    """An AccessKey pair as shown once, at creation."""

    access_key_id: str
    access_key_secret: str
    account_id: str


class AccountService:
    def __init__(
        self,
        accounts: AccountRepository,
        instances: InstanceRepository,
        secret_box: SecretBox,
        clock: Clock,
        *,
        key_cache_ttl_s: float = KEY_CACHE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = accounts
        self._instances = instances
        self._box = secret_box
        self._clock = clock
        # key id -> (account, secret, cached at): saves a read and a decryption per request.
        self._secret_cache: dict[str, tuple[Account, str, float]] = {}
        self._cache_lock = threading.Lock()
        self._cache_ttl = key_cache_ttl_s
        self._monotonic = monotonic

    # --- bootstrap and accounts ---
    def bootstrap_admin(self, name: str = "admin") -> IssuedKey | None:
        """Create the operator account and its first key on the first start; None if it exists."""
        if self._accounts.find_admin() is not None:
            return None
        try:
            account = self._accounts.create_account(name, is_admin=True, now=self._clock.now())
        except LookalikeError:
            return None  # another replica starting at the same moment created it (names are unique)
        return self.create_access_key(account.id)

    def create_account(self, name: str) -> tuple[Account, IssuedKey]:
        name = name.strip()
        if not name or len(name) > 128:
            raise LookalikeError(e.INVALID_PARAMETER, "Account names are 1-128 characters.")
        account = self._accounts.create_account(name, is_admin=False, now=self._clock.now())
        return account, self.create_access_key(account.id)

    def get_account(self, account_id: str) -> Account:
        account = self._accounts.get_account(account_id)
        if account is None:
            raise LookalikeError(e.ACCOUNT_NOT_FOUND, f"No account {account_id!r}.")
        return account

    def list_accounts(self) -> list[Account]:
        return self._accounts.list_accounts()

    def find_admin(self) -> Account | None:
        return self._accounts.find_admin()

    def set_account_disabled(self, account_id: str, disabled: bool) -> Account:
        """Disable (or enable again) an account: its AccessKeys and console sessions stop working at once."""
        account = self.get_account(account_id)
        if account.is_admin and disabled:
            raise LookalikeError(e.NO_PERMISSION, "The operator account cannot be disabled.")
        self._accounts.set_account_disabled(account_id, disabled)
        self._forget_account(account_id)
        return self.get_account(account_id)

    def _forget_account(self, account_id: str) -> None:
        with self._cache_lock:
            for key_id in [k for k, (a, _, _t) in self._secret_cache.items() if a.id == account_id]:
                del self._secret_cache[key_id]

    # --- access keys ---
    def create_access_key(self, account_id: str) -> IssuedKey:
        self.get_account(account_id)
        key_id, secret = new_access_key_id(), new_access_key_secret()
        self._accounts.add_access_key(key_id, account_id, self._box.encrypt(secret), self._clock.now())
        return IssuedKey(key_id, secret, account_id)

    def set_access_key_disabled(self, key_id: str, disabled: bool) -> None:
        if not self._accounts.set_access_key_disabled(key_id, disabled):
            raise LookalikeError(e.INVALID_ACCESS_KEY, f"No AccessKey {key_id!r}.")
        with self._cache_lock:
            self._secret_cache.pop(key_id, None)

    def delete_access_key(self, key_id: str) -> None:
        if not self._accounts.delete_access_key(key_id):
            raise LookalikeError(e.INVALID_ACCESS_KEY, f"No AccessKey {key_id!r}.")
        with self._cache_lock:
            self._secret_cache.pop(key_id, None)

    def list_access_keys(self, account_id: str) -> list[AccessKey]:
        return self._accounts.list_access_keys(account_id)

    def resolve_key(self, key_id: str) -> tuple[Account, str]:
        """The account and plaintext secret behind an AccessKeyId (signature schemes need the secret)."""
        with self._cache_lock:
            cached = self._secret_cache.get(key_id)
        if cached is not None and self._monotonic() - cached[2] < self._cache_ttl:
            return cached[0], cached[1]
        found = self._accounts.get_access_key(key_id)
        if found is None:
            raise LookalikeError(e.INVALID_ACCESS_KEY, "Specified access key is not found.")
        key, ciphertext = found
        if key.disabled:
            raise LookalikeError(e.ACCESS_KEY_DISABLED, "Specified access key is disabled.")
        account = self.get_account(key.account_id)
        if account.disabled:
            raise LookalikeError(e.ACCESS_KEY_DISABLED, "The account of this access key is disabled.")
        secret = self._box.decrypt(ciphertext)
        if secret is None:
            raise LookalikeError(e.INTERNAL_ERROR, "The server key cannot decrypt this AccessKey secret.")
        with self._cache_lock:
            self._secret_cache[key_id] = (account, secret, self._monotonic())
        return account, secret

    def authenticate(self, key_id: str, secret: str) -> Account:
        account, expected = self.resolve_key(key_id)
        if not hmac.compare_digest(expected.encode(), secret.encode()):
            raise LookalikeError(e.SIGNATURE_MISMATCH, "The AccessKey secret does not match.")
        return account

    # --- instances (created by billing: buy, trial or an operator grant) ---
    def list_instances(self, account: Account) -> list[Instance]:
        return self._instances.list_for_account(None if account.is_admin else account.id)

    def list_released(self, account: Account) -> list[tuple[Instance, datetime]]:
        """The account's most recently released instances and when (the console lists them)."""
        return self._instances.list_released(None if account.is_admin else account.id)

    def instance_for(self, account: Account, name: str) -> Instance:
        """The named instance if this account may use it; another tenant's answers like an unknown one."""
        instance = self._instances.get_by_name(name) if name else None
        if instance is None or (instance.account_id != account.id and not account.is_admin):
            raise LookalikeError(e.INVALID_INSTANCE, "The specified instance name is invalid.")
        return instance
