"""Gauges read when Prometheus scrapes: the vector indexes, the pictures per instance, the task queue.

Each collector reads state that is cheap at any size: the index manager's in-memory view of the indexes this
process holds open, and two short SQL queries (lookalike.storage.monitoring_repo) over rows that stay few
(one per instance, one per unfinished task).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lookalike.clock import Clock
from lookalike.storage.monitoring_repo import MonitoringRepository
from lookalike.vectors.manager import IndexManager

INDEX_MODES: Final = ("exact", "ivf", "shared")
TASK_KINDS: Final = ("dump", "increase", "duplicates")  # always reported, 0 when none waits

log = logging.getLogger(__name__)


class IndexCollector(Collector):
    """The indexes this process holds open (each replica its own copy on the faiss backend)."""

    def __init__(self, indexes: IndexManager) -> None:
        self._indexes = indexes

    def collect(self) -> Iterable[GaugeMetricFamily]:
        statuses = self._indexes.status()
        vectors = GaugeMetricFamily(
            "lookalike_index_vectors",
            "Live vectors in an instance's index in this process (absent on a shared backend).",
            labels=["instance_id"],
        )
        mode = GaugeMetricFamily(
            "lookalike_index_mode",
            "How an instance's index searches: 1 for its current mode (exact, ivf; shared on Milvus).",
            labels=["instance_id", "mode"],
        )
        rebuilding = GaugeMetricFamily(
            "lookalike_index_rebuilding",
            "1 while an instance's IVF index is retrained in the background.",
            labels=["instance_id"],
        )
        unsaved = GaugeMetricFamily(
            "lookalike_index_unsaved",
            "1 when an instance's index holds changes not yet saved (replayed from SQL after a crash).",
            labels=["instance_id"],
        )
        for status in statuses:
            if status.vectors is not None:
                vectors.add_metric([status.instance_id], status.vectors)
            for name in INDEX_MODES:
                mode.add_metric([status.instance_id, name], 1.0 if status.mode == name else 0.0)
            rebuilding.add_metric([status.instance_id], 1.0 if status.rebuilding else 0.0)
            unsaved.add_metric([status.instance_id], 1.0 if status.unsaved else 0.0)
        opened = GaugeMetricFamily(
            "lookalike_indexes_open", "Vector indexes this process holds open.", value=len(statuses)
        )
        return [vectors, mode, rebuilding, unsaved, opened]


class StoreCollector(Collector):
    """What the SQL store says: pictures per instance, and the export/batch task queue."""

    def __init__(self, repo: MonitoringRepository, clock: Clock) -> None:
        self._repo = repo
        self._clock = clock

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            return self._read()
        except Exception:  # the database is away: the scrape still carries the request metrics
            log.warning("metrics: reading the SQL store failed", exc_info=True)
            return []

    def _read(self) -> list[GaugeMetricFamily]:
        pictures = GaugeMetricFamily(
            "lookalike_pictures",
            "Pictures an instance holds (SQL's maintained counter: the same on every replica).",
            labels=["instance_id"],
        )
        for instance_id, count in sorted(self._repo.pictures_per_instance().items()):
            pictures.add_metric([instance_id], count)

        now = self._clock.now()
        depth: dict[tuple[str, str], int] = {(k, s): 0 for k in TASK_KINDS for s in ("waiting", "running")}
        oldest: dict[str, float] = dict.fromkeys(TASK_KINDS, 0.0)
        for row in self._repo.task_queue(now):
            state = "running" if row.running else "waiting"
            depth[(row.kind, state)] = depth.get((row.kind, state), 0) + row.count
            age = max(0.0, (now - row.oldest_created_at).total_seconds())
            oldest[row.kind] = max(oldest.get(row.kind, 0.0), age)
        queued = GaugeMetricFamily(
            "lookalike_tasks_unfinished",
            "Export, batch and duplicate-report tasks not finished, waiting for a worker or running.",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(depth.items()):
            queued.add_metric([kind, state], count)
        age_family = GaugeMetricFamily(
            "lookalike_task_oldest_age_seconds",
            "Age of the oldest unfinished task of a kind (0 when none).",
            labels=["kind"],
        )
        for kind, seconds in sorted(oldest.items()):
            age_family.add_metric([kind], seconds)
        return [pictures, queued, age_family]
