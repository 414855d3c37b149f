"""A local Ray cluster on loopback for the tests of the Ray engine (tests/system): `ray start --head --block`
as a child process (2 CPUs), stopped by its pid afterwards. One per test session: tests/conftest.py loads
this module as a plugin (a fixture imported into each test module would start one cluster per module)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server import free_port


@dataclass(frozen=True)
class RayCluster:
    address: str
    pid: int  # the `ray start --block` process; every Ray process of the cluster is below it


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'lookalike[ray]' (part of [dev])")
    ray_bin = Path(sys.executable).parent / "ray"
    port = free_port()
    log = tmp_path_factory.mktemp("ray") / "ray.log"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            "--num-cpus",
            "2",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--include-dashboard=false",
            "--object-store-memory",
            str(200 * 1024 * 1024),
            "--disable-usage-stats",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    os.environ["RAY_AUTH_MODE"] = "disabled"  # this process's drivers connect to it
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield RayCluster(f"127.0.0.1:{port}", process.pid)
    finally:
        process.send_signal(signal.SIGTERM)  # --block stops the processes it started
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only the cluster's processes
            process.wait()
