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


class NonceStore(Protocol):
    def remember(self, nonce: str, now: float, ttl: float) -> bool:
        """Record `nonce` until `now + ttl`. True if it was new, False if it was already recorded and live."""
        ...


class InMemoryNonceStore:
    """Thread-safe; expired entries are dropped on every call (amortised O(log n) via a min-heap of expiries).

    `max_entries` is a hard cap against a flood of distinct nonces within one window: when it is reached the
    entries closest to expiry are evicted first, which can only weaken replay protection for the oldest
    requests (those nearest the edge of the timestamp window), never refuse a fresh one.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._max = max_entries

    def remember(self, nonce: str, now: float, ttl: float) -> bool:
        with self._lock:
            self._expire(now)
            expires = self._expiry.get(nonce)
            if expires is not None and expires > now:
                return False
            while len(self._expiry) >= self._max and self._heap:
                when, oldest = heapq.heappop(self._heap)
                if self._expiry.get(oldest) == when:
                    del self._expiry[oldest]
            self._expiry[nonce] = now + ttl
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
