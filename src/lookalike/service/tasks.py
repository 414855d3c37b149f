"""Export (DumpMeta) and batch (IncreaseInstance) tasks, run by one background worker thread.

Decisions:
* Batch lines go through ImageService.add_image / delete_images, the same use cases as the APIs: the same
  validation, capacity check and rate limit. A line refused by flow control (DeniedRequest) is retried after
  its retry_after, so a batch shares the instance's add/delete budget with online writes and never fails
  for it. An unavailable or vanished instance stops the task (FAIL); any other refusal fails only its line.
* A batch task that reads its file to the end is SUCCESS, with ErrorUrl when some lines failed; it is FAIL
  when it could not run to the end, or when every line failed.
* Crash safety: each line's outcome and the task's progress commit in one transaction; a restarted worker
  resumes after the last committed line (adds are upserts and deletes are idempotent, so a line redone
  after a crash between its write and its progress commit changes nothing). Exports restart from scratch
  into a temporary file that replaces the final one. A lease on the task keeps two processes off one task.
* Download links (MetaUrl, ErrorUrl) are `{public_base_url}/v1/exports/{id}?expires=…&signature=…`,
  HMAC-SHA256 over the task id and expiry under a random key kept in the data dir, valid 2 hours from issue.
* CallbackAddress must name an operator allow-listed host (refused at submission otherwise); the callback
  is a JSON POST with a short timeout on its own thread, never retried and never blocking the task.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx

from lookalike.clock import Clock
from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.attributes import INT_SLOTS, STR_SLOTS
from lookalike.domain.errors import LookalikeError
from lookalike.domain.loose_values import JSON_YES_NO, loads_strict, parse_bool, parse_int, parse_text
from lookalike.domain.models import Account, Attributes, Instance
from lookalike.service.accounts import AccountService
from lookalike.service.bulk_analysis import (
    Analysed,
    BulkAnalysisEngine,
    EngineChoice,
    PictureJob,
    StorageOptions,
)
from lookalike.service.images import ImageService
from lookalike.service.task_runner import TaskRunner, TaskSlice
from lookalike.storage.accounts_repo import InstanceRepository
from lookalike.storage.images_repo import NewPicture
from lookalike.storage.tasks_repo import (
    DUMP,
    FAIL,
    INCREASE,
    PROCESSING,
    SUCCESS,
    LineError,
    TaskRepository,
    TaskRow,
)

log = logging.getLogger(__name__)

TASK_ALREADY_EXIST: Final = "Console.TaskAlreadyExist"  # HTTP 409 (raised with status=409)
INVALID_META_ITEM: Final = "InvalidMetaItem"  # an increment.meta line that is not a valid item
UNSUPPORTED_OPERATION: Final = "UnsupportedOperationType"
LINK_TTL_S: Final = 2 * 60 * 60
LEASE_S: Final = 120.0
POLL_S: Final = 5.0
MAX_PAGE_SIZE: Final = 500  # the API metadata's maximum (the SDK docstring says 30; 500 accepts both)
META_FILE: Final = "increment.meta"
LINK_KEY_FILE: Final = "download-link.key"
_FATAL_CODES = frozenset({e.INVALID_INSTANCE, e.INSTANCE_STATUS_ERROR})


@dataclass(frozen=True)
class TaskView:
    """A task as the list actions show it; `url` is MetaUrl (exports) or ErrorUrl (batches), or ""."""

    task: TaskRow
    url: str


@dataclass(frozen=True)
class TaskPage:
    items: list[TaskView]
    page_number: int
    page_size: int
    total: int


def load_link_key(data_dir: Path) -> bytes:
    """The download-link HMAC key: random, created once (mode 0600) in the data dir."""
    path = data_dir / LINK_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
            handle.flush()
            os.fsync(handle.fileno())
    return path.read_bytes()


def resolve_in_bucket(root: Path, relative: str, start: Path | None = None) -> Path:
    """`relative` inside the bucket root: from the root when it starts with "/" (or no `start` is
    given), else from `start`. Refuses `..`, NUL, and anything that resolves (through symlinks too)
    outside the root."""
    if "\x00" in relative or ".." in PurePosixPath(relative).parts:
        raise LookalikeError(e.INVALID_PARAMETER, f"The path {relative[:200]!r} leaves the bucket.")
    real_root = Path(os.path.realpath(root))
    origin = real_root if start is None or relative.startswith("/") else start
    real = Path(os.path.realpath(origin / relative.lstrip("/")))
    if not real.is_relative_to(real_root):
        raise LookalikeError(e.INVALID_PARAMETER, f"The path {relative[:200]!r} leaves the bucket.")
    return real


def _no_meta_file(bucket_name: str, path: str) -> LookalikeError:
    return LookalikeError(
        e.INVALID_PARAMETER, f"No {META_FILE} file at {path[:200]!r} in bucket {bucket_name[:128]!r}."
    )


def _paging(page_number: int | None, page_size: int | None) -> tuple[int, int]:
    number = 1 if page_number is None else page_number
    size = 10 if page_size is None else page_size
    if number < 1:
        raise LookalikeError(e.INVALID_PARAMETER, "PageNumber must be 1 or more.")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise LookalikeError(e.INVALID_PARAMETER, f"PageSize must be between 1 and {MAX_PAGE_SIZE}.")
    return number, size


class _Stopped(Exception):
    """The worker was asked to stop in the middle of a task."""


class _EngineFailed(Exception):
    """The bulk engine itself failed (not one picture): the task goes on on this server."""


class _Yield(Exception):
    """A batch task used up its time slice: it goes back to the queue, where other tenants come first."""


class TaskService:
    def __init__(
        self,
        *,
        settings: Settings,
        repo: TaskRepository,
        images: ImageService,
        accounts: AccountService,
        instances: InstanceRepository,
        clock: Clock,
        link_key: bytes,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        runners: Mapping[str, TaskRunner] | None = None,
        increase_engine: EngineChoice | None = None,
    ) -> None:
        self._settings = settings
        self._runners = dict(runners or {})  # kinds run elsewhere (duplicate reports), by kind
        self._repo = repo
        self._images = images
        self._accounts = accounts
        self._instances = instances
        self._clock = clock
        self._key = link_key
        self._holder = f"tasks-{secrets.token_hex(6)}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._schedule_lock = threading.Lock()
        self._running: set[int] = set()  # task ids a thread of this process runs now
        self._served: dict[tuple[str, str], int] = {}  # ("account"|"instance", id) -> last slice's number
        self._served_tick = 0
        self._finished = 0
        self._monotonic = monotonic
        self._sleep = sleep or self._interruptible_sleep
        self._dir = settings.data_dir / "tasks"
        # Where IncreaseInstance tasks analyse their pictures: a bulk engine (a Ray cluster), or None: here.
        choice = increase_engine or EngineChoice(None, "on this server")
        self._bulk = choice.engine
        self._bulk_note = choice.note

    @property
    def increase_engine(self) -> str:
        """Where IncreaseInstance tasks analyse their pictures, as the start-up log line says it."""
        return self._bulk_note

    # --- submission ---
    def start_dump(self, account: Account, instance_name: str) -> TaskRow:
        instance = self._images.console_instance(account, instance_name)
        task = self._repo.create(
            kind=DUMP, account_id=account.id, instance_id=instance.id, now=self._clock.now()
        )
        if task is None:
            raise LookalikeError(
                TASK_ALREADY_EXIST,
                "A task that is in progress already exists: an export is running.",
                status=409,
            )
        self._wake.set()
        return task

    def start_increase(
        self,
        account: Account,
        instance_name: str,
        *,
        bucket_name: str | None,
        path: str | None,
        callback_address: str | None = None,
    ) -> TaskRow:
        if not bucket_name:
            raise LookalikeError(e.INVALID_PARAMETER, "BucketName is required.")
        if not path:
            raise LookalikeError(e.INVALID_PARAMETER, "Path is required.")
        # The instance first: a tenant learns nothing about buckets before it has proved the instance is its.
        self._images.console_instance(account, instance_name, active=True, rate_limited=False)
        self._meta_file(account, bucket_name, path)  # refuse a bad bucket or path now, not in the worker
        if callback_address:
            self._check_callback(callback_address)
        instance = self._images.console_instance(account, instance_name, active=True)
        task = self._repo.create(
            kind=INCREASE,
            account_id=account.id,
            instance_id=instance.id,
            now=self._clock.now(),
            bucket_name=bucket_name,
            path=path,
            callback_address=callback_address or None,
        )
        if task is None:
            raise LookalikeError(
                TASK_ALREADY_EXIST,
                "A task that is in progress already exists: a batch task is running on this instance.",
                status=409,
            )
        self._wake.set()
        return task

    def _bucket_root(self, account: Account, bucket_name: str, path: str) -> Path:
        """The bucket's directory, if `account` may use it. An unknown bucket and another tenant's bucket
        answer exactly like a bucket without the file, so no tenant can learn which buckets or files exist."""
        bucket = self._settings.buckets.get(bucket_name)
        if bucket is None or not bucket.allows(account.id, account.name):
            raise _no_meta_file(bucket_name, path)
        return bucket.root

    def _meta_file(self, account: Account, bucket_name: str, path: str) -> Path:
        """The increment.meta a task reads: Path names the file (or its directory) inside the bucket."""
        if not path.startswith("/") or (path.endswith("/") and path != "/"):
            raise LookalikeError(e.INVALID_PARAMETER, "Path must start with '/' and must not end with '/'.")
        root = self._bucket_root(account, bucket_name, path)
        target = resolve_in_bucket(root, path)
        if target.is_dir():
            target = resolve_in_bucket(root, f"{path.rstrip('/')}/{META_FILE}")
        if not target.is_file():
            raise _no_meta_file(bucket_name, path)
        return target

    def _check_callback(self, address: str) -> None:
        parts = urlsplit(address)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise LookalikeError(e.INVALID_PARAMETER, "CallbackAddress must be an http(s) URL.")
        if host not in self._settings.callback_hosts:
            raise LookalikeError(
                e.INVALID_PARAMETER,
                f"CallbackAddress host {host!r} is not on this server's callback allow-list "
                "(LOOKALIKE_CALLBACK_HOSTS).",
            )

    # --- listing ---
    def list_dumps(
        self,
        account: Account,
        instance_name: str,
        *,
        task_id: int | None = None,
        page_number: int | None = None,
        page_size: int | None = None,
    ) -> TaskPage:
        number, size = _paging(page_number, page_size)
        instance = self._images.console_instance(account, instance_name)
        rows, total = self._repo.list_tasks(
            instance.id, DUMP, task_id=task_id, offset=(number - 1) * size, limit=size
        )
        return TaskPage([TaskView(r, self._url_for(r)) for r in rows], number, size, total)

    def list_increases(
        self,
        account: Account,
        instance_name: str,
        *,
        task_id: int | None = None,
        bucket_name: str | None = None,
        path: str | None = None,
        page_number: int | None = None,
        page_size: int | None = None,
    ) -> TaskPage:
        number, size = _paging(page_number, page_size)
        instance: Instance = self._images.console_instance(account, instance_name)
        rows, total = self._repo.list_tasks(
            instance.id,
            INCREASE,
            task_id=task_id,
            bucket_name=bucket_name,
            path=path,
            offset=(number - 1) * size,
            limit=size,
        )
        return TaskPage([TaskView(r, self._url_for(r)) for r in rows], number, size, total)

    # --- download links ---
    def _file_for(self, task: TaskRow) -> Path:
        name = "meta.jsonl" if task.kind == DUMP else "errors.jsonl"
        return self._dir / str(task.id) / name

    def _url_for(self, task: TaskRow) -> str:
        if task.kind == DUMP and task.status != SUCCESS:
            return ""
        if task.kind == INCREASE and (task.status == PROCESSING or task.failed == 0):
            return ""
        return self.signed_url(task.id)

    def _signature(self, task_id: int, expires: int) -> str:
        return hmac.new(self._key, f"task-file:{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, task_id: int) -> str:
        expires = math.ceil(self._clock.timestamp()) + LINK_TTL_S  # at least the full 2 hours
        base = self._settings.public_base_url.rstrip("/")
        return f"{base}/v1/exports/{task_id}?expires={expires}&signature={self._signature(task_id, expires)}"

    def open_download(self, task_id: int, expires: str | None, signature: str | None) -> tuple[Path, str]:
        """The file behind a signed link and a download name; 403 for a bad or expired link."""
        try:
            expires_at = int(expires or "")
        except ValueError:
            expires_at = -1
        expected = self._signature(task_id, expires_at)
        if expires_at < 0 or not hmac.compare_digest(expected, signature or ""):
            raise LookalikeError(e.NO_PERMISSION, "The download link is not valid.", status=403)
        if self._clock.timestamp() > expires_at:
            raise LookalikeError(e.NO_PERMISSION, "The download link has expired.", status=403)
        task = self._repo.get(task_id)
        if task is None or not self._url_for(task):
            raise LookalikeError("NotFound", "There is no file for this task.", status=404)
        path = self._file_for(task)
        if not path.is_file():
            raise LookalikeError("NotFound", "The task's file is gone.", status=404)
        name = f"dump-{task.id}.meta" if task.kind == DUMP else f"increment-{task.id}-errors.jsonl"
        return path, name

    # --- the workers ---
    def start(self) -> None:
        """Run tasks on `task_workers` background threads: pending ones (resuming after a crash) now, new
        ones as they are submitted, and every few seconds those other processes left behind."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    ran = self._run_next()
                except Exception:
                    log.exception("task worker pass failed")
                    ran = False
                if not ran:
                    self._wake.wait(POLL_S)
                    self._wake.clear()

        for number in range(max(1, self._settings.task_workers)):
            thread = threading.Thread(target=loop, name=f"task-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """A task was submitted elsewhere (a duplicate report): look for work now, not at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if self._bulk is not None:
            self._bulk.close()
            self._bulk = None

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def run_pending(self) -> int:
        """Run every PROCESSING task this process can lease, slice after slice, until none is left;
        returns how many finished. Tests call it directly for a deterministic run."""
        finished = 0
        while not self._stop.is_set():
            before = self._finished
            if not self._run_next():
                break
            finished += self._finished - before
        return finished

    def _next_task(self) -> TaskRow | None:
        """Lease the task to run next: fair across tenants, then across instances. The account (then the
        instance) served least recently goes first, so a tenant with a long import waits behind every
        other tenant's task at each slice, never the other way round. Tasks another thread of this process
        runs are skipped; those another process leases fail the claim."""
        with self._schedule_lock:
            candidates = [t for t in self._repo.pending() if t.id not in self._running]
            candidates.sort(
                key=lambda t: (
                    self._served.get(("account", t.account_id), 0),
                    self._served.get(("instance", t.instance_id), 0),
                    t.id,
                )
            )
            for candidate in candidates:
                task = self._repo.claim(candidate.id, self._holder, self._clock.now(), self._lease_until())
                if task is None:
                    continue
                self._running.add(task.id)
                self._served_tick += 1  # a counter, not a clock: ties broken by order of service
                self._served["account", task.account_id] = self._served_tick
                self._served["instance", task.instance_id] = self._served_tick
                return task
        return None

    def _run_next(self) -> bool:
        """Run one slice of the next task; False when there was nothing to run."""
        task = self._next_task()
        if task is None:
            return False
        try:
            done = self._run(task)
        except (_Stopped, _Yield):
            # Hand the lease back: the next slice may go to another thread or another process.
            self._repo.release(task.id, self._holder)
            self._wake.set()
            return True
        finally:
            with self._schedule_lock:
                self._running.discard(task.id)
        if done is not None:
            self._finished += 1
            self._notify(done)
        return True

    def _run(self, task: TaskRow) -> TaskRow | None:
        if task.kind == DUMP:
            return self._run_dump(task)
        if task.kind == INCREASE:
            return self._run_increase(task)
        runner = self._runners.get(task.kind)
        if runner is None:
            return self._finish(task, FAIL, e.INTERNAL_ERROR, f"No worker runs {task.kind!r} tasks.")
        slice_ends = self._monotonic() + self._settings.task_slice_s

        def checkpoint() -> None:
            if self._stop.is_set():
                raise _Stopped
            if self._monotonic() >= slice_ends:
                raise _Yield

        outcome = runner.run_slice(
            task, TaskSlice(self._holder, self._clock.now, self._lease_until, checkpoint)
        )
        return None if outcome is None else self._finish(task, outcome.status, outcome.code, outcome.msg)

    def _lease_until(self) -> datetime:
        return self._clock.now() + timedelta(seconds=LEASE_S)

    def _renew(self, task: TaskRow) -> bool:
        return self._repo.claim(task.id, self._holder, self._clock.now(), self._lease_until()) is not None

    def _finish(self, task: TaskRow, status: str, code: str, msg: str) -> TaskRow | None:
        if not self._repo.finish(task.id, self._holder, status, code, msg, self._clock.now()):
            return None  # lost the lease: another worker owns the task now
        return self._repo.get(task.id)

    def _run_dump(self, task: TaskRow) -> TaskRow | None:
        target = self._file_for(task)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        count = 0
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                for row in self._repo.iter_export_rows(task.instance_id):
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                    count += 1
                    if count % 1000 == 0:
                        if self._stop.is_set():
                            raise _Stopped
                        if not self._renew(task):
                            return None
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            log.exception("export task %s failed", task.id)
            return self._finish(task, FAIL, "Console.InternalError", f"Writing the export failed: {exc}")
        return self._finish(task, SUCCESS, "", f"{count} pictures exported.")

    def _run_increase(self, task: TaskRow) -> TaskRow | None:
        assert task.bucket_name is not None and task.path is not None
        try:
            account = self._accounts.get_account(task.account_id)
            # Checked again here: the operator may have taken the bucket from this account since.
            meta = self._meta_file(account, task.bucket_name, task.path)
            base = meta.parent
            root = self._bucket_root(account, task.bucket_name, task.path)
            instance = self._instances.get(task.instance_id)
            if instance is None or instance.status == "released":
                raise LookalikeError(e.INVALID_INSTANCE, "The instance no longer exists.")
            lines = self._lines(meta, after=task.progress)
            slice_ends = self._monotonic() + self._settings.task_slice_s
            bulk = self._bulk is not None
            if bulk and not self._run_in_bulk(
                task, account, instance.name, root, base, meta, lines, slice_ends
            ):
                return None  # lost the lease
            for line_no, text in lines:  # without a bulk engine; with one, only after it failed
                outcome = self._apply_line(account, instance.name, root, base, line_no, text)
                if not self._repo.record_line(
                    task.id,
                    self._holder,
                    line_no,
                    outcome,
                    counted=bool(text.strip()),
                    now=self._clock.now(),
                    lease_until=self._lease_until(),
                ):
                    return None  # lost the lease
                if self._monotonic() >= slice_ends:
                    raise _Yield  # progress is committed per line: the next slice resumes after this one
        except LookalikeError as exc:
            self._write_errors(task)
            return self._finish(task, FAIL, exc.code, exc.message)
        except OSError as exc:
            self._write_errors(task)
            return self._finish(task, FAIL, "Console.InternalError", f"Reading {task.path} failed: {exc}")
        latest = self._repo.get(task.id)
        assert latest is not None
        self._write_errors(latest)
        summary = f"{latest.succeeded} lines applied, {latest.failed} failed."
        if latest.failed and not latest.succeeded:
            return self._finish(task, FAIL, "AllLinesFailed", summary)
        return self._finish(task, SUCCESS, "", summary)

    # --- IncreaseInstance on a bulk engine (lookalike.service.bulk_analysis) ---
    # The lines are taken a window at a time: the window's ADD pictures are analysed on the engine together,
    # then its lines are applied in order on this server (adds written a batch per transaction, deletes as
    # always) and their outcomes and the progress committed in one transaction. A crash before that commit
    # redoes the window: adds are upserts and deletes are idempotent, so nothing is lost or doubled.

    def _run_in_bulk(
        self,
        task: TaskRow,
        account: Account,
        instance_name: str,
        root: Path,
        base: Path,
        meta: Path,
        lines: Iterator[tuple[int, str]],
        slice_ends: float,
    ) -> bool:
        """Apply ``lines`` through the bulk engine until they end (True) or the slice does (raises _Yield);
        False when the lease was lost. If the engine itself fails, the window in hand is applied here, the
        engine is dropped (logged) and True returned: the caller goes on with the rest of ``lines`` here."""
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
                outcomes = self._bulk_window(engine, task, account, effective, root, base, window, options)
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
                task.id, self._holder, outcomes, now=self._clock.now(), lease_until=self._lease_until()
            ):
                return False
            if self._bulk is None:
                return True
            if self._monotonic() >= slice_ends:
                raise _Yield

    def _added_keys(self, meta: Path) -> list[tuple[str, str]]:
        """The distinct (ProductId, PicName) of the file's ADD lines (for the capacity check; a line that
        will fail for another reason counts too: the check errs on the side of refusing)."""
        keys: dict[tuple[str, str], None] = {}
        for _, text in self._lines(meta, after=0):
            try:
                item = loads_strict(text) if text.strip() else None
                if isinstance(item, dict) and str(item.get("OperationType") or "").upper() == "ADD":
                    keys[_text(item, "ProductId"), _text(item, "PicName")] = None
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
        if not isinstance(item, dict) or str(item.get("OperationType") or "").upper() != "ADD":
            return "apply"
        product_id, pic_name = "", ""
        try:
            product_id = _text(item, "ProductId")
            pic_name = _text(item, "PicName")
            job = self._add_job(root, base, item, product_id, pic_name, key=str(line_no))
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
                if not self._renew(task):  # the cluster may take a while: keep the lease
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

    @staticmethod
    def _lines(meta: Path, *, after: int) -> Iterator[tuple[int, str]]:
        with meta.open("rb") as handle:
            for line_no, raw in enumerate(handle, 1):
                if line_no > after:
                    yield line_no, raw.decode("utf-8", errors="replace")

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
                operation = str(item.get("OperationType") or "").upper()
                product_id = _text(item, "ProductId")
                pic_name = _text(item, "PicName")
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
        job = self._add_job(root, base, item, product_id, pic_name, key="")
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

    def _add_job(
        self, root: Path, base: Path, item: dict[str, Any], product_id: str, pic_name: str, *, key: str
    ) -> PictureJob:
        """An ADD line's picture file and options (raises that line's error)."""
        if not pic_name:
            raise LookalikeError(e.NO_SPECIFIED_PIC_NAME, "The parameter PicName no specified.")
        # PicName is the picture's path: relative to increment.meta's folder, or absolute in the bucket.
        picture_path = resolve_in_bucket(root, pic_name, base)
        if not picture_path.is_file():
            raise LookalikeError(e.PIC_NOT_EXIST, f"No picture file {pic_name[:200]!r} in the bucket.")
        limit = self._settings.image_limits.max_bytes
        if picture_path.stat().st_size > limit:
            raise e.pic_too_large(limit)
        category = item.get("CategoryId")
        return PictureJob(
            key=key,
            path=str(picture_path),
            product_id=product_id,
            pic_name=pic_name,
            category_id=None if category is None else _integer(category, "CategoryId", e.INVALID_CATEGORY),
            crop=_boolean(item.get("Crop", True)),
            region=_text(item, "Region") or None,
            attributes=_attributes(item),
            custom_content=_text(item, "CustomContent"),
        )

    def _write_errors(self, task: TaskRow) -> None:
        errors = self._repo.errors(task.id)
        if not errors:
            return
        target = self._file_for(task)
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

    # --- callbacks ---
    def _notify(self, task: TaskRow) -> None:
        if task.kind != INCREASE or not task.callback_address:
            return
        address = task.callback_address
        try:
            self._check_callback(address)  # the allow-list may have shrunk since submission
        except LookalikeError:
            log.warning("task %s: callback host no longer allowed, not called", task.id)
            return
        body = {
            "Id": task.id,
            "Status": task.status,
            "Code": task.code,
            "Msg": task.msg,
            "BucketName": task.bucket_name,
            "Path": task.path,
            "ErrorUrl": self._url_for(task),
        }
        timeout = self._settings.callback_timeout_s

        def post() -> None:
            try:
                httpx.post(address, json=body, timeout=timeout, follow_redirects=False)
            except httpx.HTTPError as exc:
                log.warning("task %s: callback to %s failed: %s", task.id, address, exc)

        threading.Thread(target=post, name=f"task-callback-{task.id}", daemon=True).start()


def _attributes(item: dict[str, Any]) -> Attributes:
    # An increment.meta item names the slots as the Alibaba API does (IntAttr, StrAttr2, ...).
    fields: dict[str, int | str] = {}
    for slot in INT_SLOTS:
        fields[slot.name] = _integer(item.get(slot.alibaba), slot.alibaba, slot.error_code)
    for slot in STR_SLOTS:
        fields[slot.name] = _text(item, slot.alibaba)
    return Attributes.from_fields(fields)


def _text(item: dict[str, Any], key: str) -> str:
    try:
        return parse_text(item.get(key))
    except ValueError:
        raise LookalikeError(INVALID_META_ITEM, f"{key} must be a string.") from None


def _integer(value: Any, key: str, code: str) -> int:
    if value is None:
        return 0
    try:
        return parse_int(value)
    except ValueError as exc:
        raise LookalikeError(code, f"{key} must be a whole number: {exc}.") from None


def _boolean(value: Any) -> bool:
    try:
        return parse_bool(value, JSON_YES_NO)
    except ValueError:
        raise LookalikeError(INVALID_META_ITEM, "Crop must be true or false.") from None
