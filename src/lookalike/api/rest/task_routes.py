"""Downloads behind the signed links of export and batch tasks (DumpMeta's MetaUrl, IncreaseInstance's
ErrorUrl). The signature is the credential, so the route takes no Authorization header."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from lookalike.api.rest.auth import services

router = APIRouter(prefix="/v1")


@router.get("/exports/{task_id}", response_class=FileResponse, tags=["tasks"])
def download_task_file(
    request: Request, task_id: int, expires: str | None = None, signature: str | None = None
) -> FileResponse:
    """JSON lines: picture metadata (an export) or failed lines (a batch task). 403 when the link is
    tampered with or older than 2 hours."""
    path, name = services(request).tasks.open_download(task_id, expires, signature)
    return FileResponse(path, media_type="application/x-ndjson", filename=name)
