"""The reads a metrics scrape makes: each one query over rows that stay few at any size (one per instance,
one per unfinished task), never over pictures or the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, case, func, select

from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import instances, tasks
from lookalike.storage.tasks_repo import PROCESSING


@dataclass(frozen=True)
class QueuedTasks:
    kind: str  # "dump" | "increase" | "duplicates"
    running: bool  # a worker holds its lease now; else it waits for one
    count: int
    oldest_created_at: datetime


class MonitoringRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def task_queue(self, now: datetime) -> list[QueuedTasks]:
        """Unfinished (PROCESSING) tasks by kind and whether a worker holds them, with the oldest's age.

        At most one PROCESSING task of a kind per instance, and the partial index uq_tasks_running holds
        exactly those rows: the query reads no finished task."""
        running = case(
            (and_(tasks.c.lease_holder.is_not(None), tasks.c.lease_until > now), True), else_=False
        )
        query = (
            select(tasks.c.kind, running.label("running"), func.count(), func.min(tasks.c.created_at))
            .where(tasks.c.status == PROCESSING)
            .group_by(tasks.c.kind, running)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [QueuedTasks(str(kind), bool(held), int(n), as_utc(oldest)) for kind, held, n, oldest in rows]

    def pictures_per_instance(self) -> dict[str, int]:
        """Pictures each instance holds, from the counters the writes maintain (instances.image_count)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(instances.c.id, instances.c.image_count)).all()
        return {str(instance_id): int(count or 0) for instance_id, count in rows}
