"""The search usage meter: every search decision counted in memory, written to SQL in the background.

The rate limiter tells the meter about each search it allows or refuses (native API, Alibaba API and
console alike all pass through it). Counting is a dict update under a lock, so a search never waits on
the database; a timer thread adds the counts to SQL every few seconds, and a read flushes first so this
process's own latest searches are always in what it shows. Several replicas each add their own counts
to the same rows.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from lookalike.clock import Clock
from lookalike.domain.usage import MinuteUsage, UsageTally, UsageWindow, minute_start
from lookalike.storage.usage_repo import UsageRepository

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 5.0
RETENTION = timedelta(days=7)  # the dashboard shows an hour; a week leaves room to look back at an incident
PRUNE_EVERY = timedelta(hours=1)


class SearchUsageMeter:
    def __init__(self, repo: UsageRepository, clock: Clock) -> None:
        self._repo = repo
        self._clock = clock
        self._tally = UsageTally()
        self._lock = threading.Lock()  # guards the tally
        self._flush_lock = threading.Lock()  # one flush at a time, so a failed write is restored in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune: datetime | None = None

    def record(self, instance_id: str, timestamp: float, allowed: bool) -> None:
        """One search decision at `timestamp` (the rate limiter's clock reading)."""
        with self._lock:
            self._tally.record(instance_id, timestamp, allowed)

    def flush(self) -> None:
        """Add what was counted since the last flush to SQL. On a failed write the counts stay in memory
        for the next flush (nothing is lost, nothing is counted twice)."""
        with self._flush_lock:
            with self._lock:
                pieces = self._tally.drain(self._clock.timestamp())
            try:
                self._repo.add(pieces)
            except Exception:
                with self._lock:
                    self._tally.restore(pieces)
                raise

    def window(self, instance_ids: list[str], minutes: int = 60) -> dict[str, UsageWindow]:
        """The last `minutes` minutes (the current one included) of each instance, after a flush."""
        try:
            self.flush()
        except Exception:  # the database is the problem then; show what it has rather than fail the page
            log.exception("search usage flush failed")
        current = minute_start(self._clock.timestamp())
        first = current - timedelta(minutes=minutes - 1)
        stored = {(u.instance_id, u.minute): u for u in self._repo.since(instance_ids, first)}
        out: dict[str, UsageWindow] = {}
        for instance_id in instance_ids:
            rows = []
            for i in range(minutes):
                moment = first + timedelta(minutes=i)
                rows.append(stored.get((instance_id, moment)) or MinuteUsage(instance_id, moment, 0, 0, 0))
            out[instance_id] = UsageWindow(instance_id, rows)
        return out

    def prune(self) -> int:
        """Forget minutes older than the retention period."""
        now = self._clock.now()
        self._last_prune = now
        return self._repo.delete_before(now - RETENTION)

    # --- the background flusher ---
    def start(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="search-usage-flush", daemon=True
        )
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
                if self._last_prune is None or self._clock.now() - self._last_prune >= PRUNE_EVERY:
                    self.prune()
            except Exception:  # keep counting; the next round tries again
                log.exception("search usage flush failed")

    def close(self) -> None:
        """Stop the timer and write what is left (called before the engine is disposed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.flush()
        except Exception:
            log.exception("search usage: the last flush failed; these counts are lost")
