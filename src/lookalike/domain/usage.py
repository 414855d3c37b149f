"""Search usage per instance and UTC minute: the pure counting, no storage and no locks.

A process tallies every search decision in memory (`UsageTally`) and hands the tallies over in pieces
(`drain`) to be added to SQL. Counts are deltas, so pieces from several flushes and several replicas add
up; the busiest second is a running maximum of this process's per-second counts within the minute.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class MinuteUsage:
    """Searches of one instance in one UTC minute (`minute` is its first second)."""

    instance_id: str
    minute: datetime
    searches: int  # allowed by the rate limit
    throttled: int  # refused by the rate limit
    peak_per_second: int  # allowed searches in the busiest second of the minute


@dataclass(frozen=True)
class UsageWindow:
    """One instance's last `len(minutes)` minutes, oldest first, a zero row for a minute without searches."""

    instance_id: str
    minutes: list[MinuteUsage]

    @property
    def searches(self) -> int:
        return sum(m.searches for m in self.minutes)

    @property
    def throttled(self) -> int:
        return sum(m.throttled for m in self.minutes)

    @property
    def peak_per_second(self) -> int:
        return max((m.peak_per_second for m in self.minutes), default=0)

    @property
    def throttled_minutes(self) -> int:
        return sum(1 for m in self.minutes if m.throttled)


def minute_start(timestamp: float) -> datetime:
    """The UTC minute that holds `timestamp` (epoch seconds), as its first second."""
    return datetime.fromtimestamp(int(timestamp // 60) * 60, UTC)


def minute_key(timestamp: float) -> int:
    return int(timestamp // 60)


@dataclass
class _OpenMinute:
    searches: int = 0  # not drained yet
    throttled: int = 0  # not drained yet
    per_second: Counter[int] = field(default_factory=Counter)  # every allowed search of the minute
    drained_peak: int = 0
    peak_floor: int = 0  # a peak drained earlier whose write failed (see restore)

    @property
    def peak(self) -> int:
        return max(max(self.per_second.values(), default=0), self.peak_floor)

    @property
    def pending(self) -> bool:
        return self.searches > 0 or self.throttled > 0 or self.peak > self.drained_peak


class UsageTally:
    """Per (instance, minute) counts of one process. Not thread-safe: the meter holds a lock around it."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], _OpenMinute] = {}

    def record(self, instance_id: str, timestamp: float, allowed: bool) -> None:
        entry = self._open.setdefault((instance_id, minute_key(timestamp)), _OpenMinute())
        if allowed:
            entry.searches += 1
            entry.per_second[int(timestamp // 1)] += 1
        else:
            entry.throttled += 1

    def drain(self, now: float) -> list[MinuteUsage]:
        """What was counted since the last drain, as deltas (searches, throttled) and the minute's peak so
        far. Minutes that ended over a minute before `now` are forgotten once drained: a search is
        counted at the moment it is decided, so nothing arrives for them any more."""
        out: list[MinuteUsage] = []
        current = minute_key(now)
        for (instance_id, key), entry in list(self._open.items()):
            if entry.pending:
                peak = entry.peak
                out.append(
                    MinuteUsage(instance_id, minute_start(key * 60), entry.searches, entry.throttled, peak)
                )
                entry.searches = entry.throttled = 0
                entry.drained_peak = peak
            if key < current - 1:
                del self._open[(instance_id, key)]
        return out

    def restore(self, pieces: list[MinuteUsage]) -> None:
        """Put drained deltas back (their write failed), so a later flush sends them again."""
        for piece in pieces:
            key = (piece.instance_id, int(piece.minute.timestamp() // 60))
            entry = self._open.setdefault(key, _OpenMinute())
            entry.searches += piece.searches
            entry.throttled += piece.throttled
            entry.peak_floor = max(entry.peak_floor, piece.peak_per_second)
            entry.drained_peak = 0  # send the peak again: SQL keeps the larger of the two

    @property
    def open_minutes(self) -> int:
        return len(self._open)
