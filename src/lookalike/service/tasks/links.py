"""A finished task's file (an export, or a batch's errors) and the signed, expiring link to it.

Links are `{public_base_url}/v1/exports/{id}?expires=…&signature=…`: HMAC-SHA256 over the task id and expiry
under a random key kept in the data dir, valid 2 hours from issue."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
from pathlib import Path
from typing import Final

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.storage.tasks_repo import DUMP, INCREASE, PROCESSING, SUCCESS, TaskRepository, TaskRow

LINK_TTL_S: Final = 2 * 60 * 60
LINK_KEY_FILE: Final = "download-link.key"


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


class TaskFiles:
    def __init__(
        self, *, tasks_dir: Path, public_base_url: str, key: bytes, clock: Clock, repo: TaskRepository
    ) -> None:
        self._dir = tasks_dir
        self._base = public_base_url.rstrip("/")
        self._key = key
        self._clock = clock
        self._repo = repo

    def file_for(self, task: TaskRow) -> Path:
        name = "meta.jsonl" if task.kind == DUMP else "errors.jsonl"
        return self._dir / str(task.id) / name

    def url_for(self, task: TaskRow) -> str:
        """MetaUrl of a finished export, ErrorUrl of a finished batch with failed lines; else ""."""
        if task.kind == DUMP and task.status != SUCCESS:
            return ""
        if task.kind == INCREASE and (task.status == PROCESSING or task.failed == 0):
            return ""
        return self.signed_url(task.id)

    def _signature(self, task_id: int, expires: int) -> str:
        return hmac.new(self._key, f"task-file:{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, task_id: int) -> str:
        expires = math.ceil(self._clock.timestamp()) + LINK_TTL_S  # at least the full 2 hours
        signature = self._signature(task_id, expires)
        return f"{self._base}/v1/exports/{task_id}?expires={expires}&signature={signature}"

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
        if task is None or not self.url_for(task):
            raise LookalikeError("NotFound", "There is no file for this task.", status=404)
        path = self.file_for(task)
        if not path.is_file():
            raise LookalikeError("NotFound", "The task's file is gone.", status=404)
        name = f"dump-{task.id}.meta" if task.kind == DUMP else f"increment-{task.id}-errors.jsonl"
        return path, name
