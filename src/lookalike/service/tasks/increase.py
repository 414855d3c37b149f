"""IncreaseInstance: the ADD and DELETE lines of a tenant's increment.meta, applied in order.

* Lines go through ImageService.add_image / delete_images, the same use cases as the APIs: the same
  validation, capacity check and rate limit. A line refused by flow control (DeniedRequest) is retried after
  its retry_after, so a batch shares the instance's add/delete budget with online writes and never fails
  for it. An unavailable or vanished instance stops the task (FAIL); any other refusal fails only its line.
* A task that reads its file to the end is SUCCESS, with ErrorUrl when some lines failed; it is FAIL when it
  could not run to the end, or when every line failed.
* Each line's outcome and the task's progress commit in one transaction; a slice or a restarted worker
  resumes after the last committed line (adds are upserts and deletes are idempotent, so a line redone after
  a crash between its write and its progress commit changes nothing).
* With a bulk engine (a Ray cluster, lookalike.service.bulk_analysis) the lines are taken a window at a
  time: the window's ADD pictures are analysed on the engine together, then its lines are applied in order
  here (adds written a batch per transaction, deletes as always) and their outcomes and the progress
  committed in one transaction. A crash before that commit redoes the window.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from lookalike.clock import Clock
from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import loads_strict
from lookalike.domain.models import Account, Instance
from lookalike.service.accounts import AccountService
from lookalike.service.bulk_analysis import (
    Analysed,
    BulkAnalysisEngine,
    EngineChoice,
    PictureJob,
    StorageOptions,
)
from lookalike.service.images import ImageService
from lookalike.service.task_runner import Finished, TaskSlice
from lookalike.service.tasks.buckets import Buckets, meta_lines
from lookalike.service.tasks.links import TaskFiles
from lookalike.service.tasks.meta_items import (
    INVALID_META_ITEM,
    UNSUPPORTED_OPERATION,
    operation_of,
    picture_job,
    text_field,
)
from lookalike.storage.accounts_repo import InstanceRepository
from lookalike.storage.images_repo import NewPicture
from lookalike.storage.tasks_repo import FAIL, SUCCESS, LineError, TaskRepository, TaskRow

log = logging.getLogger(__name__)

_FATAL_CODES = frozenset({e.INVALID_INSTANCE, e.INSTANCE_STATUS_ERROR})


class _EngineFailed(Exception):
    """The bulk engine itself failed (not one picture): the task goes on on this server."""


class IncreaseRunner:
    def __init__(
        self,
        *,
        settings: Settings,
        repo: TaskRepository,
        images: ImageService,
        accounts: AccountService,
        instances: InstanceRepository,
        clock: Clock,
        buckets: Buckets,
        files: TaskFiles,
        sleep: Callable[[float], None],
        engine: EngineChoice,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._images = images
        self._accounts = accounts
        self._instances = instances
        self._clock = clock
        self._buckets = buckets
        self._files = files
        self._sleep = sleep
        # Where the pictures are analysed: a bulk engine (a Ray cluster), or None: here.
        self._bulk: BulkAnalysisEngine | None = engine.engine
        self._bulk_note = engine.note

    @property
    def engine_note(self) -> str:
        """Where the pictures are analysed, as the start-up log line says it."""
        return self._bulk_note

    def close(self) -> None:
        if self._bulk is not None:
            self._bulk.close()
            self._bulk = None

    def run_slice(self, task: TaskRow, work: TaskSlice) -> Finished | None:
        assert task.bucket_name is not None and task.path is not None
        try:
            account = self._accounts.get_account(task.account_id)
            # Checked again here: the operator may have taken the bucket from this account since.
            meta = self._buckets.meta_file(account, task.bucket_name, task.path)
            base = meta.parent
            root = self._buckets.root(account, task.bucket_name, task.path)
            instance = self._instances.get(task.instance_id)
            if instance is None or instance.status == "released":
                raise LookalikeError(e.INVALID_INSTANCE, "The instance no longer exists.")
            lines = meta_lines(meta, after=task.progress)
            if self._bulk is not None and not self._run_in_bulk(
                task, work, account, instance.name, root, base, meta, lines
            ):
                return None  # lost the lease
            for line_no, text in lines:  # without a bulk engine; with one, only after it failed
                outcome = self._apply_line(account, instance.name, root, base, line_no, text)
                if not self._repo.record_line(
                    task.id,
                    work.holder,
                    line_no,
                    outcome,
                    counted=bool(text.strip()),
                    now=work.now(),
                    lease_until=work.lease_until(),
                ):
                    return None  # lost the lease
                work.checkpoint()  # progress is committed per line: the next slice resumes after this one
        except LookalikeError as exc:
            self._write_errors(task)
            return Finished(FAIL, exc.code, exc.message)
        except OSError as exc:
            self._write_errors(task)
            return Finished(FAIL, "Console.InternalError", f"Reading {task.path} failed: {exc}")
        latest = self._repo.get(task.id)
        assert latest is not None
        self._write_errors(latest)
        summary = f"{latest.succeeded} lines applied, {latest.failed} failed."
        if latest.failed and not latest.succeeded:
            return Finished(FAIL, "AllLinesFailed", summary)
        return Finished(SUCCESS, "", summary)

    # --- on a bulk engine ---
    def _run_in_bulk(
        self,
        task: TaskRow,
        work: TaskSlice,
        account: Account,
        instance_name: str,
        root: Path,
        base: Path,
        meta: Path,
        lines: Iterator[tuple[int, str]],
    ) -> bool:
        """Apply ``lines`` through the bulk engine until they end (True) or the slice does (checkpoint
        raises); False when the lease was lost. If the engine itself fails, the window in hand is applied
        here, the engine is dropped (logged) and True returned: the caller goes on with the rest here."""
        engine = self._bulk
        assert engine is not None
        # The gate of an add, once a slice (the adds here are not paced by the instance's add rate).
        effective = self._images.console_instance(account, instance_name, active=True, rate_limited=False)
        if task.progress == 0:  # before anything is written: would the task's new pictures fit?
            self._images.check_room(effective, self._added_keys(meta))
        options = self._images.storage_options(effective)
        while True:
            window = list(itertools.islice(lines, engine.jobs_at_once))
            if not window:
                return True
            try:
                outcomes = self._bulk_window(
                    engine, task, work, account, effective, root, base, window, options
                )
            except _EngineFailed as failed:
                log.warning(
                    "task %s: the bulk engine failed (%s); IncreaseInstance tasks run on this server now",
                    task.id,
                    failed,
                )
                self._bulk, self._bulk_note = None, f"on this server: the bulk engine failed: {failed}"
                outcomes = [
                    (n, self._apply_line(account, instance_name, root, base, n, text), bool(text.strip()))
                    for n, text in window
                ]
                engine.close()
            if outcomes is None:
                return False
            if not self._repo.record_lines(
                task.id, work.holder, outcomes, now=work.now(), lease_until=work.lease_until()
            ):
                return False
            if self._bulk is None:
                return True
            work.checkpoint()

    def _added_keys(self, meta: Path) -> list[tuple[str, str]]:
        """The distinct (ProductId, PicName) of the file's ADD lines (for the capacity check; a line that
        will fail for another reason counts too: the check errs on the side of refusing)."""
        keys: dict[tuple[str, str], None] = {}
        for _, text in meta_lines(meta, after=0):
            try:
                item = loads_strict(text) if text.strip() else None
                if isinstance(item, dict) and operation_of(item) == "ADD":
                    keys[text_field(item, "ProductId"), text_field(item, "PicName")] = None
            except (ValueError, LookalikeError):
                continue  # that line fails on its own
        return list(keys)

    def _plan_line(
        self, root: Path, base: Path, line_no: int, text: str
    ) -> PictureJob | LineError | Literal["apply"]:
        """An ADD line's job for the engine, or its error; "apply": a line applied here, in its turn."""
        try:
            item = loads_strict(text) if text.strip() else None
        except ValueError:
            return "apply"  # _apply_line reports it
        if not isinstance(item, dict) or operation_of(item) != "ADD":
            return "apply"
        product_id, pic_name = "", ""
        try:
            product_id = text_field(item, "ProductId")
            pic_name = text_field(item, "PicName")
            job = self._picture_job(root, base, item, product_id, pic_name, key=str(line_no))
            ImageService.check_add_options(
                product_id, pic_name, job.attributes, job.custom_content, job.category_id
            )
            return job
        except LookalikeError as exc:
            if exc.code in _FATAL_CODES:
                raise
            return LineError(line_no, "ADD", product_id, pic_name, exc.code, exc.message)
        except OSError as exc:
            return LineError(
                line_no, "ADD", product_id, pic_name, e.PIC_NOT_EXIST, f"Reading the picture failed: {exc}"
            )

    def _bulk_window(
        self,
        engine: BulkAnalysisEngine,
        task: TaskRow,
        work: TaskSlice,
        account: Account,
        instance: Instance,
        root: Path,
        base: Path,
        window: list[tuple[int, str]],
        options: StorageOptions,
    ) -> list[tuple[int, LineError | None, bool]] | None:
        """One window's outcomes (line, error, counted), its adds and deletes applied; None: lease lost."""
        plans = [(n, text, self._plan_line(root, base, n, text)) for n, text in window]
        jobs = [plan for _, _, plan in plans if isinstance(plan, PictureJob)]
        analysed: dict[str, Analysed] = {}
        try:
            for batch in engine.analyse(jobs, options):
                analysed.update((outcome.key, outcome) for outcome in batch)
                # The cluster may take a while: keep the lease.
                if self._repo.claim(task.id, work.holder, work.now(), work.lease_until()) is None:
                    return None
        except Exception as exc:  # the engine's own failure (a picture's is its Analysed error)
            raise _EngineFailed(f"{type(exc).__name__}: {exc}") from exc
        errors: dict[int, LineError | None] = {}
        pending: dict[tuple[str, str], tuple[int, NewPicture]] = {}  # written together, in line order

        def flush() -> None:
            errors.update(self._store(instance, list(pending.values())))
            pending.clear()

        for line_no, text, plan in plans:
            if isinstance(plan, PictureJob):
                outcome = analysed[plan.key]
                if outcome.picture is None:
                    error = outcome.error or LookalikeError(e.INTERNAL_ERROR, "The engine gave no picture.")
                    errors[line_no] = LineError(
                        line_no, "ADD", plan.product_id, plan.pic_name, error.code, error.message
                    )
                    continue
                key = (plan.product_id, plan.pic_name)
                if key in pending:  # a batch's keys are distinct: the earlier line is written first
                    flush()
                pending[key] = (line_no, outcome.picture)
                errors[line_no] = None
            elif plan == "apply":
                flush()  # in the file's order: an ADD before a DELETE of the same key is written first
                errors[line_no] = self._apply_line(account, instance.name, root, base, line_no, text)
            else:
                errors[line_no] = plan
        flush()
        return [(n, errors[n], bool(text.strip())) for n, text in window]

    def _store(self, instance: Instance, adds: list[tuple[int, NewPicture]]) -> dict[int, LineError | None]:
        """Write analysed adds in one transaction. Should they not fit any more (online adds took the room
        since the check), one by one, as the local path writes them: those past the capacity fail."""
        if not adds:
            return {}
        try:
            self._images.store_analysed(instance, [picture for _, picture in adds])
            return {}
        except LookalikeError as exc:
            if exc.code != e.INSTANCE_OVER_QUOTA:
                raise
            if len(adds) > 1:
                return {n: error for add in adds for n, error in self._store(instance, [add]).items()}
            line_no, picture = adds[0]
            image = picture.image
            return {
                line_no: LineError(line_no, "ADD", image.product_id, image.pic_name, exc.code, exc.message)
            }

    # --- on this server ---
    def _apply_line(
        self, account: Account, instance_name: str, root: Path, base: Path, line_no: int, text: str
    ) -> LineError | None:
        """Apply one line; its failure as a LineError, or None. Retries flow-control refusals; raises
        for refusals that concern the whole task (instance gone or unavailable)."""
        if not text.strip():
            return None
        operation, product_id, pic_name = "", "", ""
        try:
            item = loads_strict(text)
        except ValueError as exc:  # not JSON, or JSON no store can keep (NaN, 1e400, "\ud800", deep)
            return LineError(line_no, "", "", "", INVALID_META_ITEM, f"The line is not valid JSON: {exc}.")
        while True:
            try:
                if not isinstance(item, dict):
                    raise LookalikeError(INVALID_META_ITEM, "The line is not a JSON object.")
                operation = operation_of(item)
                product_id = text_field(item, "ProductId")
                pic_name = text_field(item, "PicName")
                if operation == "ADD":
                    self._add(account, instance_name, root, base, item, product_id, pic_name)
                elif operation == "DELETE":
                    self._images.delete_images(
                        account, instance_name, product_id=product_id, pic_name=pic_name or None
                    )
                else:
                    raise LookalikeError(UNSUPPORTED_OPERATION, "OperationType must be ADD or DELETE.")
                return None
            except LookalikeError as exc:
                if exc.code == e.DENIED_REQUEST:
                    self._sleep(max(exc.retry_after or 0.0, 0.05))
                    continue
                if exc.code in _FATAL_CODES:
                    raise
                return LineError(line_no, operation, product_id, pic_name, exc.code, exc.message)
            except OSError as exc:
                return LineError(
                    line_no,
                    operation,
                    product_id,
                    pic_name,
                    e.PIC_NOT_EXIST,
                    f"Reading the picture failed: {exc}",
                )
            except Exception as exc:  # a bug must fail its line, not wedge the task in a retry loop
                log.exception("task line %s failed unexpectedly", line_no)
                return LineError(line_no, operation, product_id, pic_name, e.INTERNAL_ERROR, repr(exc)[:500])

    def _add(
        self,
        account: Account,
        instance_name: str,
        root: Path,
        base: Path,
        item: dict[str, Any],
        product_id: str,
        pic_name: str,
    ) -> None:
        job = self._picture_job(root, base, item, product_id, pic_name, key="")
        self._images.add_image(
            account,
            instance_name,
            product_id=product_id,
            pic_name=pic_name,
            picture=Path(job.path).read_bytes(),
            category_id=job.category_id,
            crop=job.crop,
            region=job.region,
            attributes=job.attributes,
            custom_content=job.custom_content,
        )

    def _picture_job(
        self, root: Path, base: Path, item: dict[str, Any], product_id: str, pic_name: str, *, key: str
    ) -> PictureJob:
        max_bytes = self._settings.image_limits.max_bytes
        return picture_job(root, base, item, product_id, pic_name, key=key, max_bytes=max_bytes)

    def _write_errors(self, task: TaskRow) -> None:
        errors = self._repo.errors(task.id)
        if not errors:
            return
        target = self._files.file_for(task)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            for err in errors:
                entry = {
                    "Line": err.line_no,
                    "OperationType": err.operation,
                    "ProductId": err.product_id,
                    "PicName": err.pic_name,
                    "Code": err.code,
                    "Message": err.message,
                }
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        os.replace(temporary, target)
