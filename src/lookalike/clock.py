"""Injected time. Services never call time.time() directly, so tests can move the clock."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current wall-clock time, timezone-aware UTC."""
        ...

    def timestamp(self) -> float:
        """Seconds since the epoch, for rate limiting and expiry maths."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to (tests, demo servers)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, delta: timedelta | float) -> None:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


class OffsetClock:
    """Real time plus an offset the operator can move forward: a demo server can show a month pass."""

    def __init__(self, base: Clock | None = None, offset_seconds: float = 0.0) -> None:
        self._base = base or SystemClock()
        self._offset = offset_seconds
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._base.now() + timedelta(seconds=self._offset)

    def timestamp(self) -> float:
        with self._lock:
            return self._base.timestamp() + self._offset

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._offset += seconds
