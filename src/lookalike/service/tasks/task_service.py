"""Tasks: export (DumpMeta), batch (IncreaseInstance) and duplicate reports, queued in the database and run
by background worker threads a time slice at a time, fairly across tenants.

A lease on the task keeps two processes off one task; a runner commits its progress under that lease, so a
task a crash interrupted resumes where its last commit left it."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from lookalike.clock import Clock
from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, Instance
from lookalike.service.accounts import AccountService
from lookalike.service.bulk_analysis import EngineChoice
from lookalike.service.images import ImageService
from lookalike.service.task_runner import Finished, SliceUsedUp, Stopped, TaskRunner, TaskSlice
from lookalike.service.tasks.buckets import Buckets
from lookalike.service.tasks.callbacks import Callbacks
from lookalike.service.tasks.dump import DumpRunner
from lookalike.service.tasks.increase import IncreaseRunner
from lookalike.service.tasks.links import TaskFiles
from lookalike.storage.accounts_repo import InstanceRepository
from lookalike.storage.tasks_repo import DUMP, FAIL, INCREASE, TaskRepository, TaskRow

log = logging.getLogger(__name__)

TASK_ALREADY_EXIST: Final = "Console.TaskAlreadyExist"  # HTTP 409 (raised with status=409)
LEASE_S: Final = 120.0
POLL_S: Final = 5.0
MAX_PAGE_SIZE: Final = 500  # the API metadata's maximum (the SDK docstring says 30; 500 accepts both)


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


def _paging(page_number: int | None, page_size: int | None) -> tuple[int, int]:
    number = 1 if page_number is None else page_number
    size = 10 if page_size is None else page_size
    if number < 1:
        raise LookalikeError(e.INVALID_PARAMETER, "PageNumber must be 1 or more.")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise LookalikeError(e.INVALID_PARAMETER, f"PageSize must be between 1 and {MAX_PAGE_SIZE}.")
    return number, size


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
        self._repo = repo
        self._images = images
        self._clock = clock
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
        self._buckets = Buckets(settings)
        self._files = TaskFiles(
            tasks_dir=settings.data_dir / "tasks",
            public_base_url=settings.public_base_url,
            key=link_key,
            clock=clock,
            repo=repo,
        )
        self._callbacks = Callbacks(settings, self._files)
        self._increase = IncreaseRunner(
            settings=settings,
            repo=repo,
            images=images,
            accounts=accounts,
            instances=instances,
            clock=clock,
            buckets=self._buckets,
            files=self._files,
            sleep=sleep or self._interruptible_sleep,
            engine=increase_engine or EngineChoice(None, "on this server"),
        )
        # Each kind of task and what runs it; duplicate reports run in lookalike.service.duplicates.
        self._runners: dict[str, TaskRunner] = {
            DUMP: DumpRunner(repo, self._files),
            INCREASE: self._increase,
            **(runners or {}),
        }

    @property
    def increase_engine(self) -> str:
        """Where IncreaseInstance tasks analyse their pictures, as the start-up log line says it."""
        return self._increase.engine_note

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
        self._buckets.meta_file(account, bucket_name, path)  # refuse a bad bucket or path now, not later
        if callback_address:
            self._callbacks.check(callback_address)
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

    # --- listing and files ---
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
        return TaskPage([TaskView(r, self._files.url_for(r)) for r in rows], number, size, total)

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
        return TaskPage([TaskView(r, self._files.url_for(r)) for r in rows], number, size, total)

    def signed_url(self, task_id: int) -> str:
        return self._files.signed_url(task_id)

    def open_download(self, task_id: int, expires: str | None, signature: str | None) -> tuple[Path, str]:
        """The file behind a signed link and a download name; 403 for a bad or expired link."""
        return self._files.open_download(task_id, expires, signature)

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
        self._increase.close()

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Stopped

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
        except (Stopped, SliceUsedUp):
            # Hand the lease back: the next slice may go to another thread or another process.
            self._repo.release(task.id, self._holder)
            self._wake.set()
            return True
        finally:
            with self._schedule_lock:
                self._running.discard(task.id)
        if done is not None:
            self._finished += 1
            self._callbacks.notify(done)
        return True

    def _run(self, task: TaskRow) -> TaskRow | None:
        """One slice of the task; the finished task, or None (the slice ended, or the lease was lost)."""
        runner = self._runners.get(task.kind)
        if runner is None:
            return self._finish(
                task, Finished(FAIL, e.INTERNAL_ERROR, f"No worker runs {task.kind!r} tasks.")
            )
        slice_ends = self._monotonic() + self._settings.task_slice_s

        def checkpoint() -> None:
            if self._stop.is_set():
                raise Stopped
            if self._monotonic() >= slice_ends:
                raise SliceUsedUp

        work = TaskSlice(self._holder, self._clock.now, self._lease_until, checkpoint, self._stop.is_set)
        outcome = runner.run_slice(task, work)
        return None if outcome is None else self._finish(task, outcome)

    def _lease_until(self) -> datetime:
        return self._clock.now() + timedelta(seconds=LEASE_S)

    def _finish(self, task: TaskRow, outcome: Finished) -> TaskRow | None:
        now = self._clock.now()
        if not self._repo.finish(task.id, self._holder, outcome.status, outcome.code, outcome.msg, now):
            return None  # lost the lease: another worker owns the task now
        return self._repo.get(task.id)
