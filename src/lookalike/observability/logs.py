"""The process's log lines: plain text (the default) or one JSON object a line, each carrying the id of the
HTTP request it was written for.

The request id lives in a context variable that the request-id middleware binds for the length of a request
(lookalike.api.shared.request_id); FastAPI copies the context into the threads that run sync routes, so every
line a request causes, from any layer, names it. The response carries the same id in X-Request-Id.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

LogFormat = Literal["text", "json"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_REQUEST_ID: ContextVar[str | None] = ContextVar("lookalike_request_id", default=None)

# Attributes every LogRecord has: whatever else a record carries came from `extra=` and goes into the JSON.
_RECORD_FIELDS: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def current_request_id() -> str | None:
    """The id of the HTTP request being served in this context, if any."""
    return _REQUEST_ID.get()


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Name `request_id` in every log line written inside the block (and in what it awaits or runs).

    An exception leaving the block keeps the id set: the server's last-resort handler, outside every
    middleware, logs the crash in the same context and must name the request. Each request runs in a task
    of its own, so the id goes no further than the request."""
    token = _REQUEST_ID.set(request_id)
    yield
    _REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time (UTC, ISO 8601), level, logger, message, request_id inside a request,
    the fields given as `extra=`, and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            doc["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in doc and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(
    log_format: LogFormat, *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send every logger's records to `stream` (default stderr) in `log_format`, replacing any handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def uvicorn_log_options(log_format: LogFormat) -> dict[str, Any]:
    """uvicorn.run's logging options: in JSON, uvicorn's own loggers write through ours instead of its
    text handlers; in text its defaults stay."""
    return {"log_config": None} if log_format == "json" else {}
