"""Shared test support for the Alibaba dialect: a live in-process server and the official SDK clients.

Tests drive Lookalike with the REAL SDKs from PyPI over loopback HTTP, exactly as a migrating customer
would (change `endpoint` and `protocol`, nothing else). The server runs `create_app` under uvicorn in a
background thread so the test keeps direct access to `services` (ManualClock, accounts, billing).

    with live_server(services) as endpoint:
        client = client_v3(endpoint, tenant.key_id, tenant.secret)
        client.detail(models.DetailRequest(instance_name="shop"))
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from alibabacloud_imagesearch20190325.client import Client as Client2019
from alibabacloud_imagesearch20201214.client import Client as Client2020
from alibabacloud_tea_openapi import models as open_api_models
from aliyunsdkcore.client import AcsClient

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
