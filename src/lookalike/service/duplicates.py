"""Duplicate reports: which pictures of a catalogue are copies of each other.

A report is a task (the `tasks` table, kind "duplicates", run by the task worker a slice at a time, fair
across tenants). Its scan reads the instance's pictures in id order, a batch at a time; each picture is
searched in the instance's own index with its stored views for its nearest neighbours, and every pair
whose score (the search's re-score: best cosine between the two pictures' stored views) reaches the
report's threshold is kept. Decisions:

* Bounded memory: a batch of pictures and their neighbours at a time; the pairs go to SQL with the scan's
  cursor in one transaction, so a crash or a restart resumes after the last committed batch and no pair
  is lost or counted twice. Only the grouping at the end holds the pictures that have a pair.
* Groups (lookalike.domain.duplicates): every member is a copy of the group's centre, the suggested picture
  to keep; pairs alone would chain a hundred different star drawings into one group
  (bench/duplicates_bench.py). Each set of linked pictures (up to 2,000) is scored in full from the stored
  vectors first, so a picture uploaded many times makes one group however few neighbours the scan kept.
* The threshold defaults to 0.75 (lookalike.domain.duplicates says why it is below a search's 0.87);
  0.5-1.0 is accepted.
* One report runs per instance at a time; a finished report replaces the instance's previous one.
* Pictures deleted after the scan drop out of the groups when they are read (a group left with one
  picture is no longer shown), so "keep one" and other deletes never show stale groups.
* Starting a report is a console action (rate limited like DumpMeta); reading one is too, except the
  result pages, which a console page reads often. "Keep one" deletes the group's other pictures in one
  transaction, as one delete call against the instance's delete QPS (as a delete by filter is).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.duplicates import DEFAULT_THRESHOLD, group_pairs, validate_threshold
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, ImageRecord, Instance
from lookalike.service.images import ImageService
from lookalike.service.task_runner import Finished, TaskSlice
from lookalike.storage.accounts_repo import InstanceRepository
from lookalike.storage.duplicates_repo import DuplicateRepository, StoredGroup
from lookalike.storage.tasks_repo import DUPLICATES, FAIL, PROCESSING, SUCCESS, TaskRepository, TaskRow

SCAN_BATCH: Final = 256
NEIGHBOURS: Final = 10  # per picture; bigger groups still join up through their members' own neighbours
MAX_PAGE_SIZE: Final = 100
REPORT_EXISTS: Final = "Console.TaskAlreadyExist"
NO_REPORT: Final = "DuplicateReportNotFound"
NO_GROUP: Final = "DuplicateGroupNotFound"


@dataclass(frozen=True)
class Report:
    task: TaskRow
    threshold: float
    scanned: int  # pictures scanned so far
    total: int  # pictures the instance holds now (the scan's end moves as pictures come and go)
    groups: int  # finished reports: groups that still have two pictures or more
    pictures: int  # ... and the pictures in them

    @property
    def status(self) -> str:
        return self.task.status

    @property
    def progress(self) -> float:
        """0-1; 1 once finished."""
        if self.task.status != PROCESSING:
            return 1.0
        return min(0.99, self.scanned / self.total) if self.total else 0.0


@dataclass(frozen=True)
class GroupMember:
    record: ImageRecord
    score: float


@dataclass(frozen=True)
class GroupView:
    group_no: int
    members: list[GroupMember]  # the centre (the suggested keeper) first; scores are with the centre


@dataclass(frozen=True)
class GroupPage:
    report: Report
    groups: list[GroupView]
    page_number: int
    page_size: int


def _threshold_of(task: TaskRow) -> float:
    try:
        value = float(json.loads(task.params or "{}").get("threshold", DEFAULT_THRESHOLD))
    except (ValueError, TypeError, AttributeError):
        return DEFAULT_THRESHOLD
    return value if math.isfinite(value) else DEFAULT_THRESHOLD


class DuplicateReports:
    def __init__(
        self,
        *,
        repo: DuplicateRepository,
        tasks: TaskRepository,
        images: ImageService,
        instances: InstanceRepository,
        clock: Clock,
        batch: int = SCAN_BATCH,
        neighbours: int = NEIGHBOURS,
    ) -> None:
        self._repo = repo
        self._tasks = tasks
        self._images = images
        self._instances = instances
        self._clock = clock
        self._batch = batch
        self._neighbours = neighbours
        self._submitted: Callable[[], None] = lambda: None

    def wake_on_submit(self, callback: Callable[[], None]) -> None:
        """Called after each new report: the task worker's wake-up, so a report starts at once."""
        self._submitted = callback

    # --- tenant actions ---
    def start(self, account: Account, instance_name: str, threshold: object = None) -> Report:
        """``threshold`` as the client sent it (a number or text; None: the default)."""
        try:
            value = validate_threshold(threshold)
        except ValueError as exc:
            raise LookalikeError(e.INVALID_PARAMETER, f"Threshold: {exc}.") from None
        instance = self._images.console_instance(account, instance_name, active=True)
        task = self._tasks.create(
            kind=DUPLICATES,
            account_id=account.id,
            instance_id=instance.id,
            now=self._clock.now(),
            params=json.dumps({"threshold": value}),
        )
        if task is None:
            raise LookalikeError(
                REPORT_EXISTS, "A duplicate report is already running on this instance.", status=409
            )
        self._submitted()
        return self._report(task, instance)

    def report(
        self, account: Account, instance_name: str, report_id: int | None = None, *, rate_limited: bool = True
    ) -> Report | None:
        """The report ``report_id``, or the instance's newest one (None when it never had one)."""
        instance = self._images.console_instance(account, instance_name, rate_limited=rate_limited)
        task = self._task(instance, report_id)
        return None if task is None else self._report(task, instance)

    def groups(
        self,
        account: Account,
        instance_name: str,
        report_id: int | None,
        *,
        page_number: int = 1,
        page_size: int = 20,
    ) -> GroupPage:
        """A page of a finished report's groups, biggest first, with each picture's record."""
        if page_number < 1:
            raise LookalikeError(e.INVALID_PARAMETER, "PageNumber must be 1 or more.")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise LookalikeError(e.INVALID_PARAMETER, f"PageSize must be between 1 and {MAX_PAGE_SIZE}.")
        instance = self._images.console_instance(account, instance_name, rate_limited=False)
        task = self._finished_task(instance, report_id)
        stored = self._repo.groups(
            task.id, instance.id, offset=(page_number - 1) * page_size, limit=page_size
        )
        return GroupPage(self._report(task, instance), self._views(instance, stored), page_number, page_size)

    def csv_lines(self, account: Account, instance_name: str, report_id: int | None) -> Iterator[str]:
        """The whole report as CSV (group, keep, ProductId, PicName, score), a page of groups at a time."""
        instance = self._images.console_instance(account, instance_name)
        task = self._finished_task(instance, report_id)

        def lines() -> Iterator[str]:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["group", "suggested_keep", "product_id", "pic_name", "score"])
            offset = 0
            while True:
                stored = self._repo.groups(task.id, instance.id, offset=offset, limit=MAX_PAGE_SIZE)
                for view in self._views(instance, stored):
                    for position, member in enumerate(view.members):
                        writer.writerow(
                            [
                                view.group_no,
                                "yes" if position == 0 else "no",
                                _cell(member.record.product_id),
                                _cell(member.record.pic_name),
                                f"{member.score:.4f}",
                            ]
                        )
                yield out.getvalue()
                out.seek(0)
                out.truncate()
                if len(stored) < MAX_PAGE_SIZE:
                    return
                offset += MAX_PAGE_SIZE

        return lines()

    def group(self, account: Account, instance_name: str, report_id: int, group_no: int) -> GroupView:
        """One group of a finished report (404 once fewer than two of its pictures are left)."""
        instance = self._images.console_instance(account, instance_name, rate_limited=False)
        task = self._finished_task(instance, report_id)
        return GroupView(group_no, self._group(instance, task, group_no))

    def keep_one(
        self, account: Account, instance_name: str, report_id: int, group_no: int, keep_image_id: int
    ) -> list[ImageRecord]:
        """Delete every picture of the group but ``keep_image_id``; returns the deleted pictures."""
        instance = self._images.console_instance(account, instance_name, rate_limited=False)
        task = self._finished_task(instance, report_id)
        members = self._group(instance, task, group_no)
        if keep_image_id not in {m.record.id for m in members}:
            raise LookalikeError(e.INVALID_PARAMETER, "The picture to keep is not in this group.")
        doomed = [m.record for m in members if m.record.id != keep_image_id]
        # One delete call for the group, in one transaction: all the others go, or none does.
        gone = set(self._images.delete_pictures(account, instance_name, [r.id for r in doomed]))
        return [r for r in doomed if r.id in gone]

    # --- the worker's side ---
    def run_slice(self, task: TaskRow, work: TaskSlice) -> Finished | None:
        threshold = _threshold_of(task)
        instance = self._instances.get(task.instance_id)
        if instance is None or instance.status == "released":
            return Finished(FAIL, e.INVALID_INSTANCE, "The instance no longer exists.")
        cursor = task.progress
        while True:
            scan = self._images.scan_pairs(
                task.instance_id,
                after_id=cursor,
                limit=self._batch,
                neighbours=self._neighbours,
                threshold=threshold,
            )
            if scan.scanned == 0:
                break
            if not self._repo.record_scan(
                task.id,
                work.holder,
                scan.pairs,
                scan.last_id,
                scan.scanned,
                now=work.now(),
                lease_until=work.lease_until(),
            ):
                return None
            cursor = scan.last_id
            work.checkpoint()
        groups = group_pairs(
            self._repo.iter_pairs(task.id),
            densify=lambda ids: self._images.pairs_among(task.instance_id, ids, threshold),
        )
        if not self._repo.write_groups(task.id, work.holder, groups, now=work.now()):
            return None
        self._repo.discard_reports(task.instance_id, DUPLICATES, keep=task.id)
        pictures = sum(g.size for g in groups)
        return Finished(SUCCESS, "", f"{len(groups)} groups of copies, {pictures} pictures in them.")

    # --- helpers ---
    def _task(self, instance: Instance, report_id: int | None) -> TaskRow | None:
        rows, _ = self._tasks.list_tasks(instance.id, DUPLICATES, task_id=report_id, offset=0, limit=1)
        if report_id is not None and not rows:
            raise LookalikeError(NO_REPORT, f"There is no duplicate report {report_id} here.", status=404)
        return rows[0] if rows else None

    def _finished_task(self, instance: Instance, report_id: int | None) -> TaskRow:
        task = self._task(instance, report_id)
        if task is None:
            raise LookalikeError(NO_REPORT, "This instance has no duplicate report yet.", status=404)
        if task.status == PROCESSING:
            raise LookalikeError(
                e.INVALID_PARAMETER, "The duplicate report is still running: read its groups when it ends."
            )
        if task.status != SUCCESS:
            raise LookalikeError(NO_REPORT, f"The duplicate report failed: {task.msg}", status=404)
        newest = self._tasks.newest_id(instance.id, DUPLICATES, SUCCESS)
        if newest != task.id:
            raise LookalikeError(
                NO_REPORT, f"Duplicate report {task.id} was replaced by report {newest}.", status=404
            )
        return task

    def _report(self, task: TaskRow, instance: Instance) -> Report:
        groups, pictures = (0, 0)
        if task.status == SUCCESS and self._tasks.newest_id(instance.id, DUPLICATES, SUCCESS) == task.id:
            groups, pictures = self._repo.count_groups(task.id, instance.id)
        total = self._images.stored_count(instance.id)
        return Report(task, _threshold_of(task), task.succeeded, total, groups, pictures)

    def _group(self, instance: Instance, task: TaskRow, group_no: int) -> list[GroupMember]:
        stored = self._repo.group(task.id, instance.id, group_no)
        views = self._views(instance, [stored] if stored else [])
        if not views:
            raise LookalikeError(NO_GROUP, f"The report has no group {group_no}.", status=404)
        return views[0].members

    def _views(self, instance: Instance, stored: list[StoredGroup]) -> list[GroupView]:
        ids = [m.image_id for g in stored for m in g.members]
        records = self._images.records_by_id(instance.id, ids)
        views: list[GroupView] = []
        for g in stored:
            members = [GroupMember(records[m.image_id], m.score) for m in g.members if m.image_id in records]
            if len(members) >= 2:
                views.append(GroupView(g.group_no, members))
        return views


def _cell(value: str) -> str:
    """A spreadsheet must not run a value as a formula (CSV injection): such values get a leading '."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
