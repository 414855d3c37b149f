"""Run a real `lookalike serve` process for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

LOOKALIKE = [sys.executable, "-m", "lookalike.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(env: dict[str, str] | None, database_url: str | None) -> dict[str, str] | None:
    """`env` (default: ours) plus LOOKALIKE_DATABASE_URL when the test runs on its own database."""
    if database_url is None:
        return env
    return {**(os.environ if env is None else env), "LOOKALIKE_DATABASE_URL": database_url}


def cli_json(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, database_url: str | None = None
) -> Any:
    out = subprocess.run(
        [*LOOKALIKE, *args, "--data-dir", str(data_dir), "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=with_database(env, database_url),
    )
    return json.loads(out.stdout)


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        model_cache: Path,
        log_path: Path,
        database_url: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LOOKALIKE_MODEL_CACHE_DIR": str(model_cache)}
        if database_url is not None:
            self.env["LOOKALIKE_DATABASE_URL"] = database_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *LOOKALIKE,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
