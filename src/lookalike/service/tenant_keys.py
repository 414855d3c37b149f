"""A tenant managing its own AccessKeys (the console's keys page): every call is scoped to one account.

AccountService's key calls take a bare key id (the operator's view). Here a key id of another account is
answered exactly like one that does not exist, so the page cannot be used to probe or touch other
tenants' keys.

Disabling or deleting the last enabled key is allowed, as AWS IAM and Alibaba RAM allow it: the most
urgent reason to disable a key is that it leaked, and a tenant with a single key must be able to stop it
at once. Nothing is locked away by it: the console signs in with the account's password, not with a key,
and can create a new key at any moment. The page says so before the last key goes.
"""

from __future__ import annotations

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import AccessKey, Account
from lookalike.service.accounts import AccountService, IssuedKey


class TenantKeys:
    def __init__(self, accounts: AccountService) -> None:
        self._accounts = accounts

    def list(self, account: Account) -> list[AccessKey]:
        return self._accounts.list_access_keys(account.id)

    def create(self, account: Account) -> IssuedKey:
        return self._accounts.create_access_key(account.id)

    def get(self, account: Account, key_id: str) -> AccessKey:
        for key in self.list(account):
            if key.id == key_id:
                return key
        raise LookalikeError(e.INVALID_ACCESS_KEY, "There is no such AccessKey in this account.", status=404)

    def set_disabled(self, account: Account, key_id: str, disabled: bool) -> AccessKey:
        self.get(account, key_id)
        self._accounts.set_access_key_disabled(key_id, disabled)
        return self.get(account, key_id)

    def delete(self, account: Account, key_id: str) -> None:
        self.get(account, key_id)
        self._accounts.delete_access_key(key_id)

    def is_last_enabled(self, account: Account, key_id: str) -> bool:
        """True when `key_id` is enabled and no other key of the account is: without it the API stops."""
        enabled = [k.id for k in self.list(account) if not k.disabled]
        return enabled == [key_id]

    def enabled_count(self, account: Account) -> int:
        return sum(1 for k in self.list(account) if not k.disabled)
