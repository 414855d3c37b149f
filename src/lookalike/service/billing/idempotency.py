"""The one transaction every money-changing call runs in: its idempotency key is recorded with its effects,
so a call either happened completely (and a retry replays its answer) or not at all."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.billing_records import DuplicateRecord, StoredResponse
from lookalike.domain.errors import LookalikeError
from lookalike.service.billing.ports import BillingStore, BillingTransaction

Work = Callable[[BillingTransaction], dict[str, Any]]


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


class IdempotentCalls:
    def __init__(self, store: BillingStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def run(self, account_id: str, key: str | None, request: dict[str, Any], work: Work) -> dict[str, Any]:
        """Run `work` in a write transaction with the account locked, once per (account, key)."""
        if not key or len(key) > 255 or "\x00" in key:  # NUL: PostgreSQL text cannot store it
            raise LookalikeError(
                e.IDEMPOTENCY_KEY_REQUIRED,
                "Money-changing calls need an Idempotency-Key (1-255 characters, no NUL).",
            )
        digest = request_hash(request)
        for _attempt in range(2):
            try:
                with self._store.writing() as tx:
                    # Lock first, then look for the key: on PostgreSQL (READ COMMITTED) a same-key call that
                    # held the lock has committed its key by the time we get it, so we replay its result.
                    # Looking first let the waiter run `work` again and fail on the state the first call
                    # left (InstanceAlreadyExists, InsufficientBalance) instead of replaying.
                    tx.lock_account(account_id)
                    stored = tx.find_idempotent(account_id, key)
                    if stored is not None:
                        return _replay(stored, digest)
                    body = work(tx)
                    tx.store_idempotent(account_id, key, digest, 200, body, self._clock.now())
                    return body
            except DuplicateRecord:
                continue  # a concurrent call with the same key won the insert: replay its result
        with self._store.reading() as tx:
            stored = tx.find_idempotent(account_id, key)
        if stored is None:
            raise LookalikeError(
                e.INTERNAL_ERROR, "The order could not be recorded; retry with the same key."
            )
        return _replay(stored, digest)


def _replay(stored: StoredResponse, digest: str) -> dict[str, Any]:
    if stored.request_hash != digest:
        raise LookalikeError(
            e.IDEMPOTENCY_CONFLICT, "This Idempotency-Key was used with different parameters."
        )
    return {**stored.body, "replayed": True}
