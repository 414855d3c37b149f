"""Export and batch tasks: rows, progress under a lease, failed lines, and the export's keyset scan."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from lookalike.domain.attributes import SLOTS, Attributes
from lookalike.storage.db import write_transaction
from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import images, task_errors, tasks

PROCESSING = "PROCESSING"
SUCCESS = "SUCCESS"
FAIL = "FAIL"
DUMP = "dump"
INCREASE = "increase"
DUPLICATES = "duplicates"


@dataclass(frozen=True)
class TaskRow:
    id: int
    kind: str
    account_id: str
    instance_id: str
    status: str
    code: str
    msg: str
    bucket_name: str | None
    path: str | None
    callback_address: str | None
    params: str | None  # the task's own settings, a JSON object (a duplicate report's threshold)
    progress: int  # last line (1-based) whose effect is committed; 0 = none (a report: last image id)
    succeeded: int
    failed: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LineError:
    line_no: int
    operation: str
    product_id: str
    pic_name: str
    code: str
    message: str


def _row(r: Any) -> TaskRow:
    return TaskRow(
        id=int(r.id),
        kind=r.kind,
        account_id=r.account_id,
        instance_id=r.instance_id,
        status=r.status,
        code=r.code,
        msg=r.msg,
        bucket_name=r.bucket_name,
        path=r.path,
        callback_address=r.callback_address,
        params=r.params,
        progress=int(r.progress),
        succeeded=int(r.succeeded),
        failed=int(r.failed),
        created_at=as_utc(r.created_at),
        updated_at=as_utc(r.updated_at),
    )


class TaskRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        *,
        kind: str,
        account_id: str,
        instance_id: str,
        now: datetime,
        bucket_name: str | None = None,
        path: str | None = None,
        callback_address: str | None = None,
        params: str | None = None,
    ) -> TaskRow | None:
        """A new PROCESSING task, or None when the instance already runs one of this kind."""
        running = and_(tasks.c.instance_id == instance_id, tasks.c.kind == kind, tasks.c.status == PROCESSING)
        try:
            with write_transaction(self._engine) as conn:
                if conn.execute(select(tasks.c.id).where(running).with_for_update()).first() is not None:
                    return None
                result = conn.execute(
                    insert(tasks).values(
                        kind=kind,
                        account_id=account_id,
                        instance_id=instance_id,
                        status=PROCESSING,
                        code="",
                        msg="",
                        bucket_name=bucket_name,
                        path=path,
                        callback_address=callback_address,
                        params=params,
                        progress=0,
                        succeeded=0,
                        failed=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
                pk = result.inserted_primary_key
                assert pk is not None
                task_id = int(pk[0])
        except IntegrityError:  # the partial unique index caught a concurrent submission
            return None
        found = self.get(task_id)
        assert found is not None
        return found

    def get(self, task_id: int) -> TaskRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
        return _row(row) if row else None

    def list_tasks(
        self,
        instance_id: str,
        kind: str,
        *,
        task_id: int | None = None,
        bucket_name: str | None = None,
        path: str | None = None,
        offset: int,
        limit: int,
    ) -> tuple[list[TaskRow], int]:
        """Newest first, with the total matching count."""
        clauses: list[Any] = [tasks.c.instance_id == instance_id, tasks.c.kind == kind]
        if task_id is not None:
            clauses.append(tasks.c.id == task_id)
        if bucket_name is not None:
            clauses.append(tasks.c.bucket_name == bucket_name)
        if path is not None:
            clauses.append(tasks.c.path == path)
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(tasks).where(*clauses)).scalar_one()
            rows = conn.execute(
                select(tasks).where(*clauses).order_by(tasks.c.id.desc()).offset(offset).limit(limit)
            ).all()
        return [_row(r) for r in rows], int(total)

    def newest_id(self, instance_id: str, kind: str, status: str) -> int | None:
        """The id of the instance's newest task of this kind in this status."""
        with self._engine.connect() as conn:
            value = conn.execute(
                select(func.max(tasks.c.id)).where(
                    tasks.c.instance_id == instance_id, tasks.c.kind == kind, tasks.c.status == status
                )
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def pending(self) -> list[TaskRow]:
        """Every PROCESSING task, oldest first (the scheduler orders them across tenants)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(tasks).where(tasks.c.status == PROCESSING).order_by(tasks.c.id)).all()
        return [_row(r) for r in rows]

    def pending_ids(self) -> list[int]:
        with self._engine.connect() as conn:
            ids = conn.execute(
                select(tasks.c.id).where(tasks.c.status == PROCESSING).order_by(tasks.c.id)
            ).all()
        return [int(r[0]) for r in ids]

    def claim(self, task_id: int, holder: str, now: datetime, lease_until: datetime) -> TaskRow | None:
        """Take (or extend) the lease on a PROCESSING task; None when another live worker holds it."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status == PROCESSING,
                    or_(
                        tasks.c.lease_until.is_(None),
                        tasks.c.lease_until < now,
                        tasks.c.lease_holder == holder,
                    ),
                )
                .values(lease_holder=holder, lease_until=lease_until)
            )
        return self.get(task_id) if result.rowcount == 1 else None

    def release(self, task_id: int, holder: str) -> None:
        """Hand a lease back (graceful stop) so the next worker resumes at once."""
        with self._engine.begin() as conn:
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.lease_holder == holder)
                .values(lease_holder=None, lease_until=None)
            )

    def record_line(
        self,
        task_id: int,
        holder: str,
        line_no: int,
        error: LineError | None,
        *,
        counted: bool = True,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """Commit one line's outcome and the progress together (`counted` False: a blank line, progress
        only); False if the lease was lost or the line was already recorded (then nothing changes)."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status == PROCESSING,
                    tasks.c.lease_holder == holder,
                    tasks.c.progress < line_no,
                )
                .values(
                    progress=line_no,
                    succeeded=tasks.c.succeeded + (1 if counted and error is None else 0),
                    failed=tasks.c.failed + (1 if error else 0),
                    lease_until=lease_until,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return False
            if error is not None:
                conn.execute(
                    insert(task_errors).values(
                        task_id=task_id,
                        line_no=error.line_no,
                        operation=error.operation,
                        product_id=error.product_id,
                        pic_name=error.pic_name,
                        code=error.code,
                        message=error.message,
                    )
                )
        return True

    def record_lines(
        self,
        task_id: int,
        holder: str,
        outcomes: list[tuple[int, LineError | None, bool]],
        *,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """``record_line`` for consecutive lines at once, one transaction: each (line_no, error, counted),
        in line order; progress becomes the last one. False (and nothing changes) if the lease was lost
        or the first line was already recorded."""
        if not outcomes:
            return True
        failed = [error for _, error, _ in outcomes if error is not None]
        succeeded = sum(1 for _, error, counted in outcomes if counted and error is None)
        with self._engine.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status == PROCESSING,
                    tasks.c.lease_holder == holder,
                    tasks.c.progress < outcomes[0][0],
                )
                .values(
                    progress=outcomes[-1][0],
                    succeeded=tasks.c.succeeded + succeeded,
                    failed=tasks.c.failed + len(failed),
                    lease_until=lease_until,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return False
            if failed:
                conn.execute(
                    insert(task_errors),
                    [
                        {
                            "task_id": task_id,
                            "line_no": error.line_no,
                            "operation": error.operation,
                            "product_id": error.product_id,
                            "pic_name": error.pic_name,
                            "code": error.code,
                            "message": error.message,
                        }
                        for error in failed
                    ],
                )
        return True

    def finish(
        self, task_id: int, holder: str | None, status: str, code: str, msg: str, now: datetime
    ) -> bool:
        """End a PROCESSING task (holder None: regardless of the lease, for tasks that never ran)."""
        clauses: list[Any] = [tasks.c.id == task_id, tasks.c.status == PROCESSING]
        if holder is not None:
            clauses.append(tasks.c.lease_holder == holder)
        with self._engine.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(*clauses)
                .values(
                    status=status, code=code, msg=msg, updated_at=now, lease_holder=None, lease_until=None
                )
            )
        return result.rowcount == 1

    def errors(self, task_id: int) -> list[LineError]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(task_errors).where(task_errors.c.task_id == task_id).order_by(task_errors.c.line_no)
            ).all()
        return [
            LineError(int(r.line_no), r.operation, r.product_id, r.pic_name, r.code, r.message) for r in rows
        ]

    def iter_export_rows(self, instance_id: str, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every picture's metadata in Alibaba field names, by id (keyset pages, no long-held read)."""
        after = 0
        columns = [
            images.c.id,
            images.c.product_id,
            images.c.pic_name,
            images.c.category_id,
            *(images.c[slot.name] for slot in SLOTS),
            images.c.custom_content,
            images.c.region,
        ]
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(*columns)
                    .where(images.c.instance_id == instance_id, images.c.id > after)
                    .order_by(images.c.id)
                    .limit(batch)
                ).all()
            for r in rows:
                yield {
                    "ProductId": r.product_id,
                    "PicName": r.pic_name,
                    "CategoryId": int(r.category_id),
                    **Attributes.from_fields(r._mapping).by_alibaba_name(),
                    "CustomContent": r.custom_content,
                    "Region": r.region,
                }
            if len(rows) < batch:
                return
            after = int(rows[-1].id)
