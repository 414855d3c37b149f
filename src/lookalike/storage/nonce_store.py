"""Where seen signature nonces live (replay protection for the Alibaba dialect).

In-memory for one process; a Redis store plugs in behind the same Protocol (`SET key 1 NX EX ttl`
is exactly `remember`). A nonce only has to be remembered for as long as a request carrying it could
still pass the timestamp check, so every entry has a TTL and memory stays bounded by the request rate
times the freshness window.
"""

from __future__ import annotations

import heapq
import threading
from typing import Protocol


class NonceStoreFull(Exception):
    """No room to remember another nonce of this caller: the request is refused, never let through, since
    forgetting a live nonce would reopen replay."""


class NonceStore(Protocol):
    def remember(self, nonce: str, now: float, ttl: float) -> bool:
        """Record `nonce` until `now + ttl`. True if it was new, False if it was already recorded and live.

        `nonce` is "SCOPE\nNONCE" (the signing AccessKeyId, then the nonce): a store may bound each scope."""
        ...


class InMemoryNonceStore:
    """Thread-safe; expired entries are dropped on every call (amortised O(log n) via a min-heap of expiries).

    Bounded without ever forgetting a live nonce: one scope (AccessKey) holds at most `max_per_scope` live
    nonces and the store `max_entries`; past either, `remember` raises NonceStoreFull. So a flood from one
    key throttles that key alone, and cannot evict (and so reopen replay for) anyone else's nonces.
    """

    def __init__(self, max_entries: int = 1_000_000, max_per_scope: int = 100_000) -> None:
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._per_scope: dict[str, int] = {}
        self._lock = threading.Lock()
        self._max = max_entries
        self._max_per_scope = max_per_scope

    def remember(self, nonce: str, now: float, ttl: float) -> bool:
        scope = _scope(nonce)
        with self._lock:
            self._expire(now)
            expires = self._expiry.get(nonce)
            if expires is not None and expires > now:
                return False
            if self._per_scope.get(scope, 0) >= self._max_per_scope or len(self._expiry) >= self._max:
                raise NonceStoreFull(scope)
            self._expiry[nonce] = now + ttl
            self._per_scope[scope] = self._per_scope.get(scope, 0) + 1
            heapq.heappush(self._heap, (now + ttl, nonce))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def _expire(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, nonce = heapq.heappop(heap)
            # Only drop the mapping if it still refers to this heap entry (not re-remembered later).
            if self._expiry.get(nonce) == when:
                del self._expiry[nonce]
                scope = _scope(nonce)
                left = self._per_scope[scope] - 1
                if left:
                    self._per_scope[scope] = left
                else:
                    del self._per_scope[scope]


def _scope(nonce: str) -> str:
    return nonce.partition("\n")[0]
