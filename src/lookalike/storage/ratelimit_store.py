"""Where GCRA state lives. In-memory for one process; a Redis store plugs in behind the same Protocol."""

from __future__ import annotations

import threading
from typing import Protocol

from lookalike.domain.ratelimit import RateDecision, gcra


class RateLimitStore(Protocol):
    def acquire(self, key: str, rate: float, now: float, burst_seconds: float = 1.0) -> RateDecision: ...


class InMemoryRateLimitStore:
    """Thread-safe; entries past their TAT are dropped now and then so memory stays bounded."""

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def acquire(self, key: str, rate: float, now: float, burst_seconds: float = 1.0) -> RateDecision:
        with self._lock:
            decision = gcra(self._tats.get(key), now, rate, burst_seconds)
            if decision.allowed:
                self._tats[key] = decision.new_tat
            self._ops += 1
            if self._ops % 10_000 == 0:
                self._tats = {k: t for k, t in self._tats.items() if t > now}
            return decision
