"""Downloads behind the signed links of export and batch tasks (DumpMeta's MetaUrl, IncreaseInstance's
ErrorUrl). The signature is the credential, so the route takes no Authorization header."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from lookalike.api.rest.requests import DownloadQuery
from lookalike.api.shared.dependencies import Tasks

router = APIRouter(prefix="/v1")


@router.get("/exports/{task_id}", response_class=FileResponse, tags=["tasks"])
def download_task_file(task_id: int, tasks: Tasks, query: Annotated[DownloadQuery, Query()]) -> FileResponse:
    """JSON lines: picture metadata (an export) or failed lines (a batch task). 403 when the link is
    tampered with or older than 2 hours."""
    path, name = tasks.open_download(task_id, query.expires, query.signature)
    return FileResponse(path, media_type="application/x-ndjson", filename=name)
