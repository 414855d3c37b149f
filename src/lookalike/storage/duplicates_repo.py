"""Duplicate reports' rows: the scan's pairs (with its progress, under the task's lease) and the groups."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, tuple_, update

from lookalike.domain.duplicates import Group, Member, Pair
from lookalike.storage.tables import duplicate_members, duplicate_pairs, images, tasks

PROCESSING = "PROCESSING"
_CHUNK = 500


@dataclass(frozen=True)
class StoredGroup:
    group_no: int
    members: list[Member]  # the members whose pictures still exist, suggested keeper first


class DuplicateRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record_scan(
        self,
        task_id: int,
        holder: str,
        pairs: Sequence[Pair],
        cursor: int,
        scanned: int,
        *,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """Commit one batch of the scan: its new pairs and the cursor (the last image id scanned) together.
        False, with nothing written, when the lease is lost or the batch was already committed."""
        with self._engine.begin() as conn:
            moved = conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status == PROCESSING,
                    tasks.c.lease_holder == holder,
                    tasks.c.progress < cursor,
                )
                .values(
                    progress=cursor,
                    succeeded=tasks.c.succeeded + scanned,
                    lease_until=lease_until,
                    updated_at=now,
                )
            )
            if moved.rowcount != 1:
                return False
            unique = {(p.first, p.second): p for p in pairs}
            keys = list(unique)
            for start in range(0, len(keys), _CHUNK):  # pairs found from the other side in an earlier batch
                chunk = keys[start : start + _CHUNK]
                for row in conn.execute(
                    select(duplicate_pairs.c.first_id, duplicate_pairs.c.second_id).where(
                        duplicate_pairs.c.task_id == task_id,
                        tuple_(duplicate_pairs.c.first_id, duplicate_pairs.c.second_id).in_(chunk),
                    )
                ):
                    unique.pop((int(row.first_id), int(row.second_id)), None)
            if unique:
                conn.execute(
                    insert(duplicate_pairs),
                    [
                        {"task_id": task_id, "first_id": p.first, "second_id": p.second, "score": p.score}
                        for p in unique.values()
                    ],
                )
        return True

    def iter_pairs(self, task_id: int) -> Iterator[Pair]:
        """Every pair of the report, in key order, read in bounded chunks."""
        after: tuple[int, int] = (-1, -1)
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(duplicate_pairs.c.first_id, duplicate_pairs.c.second_id, duplicate_pairs.c.score)
                    .where(
                        duplicate_pairs.c.task_id == task_id,
                        tuple_(duplicate_pairs.c.first_id, duplicate_pairs.c.second_id) > after,
                    )
                    .order_by(duplicate_pairs.c.first_id, duplicate_pairs.c.second_id)
                    .limit(10 * _CHUNK)
                ).all()
            for r in rows:
                yield Pair(int(r.first_id), int(r.second_id), float(r.score))
            if len(rows) < 10 * _CHUNK:
                return
            after = (int(rows[-1].first_id), int(rows[-1].second_id))

    def write_groups(self, task_id: int, holder: str, groups: Sequence[Group], *, now: datetime) -> bool:
        """Replace the report's groups (a rerun after a crash writes the same ones); False when the lease
        is lost."""
        with self._engine.begin() as conn:
            held = conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.status == PROCESSING, tasks.c.lease_holder == holder)
                .values(updated_at=now)
            )
            if held.rowcount != 1:
                return False
            conn.execute(delete(duplicate_members).where(duplicate_members.c.task_id == task_id))
            rows: list[dict[str, Any]] = []
            for number, group in enumerate(groups, 1):
                for position, member in enumerate(group.members):
                    rows.append(
                        {
                            "task_id": task_id,
                            "group_no": number,
                            "position": position,
                            "image_id": member.image_id,
                            "score": member.score,
                        }
                    )
                if len(rows) >= 10 * _CHUNK:
                    conn.execute(insert(duplicate_members), rows)
                    rows = []
            if rows:
                conn.execute(insert(duplicate_members), rows)
        return True

    def discard_reports(self, instance_id: str, kind: str, *, keep: int) -> None:
        """Delete the pairs and groups of the instance's other reports: only the newest one is shown."""
        older = (
            select(tasks.c.id)
            .where(tasks.c.instance_id == instance_id, tasks.c.kind == kind, tasks.c.id != keep)
            .scalar_subquery()
        )
        with self._engine.begin() as conn:
            conn.execute(delete(duplicate_members).where(duplicate_members.c.task_id.in_(older)))
            conn.execute(delete(duplicate_pairs).where(duplicate_pairs.c.task_id.in_(older)))

    def _live_groups(self, task_id: int, instance_id: str) -> Any:
        """group_no and live member count of the groups that still have two pictures or more."""
        return (
            select(duplicate_members.c.group_no, func.count().label("size"))
            .select_from(
                duplicate_members.join(
                    images,
                    and_(images.c.id == duplicate_members.c.image_id, images.c.instance_id == instance_id),
                )
            )
            .where(duplicate_members.c.task_id == task_id)
            .group_by(duplicate_members.c.group_no)
            .having(func.count() >= 2)
        )

    def count_groups(self, task_id: int, instance_id: str) -> tuple[int, int]:
        """(groups, pictures in them), counting only pictures that still exist."""
        live = self._live_groups(task_id, instance_id).subquery()
        with self._engine.connect() as conn:
            row = conn.execute(select(func.count(), func.coalesce(func.sum(live.c.size), 0))).one()
        return int(row[0]), int(row[1])

    def group(self, task_id: int, instance_id: str, group_no: int) -> StoredGroup | None:
        """One group's live members (None when it has fewer than two left)."""
        with self._engine.connect() as conn:
            rows = conn.execute(self._members(task_id, instance_id, [group_no])).all()
        if len(rows) < 2:
            return None
        return StoredGroup(group_no, [Member(int(r.image_id), float(r.score)) for r in rows])

    @staticmethod
    def _members(task_id: int, instance_id: str, numbers: list[int]) -> Any:
        return (
            select(duplicate_members.c.group_no, duplicate_members.c.image_id, duplicate_members.c.score)
            .select_from(
                duplicate_members.join(
                    images,
                    and_(images.c.id == duplicate_members.c.image_id, images.c.instance_id == instance_id),
                )
            )
            .where(duplicate_members.c.task_id == task_id, duplicate_members.c.group_no.in_(numbers))
            .order_by(duplicate_members.c.group_no, duplicate_members.c.position)
        )

    def groups(self, task_id: int, instance_id: str, *, offset: int, limit: int) -> list[StoredGroup]:
        """A page of the groups that still have two pictures or more, in report order."""
        live = self._live_groups(task_id, instance_id).order_by(duplicate_members.c.group_no)
        with self._engine.connect() as conn:
            numbers = [int(r.group_no) for r in conn.execute(live.offset(offset).limit(limit))]
            if not numbers:
                return []
            rows = conn.execute(self._members(task_id, instance_id, numbers)).all()
        found: dict[int, list[Member]] = {n: [] for n in numbers}
        for r in rows:
            found[int(r.group_no)].append(Member(int(r.image_id), float(r.score)))
        return [StoredGroup(n, found[n]) for n in numbers]
