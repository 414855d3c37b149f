"""Step 2 of an Advance call: the OSS PostObject receiver, an ASGI app of its own."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lookalike.service.uploads import UploadRefused, UploadStore

FORM_OVERHEAD_BYTES: Final = 64 * 1024  # multipart framing and the small fields around the file

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


# --- step 2: the OSS PostObject receiver ---


def _xml_error(code: str, message: str, status: int, host_id: str) -> Response:
    request_id = secrets.token_hex(12).upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{escape(host_id)}</HostId></Error>"
    )
    return Response(
        body, status_code=status, media_type="application/xml", headers={"x-oss-request-id": request_id}
    )


class _TooLarge(Exception):
    pass


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def create_upload_app(store: UploadStore) -> Starlette:
    """The PostObject endpoint: ``POST /`` multipart with OSSAccessKeyId, policy, Signature, key, file.

    201 (or 200 / 204, per ``success_action_status``) with OSS's ``<PostResponse>`` when everything matches
    what AuthorizeFileUpload issued; an OSS ``<Error>`` document otherwise (403 for a wrong token, policy,
    signature, key or an expired grant; 400 for a malformed form or a file over the image byte limit).
    """
    host_id = store.public_host or "lookalike-uploads"

    async def post_object(request: Request) -> Response:
        if request.method != "POST":
            return _xml_error("MethodNotAllowed", "The specified method is not allowed.", 405, host_id)
        content_type = request.headers.get("content-type", "").lower()
        if not content_type.startswith("multipart/form-data"):
            return _xml_error("InvalidArgument", "The body must be multipart/form-data.", 400, host_id)
        try:
            body = await _read_bounded(request, store.max_bytes + FORM_OVERHEAD_BYTES)
        except _TooLarge:
            return _xml_error(
                "EntityTooLarge",
                f"Your proposed upload exceeds the maximum of {store.max_bytes} bytes.",
                400,
                host_id,
            )
        replayed = Request(request.scope, _replay(body))
        try:
            form = await replayed.form(max_files=1, max_fields=16)
        except Exception:  # malformed multipart: python-multipart raises several types
            return _xml_error("InvalidArgument", "The multipart body could not be parsed.", 400, host_id)
        try:
            fields = {name.lower(): value for name, value in form.multi_items()}
            texts = {k: v for k, v in fields.items() if isinstance(v, str)}
            upload = fields.get("file")
            missing = [n for n in ("ossaccesskeyid", "policy", "signature", "key") if not texts.get(n)]
            if missing or not isinstance(upload, UploadFile):
                absent = ", ".join(missing + ([] if isinstance(upload, UploadFile) else ["file"]))
                return _xml_error("InvalidArgument", f"Missing form fields: {absent}.", 400, host_id)
            data = await upload.read()
            try:
                stored = await run_in_threadpool(
                    store.receive,
                    token_id=texts["ossaccesskeyid"],
                    encoded_policy=texts["policy"],
                    signature=texts["signature"],
                    key=texts["key"],
                    data=data,
                )
            except UploadRefused as refused:
                return _xml_error(refused.code, refused.message, refused.status, host_id)
        finally:
            await form.close()
        await run_in_threadpool(store.maybe_sweep)
        status = texts.get("success_action_status", "")
        if status not in ("200", "201"):
            return Response(status_code=204, headers={"ETag": f'"{stored.etag}"'})
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<PostResponse><Bucket>{escape(stored.bucket)}</Bucket>"
            f"<Location>{escape(stored.location)}</Location><Key>{escape(stored.key)}</Key>"
            f'<ETag>"{stored.etag}"</ETag></PostResponse>'
        )
        return Response(
            xml, status_code=int(status), media_type="application/xml", headers={"ETag": f'"{stored.etag}"'}
        )

    async def not_found(request: Request) -> Response:
        return _xml_error("NoSuchKey", "The specified key does not exist.", 404, host_id)

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(
        routes=[Route("/", post_object, methods=methods), Route("/{rest:path}", not_found, methods=methods)]
    )
