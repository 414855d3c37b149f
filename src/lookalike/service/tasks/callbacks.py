"""IncreaseInstance's CallbackAddress: an operator allow-listed host (refused at submission otherwise), called
with a JSON POST with a short timeout on its own thread, never retried and never blocking the task."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import httpx

from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.service.tasks.links import TaskFiles
from lookalike.storage.tasks_repo import INCREASE, TaskRow

log = logging.getLogger(__name__)


class Callbacks:
    def __init__(self, settings: Settings, files: TaskFiles) -> None:
        self._settings = settings
        self._files = files

    def check(self, address: str) -> None:
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

    def notify(self, task: TaskRow) -> None:
        if task.kind != INCREASE or not task.callback_address:
            return
        address = task.callback_address
        try:
            self.check(address)  # the allow-list may have shrunk since submission
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
            "ErrorUrl": self._files.url_for(task),
        }
        timeout = self._settings.callback_timeout_s

        def post() -> None:
            try:
                httpx.post(address, json=body, timeout=timeout, follow_redirects=False)
            except httpx.HTTPError as exc:
                log.warning("task %s: callback to %s failed: %s", task.id, address, exc)

        threading.Thread(target=post, name=f"task-callback-{task.id}", daemon=True).start()
