"""DumpMeta: an instance's pictures exported as one JSON line each. An export restarts from scratch into a
temporary file that replaces the final one, so it runs in one go (it renews its lease as it writes)."""

from __future__ import annotations

import json
import logging
import os

from lookalike.service.task_runner import Finished, Stopped, TaskSlice
from lookalike.service.tasks.links import TaskFiles
from lookalike.storage.tasks_repo import FAIL, SUCCESS, TaskRepository, TaskRow

log = logging.getLogger(__name__)


class DumpRunner:
    def __init__(self, repo: TaskRepository, files: TaskFiles) -> None:
        self._repo = repo
        self._files = files

    def run_slice(self, task: TaskRow, work: TaskSlice) -> Finished | None:
        target = self._files.file_for(task)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        count = 0
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                for row in self._repo.iter_export_rows(task.instance_id):
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                    count += 1
                    if count % 1000 == 0:
                        if work.stopping():
                            raise Stopped
                        if self._repo.claim(task.id, work.holder, work.now(), work.lease_until()) is None:
                            return None  # lost the lease
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            log.exception("export task %s failed", task.id)
            return Finished(FAIL, "Console.InternalError", f"Writing the export failed: {exc}")
        return Finished(SUCCESS, "", f"{count} pictures exported.")
