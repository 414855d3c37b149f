"""Who may see and order for an instance."""

from __future__ import annotations

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, Instance
from lookalike.storage.accounts_repo import InstanceRepository


def owned_instance(
    instances: InstanceRepository, account: Account, name: str, *, to_order: bool = False
) -> Instance:
    """The named instance if `account` may see it (its owner, or the operator). `to_order`: only the owner,
    since an order is paid from the ordering account's balance at its own catalogue's prices (the operator
    gives an instance time or size with a grant instead)."""
    instance = instances.get_by_name(name)
    if instance is None or (instance.account_id != account.id and not account.is_admin):
        raise LookalikeError(e.INVALID_INSTANCE, "The specified instance name is invalid.")
    if to_order and instance.account_id != account.id:
        raise LookalikeError(
            e.NO_PERMISSION, "Only the instance's owner can order for it (renew, change, auto-renew)."
        )
    return instance


def required(value: str | None, name: str) -> str:
    if not value:
        raise LookalikeError(e.INVALID_PARAMETER, f"{name} is required.")
    return value
