"""The SDK's `*_advance` methods, served by Lookalike itself (reference §6, captures J, K, L).

`add_image_advance`, `search_image_by_pic_advance` and `compare_similar_by_image_advance` take a file object
and, instead of sending base64, do three things:

1. ``AuthorizeFileUpload`` (open platform, version 2019-12-19) -> :func:`authorize_file_upload`, registered
   in the action table like every other action, so it is signed and verified like them. It is sent to
   ``client._open_platform_endpoint`` (a private attribute: ``Config.open_platform_endpoint`` is ignored by
   tea-openapi), which a migrating client sets to the Lookalike API's host:port.
2. An OSS PostObject to ``https://{Bucket}.{Endpoint}/`` (HTTPS is hard-coded in the SDK) ->
   :func:`create_upload_app`, an ASGI app served over TLS by :class:`UploadListener` (``lookalike serve
   --upload-port``). The certificate is the operator's or a self-signed one from :func:`ensure_tls_files`;
   clients trust it with ``RuntimeOptions(ignore_ssl=True)`` or ``RuntimeOptions(ca=<cert.pem>)``.
3. The real action with ``PicContent = "http://{Bucket}.{Endpoint}/{ObjectKey}"`` ->
   :func:`resolve_upload_url`, appended to ``pic_content.URL_RESOLVERS``. It claims a URL only when it
   names the configured upload host and an object of the CALLING account that is still live; anything else
   is left unclaimed, which the action answers with ``InvalidPicUrl``. Nothing is ever fetched over the
   network (no SSRF).

The answer's ``AccessKeyId`` is a per-upload token id and ``Signature`` an HMAC of the policy under a
server-side key (service/uploads.py); no tenant secret ever leaves the server.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lookalike.api.alibaba.dispatch import Context, action
from lookalike.api.alibaba.pic_content import URL_RESOLVERS
from lookalike.api.alibaba.request import AcsRequest
from lookalike.api.limits import server_options
from lookalike.config import RequestLimits
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.service.uploads import UploadRefused, UploadsDisabled, UploadStore

log = logging.getLogger(__name__)

OPEN_PLATFORM_VERSION: Final = "2019-12-19"
UPLOAD_DISABLED: Final = "Forbidden.UploadDisabled"
FORM_OVERHEAD_BYTES: Final = 64 * 1024  # multipart framing and the small fields around the file
TLS_DIR: Final = "upload-tls"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


# --- step 1: AuthorizeFileUpload ---


@action(OPEN_PLATFORM_VERSION, "AuthorizeFileUpload")
def authorize_file_upload(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    product = req.text("Product")
    if product is not None and product != "ImageSearch":
        raise LookalikeError(
            e.INVALID_PARAMETER, f"Uploads are for Product ImageSearch, not {product[:40]!r}."
        )
    try:
        grant = ctx.services.uploads.authorize(ctx.account.id)
    except UploadsDisabled:
        raise LookalikeError(
            UPLOAD_DISABLED,
            "This server does not accept Advance uploads (the operator has not started the upload listener: "
            "lookalike serve --upload-port). Send PicContent as base64 instead.",
            status=403,
        ) from None
    except UploadRefused as refused:
        raise LookalikeError(refused.code, refused.message, status=refused.status) from None
    return {
        "AccessKeyId": grant.token_id,
        "Bucket": grant.bucket,
        "Endpoint": grant.endpoint,
        "ObjectKey": grant.object_key,
        "EncodedPolicy": grant.encoded_policy,
        "Signature": grant.signature,
        "UseAccelerate": False,
    }


# --- step 3: PicContent as a URL into our own store ---


def resolve_upload_url(ctx: Context, url: str) -> bytes | None:
    """The bytes behind `url` if it is ``http(s)://{upload public host}/{key}`` of a live object of the
    calling account; None (-> InvalidPicUrl) for every other URL. Never opens a connection."""
    store = ctx.services.uploads
    if store.public_host is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.query or parts.fragment:
        return None
    if parts.netloc.lower() != store.public_host.strip().lower():  # also refuses user:pass@ forms
        return None
    key = store.key_from_url_path(parts.path)
    if key is None:
        return None
    return store.read(ctx.account.id, key)


if resolve_upload_url not in URL_RESOLVERS:
    URL_RESOLVERS.append(resolve_upload_url)


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


# --- TLS ---


def _host_of(public_host: str) -> str:
    host = public_host.strip()
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.lower()


def _cert_names(cert_path: Path, key_path: Path) -> set[str]:
    """The names a generated pair covers; empty when the files are unreadable or do not belong together
    (a crash between writing the key and the certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return set()
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return set()
    names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return names


def ensure_tls_files(data_dir: Path, public_host: str | None) -> tuple[Path, Path]:
    """A self-signed certificate + key for the upload listener under ``<data_dir>/upload-tls/``.

    Generated once (EC P-256, 10 years, SAN: localhost, 127.0.0.1 and the public host's name) and reused;
    regenerated only when the public host is not among its names. Clients must trust it explicitly:
    ``RuntimeOptions(ignore_ssl=True)``, or ``RuntimeOptions(ca=".../upload-tls/cert.pem")``.
    """
    folder = data_dir / TLS_DIR
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    wanted = {"localhost", "127.0.0.1"}
    if public_host:
        wanted.add(_host_of(public_host))
    if wanted <= _cert_names(cert_path, key_path):
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in sorted(wanted):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lookalike upload listener")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _write_private(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


# --- the listener ---


class UploadListener:
    """Serves :func:`create_upload_app` over HTTPS in a background thread (uvicorn).

    Pass `sock` (already bound) to avoid choosing a port and binding it later; otherwise `host`/`port`.
    """

    def __init__(
        self,
        store: UploadStore,
        *,
        certfile: Path,
        keyfile: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
    ) -> None:
        if sock is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        self._sock = sock
        config = uvicorn.Config(
            create_upload_app(store),
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
            log_level="warning",
            access_log=False,
            lifespan="off",
            **server_options(RequestLimits()),  # headers bounded by the parser, as on the API port
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="lookalike-uploads", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    def start(self, timeout: float = 30.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the upload listener did not start")
            time.sleep(0.01)
        return self.address

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        self._sock.close()
