"""Shared test support for the Alibaba dialect: a live in-process server and the official SDK clients.

Tests drive Lookalike with the REAL SDKs from PyPI over loopback HTTP, exactly as a migrating customer
would (change `endpoint` and `protocol`, nothing else). The server runs `create_app` under uvicorn in a
background thread so the test keeps direct access to `services` (ManualClock, accounts, billing).

    with live_server(services) as endpoint:
        client = client_v3(endpoint, tenant.key_id, tenant.secret)
        client.detail(models.DetailRequest(instance_name="shop"))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import uvicorn
from alibabacloud_imagesearch20190325.client import Client as Client2019  # type: ignore[import-untyped]
from alibabacloud_imagesearch20201214.client import Client as Client2020  # type: ignore[import-untyped]
from alibabacloud_tea_openapi import models as open_api_models  # type: ignore[import-untyped]
from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped]

from lookalike.api.rest.app import create_app
from lookalike.service.container import Services

REGION = "cn-shanghai"


@contextmanager
def live_server(services: Services, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve `create_app(services)` on a free loopback port; yields "127.0.0.1:PORT" (the SDK endpoint form).

    The socket is bound here and handed to uvicorn, so there is no window in which another process can take
    the port between choosing it and listening on it.
    """
    app = create_app(services, close_on_shutdown=False)  # the fixture owns `services` and closes it
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="lookalike-live", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the live server thread exited before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the live server did not start in time")
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
        sock.close()


def _config(endpoint: str, key_id: str, secret: str, **extra: Any) -> Any:
    # Same Config class for both generations (tea-openapi 0.4.x keeps `models.Config`). Long read timeout:
    # the first embed in a test process may be slow on a cold CPU.
    return open_api_models.Config(
        access_key_id=key_id,
        access_key_secret=secret,
        endpoint=endpoint,
        protocol="http",
        region_id=REGION,
        read_timeout=60_000,
        **extra,
    )


def client_v3(endpoint: str, key_id: str, secret: str) -> Any:
    """2020-12-14 client with its default ACS3-HMAC-SHA256 signing."""
    return Client2020(_config(endpoint, key_id, secret))


def client_v2(endpoint: str, key_id: str, secret: str) -> Any:
    """2020-12-14 client forced to the classic RPC HMAC-SHA1 signing (Signature in the query)."""
    return Client2020(_config(endpoint, key_id, secret, signature_algorithm="v2"))


def client_2019(endpoint: str, key_id: str, secret: str, v2: bool = False) -> Any:
    """2019-03-25 ROA client: V3 by default, ROA HMAC-SHA1 (`Authorization: acs AK:sig`) with v2=True."""
    extra: dict[str, Any] = {"signature_algorithm": "v2"} if v2 else {}
    return Client2019(_config(endpoint, key_id, secret, **extra))


def legacy_core(endpoint: str, key_id: str, secret: str) -> Any:
    """Legacy aliyun-python-sdk-core client. Each request also needs `legacy_request(req, endpoint)`.

    auto_retry is off so that an error answer reaches the test as one ServerException/ClientException
    instead of being retried (a retry would also reuse nothing: the core SDK re-signs each attempt).
    """
    del endpoint  # the core SDK takes the endpoint per request, not per client
    return AcsClient(key_id, secret, REGION, auto_retry=False, timeout=60, connect_timeout=10)


def legacy_request(req: Any, endpoint: str) -> Any:
    """Point one core-SDK request (RoaRequest, RpcRequest or CommonRequest) at the live server over HTTP."""
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    return req


# --- a test-side signer, written from reference §3.5 independently of lookalike.api.alibaba.signing ---
# For tests that need control the SDKs do not give: replaying the exact same bytes, a stale timestamp,
# a chosen nonce. Send with httpx: `httpx.request(r.method, r.url, headers=r.headers, content=r.body)`.


@dataclass(frozen=True)
class RawRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def _pe(value: str) -> str:
    return quote(value, safe="~")


def sign_v3(
    endpoint: str,
    key_id: str,
    secret: str,
    action: str,
    *,
    version: str = "2020-12-14",
    query: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    path: str = "/",
    method: str = "POST",
    when: datetime | None = None,
    nonce: str | None = None,
) -> RawRequest:
    """An ACS3-HMAC-SHA256 request signed the way the current SDKs sign it."""
    query = query or {}
    body = urlencode(sorted((form or {}).items())).encode() if form else b""
    headers = {
        "host": endpoint,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce or secrets.token_hex(16),
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "accept": "application/json",
    }
    if body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            path,
            "&".join(f"{_pe(k)}={_pe(v)}" for k, v in sorted(query.items())),
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            headers["x-acs-content-sha256"],
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(names)},Signature={signature}"
    )
    raw_query = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in query.items())
    return RawRequest(
        method, f"http://{endpoint}{path}" + (f"?{raw_query}" if raw_query else ""), headers, body
    )


def sign_rpc(
    endpoint: str,
    key_id: str,
    secret: str,
    action: str,
    *,
    version: str = "2020-12-14",
    query: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    when: datetime | None = None,
    nonce: str | None = None,
    dispatch_in_body: bool = False,
) -> RawRequest:
    """A classic RPC HMAC-SHA1 (SignatureVersion 1.0) request: common parameters in the query
    (`dispatch_in_body`: Action and Version in the form body instead, signed all the same)."""
    dispatch = {"Action": action, "Version": version}
    if dispatch_in_body:
        form = {**dispatch, **(form or {})}
    params = {
        **({} if dispatch_in_body else dispatch),
        "Format": "json",
        "Timestamp": (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SignatureNonce": nonce or secrets.token_hex(16),
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "AccessKeyId": key_id,
        **(query or {}),
    }
    signed = {**params, **(form or {})}
    canonical = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in sorted(signed.items()))
    to_sign = f"POST&{_pe('/')}&{_pe(canonical)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    params["Signature"] = base64.b64encode(digest).decode()
    body = urlencode(sorted((form or {}).items())).encode() if form else b""
    headers = {"content-type": "application/x-www-form-urlencoded"} if body else {}
    raw_query = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in params.items())
    return RawRequest("POST", f"http://{endpoint}/?{raw_query}", headers, body)


def sign_roa(
    endpoint: str,
    key_id: str,
    secret: str,
    path: str,
    form: dict[str, str],
    *,
    when: datetime | None = None,
    nonce: str | None = None,
    content_md5: bool = False,
) -> RawRequest:
    """A 2019-03-25 ROA HMAC-SHA1 request (`Authorization: acs AK:sig`); `nonce=""` sends none."""
    body = urlencode(sorted(form.items())).encode()
    headers = {
        "accept": "application/json",
        "content-type": "application/x-www-form-urlencoded",
        "date": (when or datetime.now(UTC)).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "x-acs-signature-method": "HMAC-SHA1",
        "x-acs-signature-version": "1.0",
        "x-acs-version": "2019-03-25",
    }
    if nonce != "":
        headers["x-acs-signature-nonce"] = nonce or secrets.token_hex(16)
    if content_md5:
        headers["content-md5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    acs = "".join(f"{k}:{headers[k]}\n" for k in sorted(h for h in headers if h.startswith("x-acs-")))
    to_sign = (
        f"POST\n{headers['accept']}\n{headers.get('content-md5', '')}\n{headers['content-type']}\n"
        f"{headers['date']}\n{acs}{path}"
    )
    digest = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()
    headers["authorization"] = f"acs {key_id}:{base64.b64encode(digest).decode()}"
    return RawRequest("POST", f"http://{endpoint}{path}", headers, body)
