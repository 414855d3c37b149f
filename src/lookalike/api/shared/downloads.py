"""File downloads the REST API and the console both offer."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool


def csv_download(lines: Iterator[str], report_id: int) -> StreamingResponse:
    """A duplicate report's CSV as a file download, streamed a page of groups at a time."""
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="duplicates-{report_id}.csv"'},
    )
