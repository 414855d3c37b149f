"""The HTTPS listener that serves the PostObject receiver next to the API."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from lookalike.api.alibaba.upload.post_object import create_upload_app
from lookalike.api.limits import server_options
from lookalike.config import RequestLimits
from lookalike.service.uploads import UploadStore


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
