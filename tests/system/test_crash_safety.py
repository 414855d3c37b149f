"""kill -9 the server while pictures stream in: every acknowledged add survives and is searchable,
and nothing unacknowledged is half there (in SQL but missing from the index)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from imagegen import make_photo
from server import ServerProcess, cli_json


@pytest.mark.slow
def test_kill9_mid_stream_loses_no_acknowledged_add(
    tmp_path: Path, model_cache: Path, database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    tenant = cli_json(data_dir, "admin", "create-account", "crashco", database_url=database_url)
    cli_json(
        data_dir,
        "admin",
        "create-instance",
        "crashshop",
        "--account",
        tenant["account_id"],
        "--capacity",
        "10000",
        "--qps",
        "100",
        "--add-qps",
        "1000",
        database_url=database_url,
    )
    creds = (tenant["access_key_id"], tenant["access_key_secret"])
    pictures = {f"pic-{i:03d}": make_photo(320 + (i % 5) * 16, 240 + (i % 3) * 16, seed=i) for i in range(60)}

    server = ServerProcess(data_dir, model_cache, tmp_path / "server.log", database_url)
    server.start()
    acknowledged: set[str] = set()
    attempted: set[str] = set()
    lock = threading.Lock()
    names = list(pictures)

    def writer(worker: int) -> None:
        with httpx.Client(base_url=server.url, auth=creds, timeout=30) as client:
            for name in names[worker::2]:
                with lock:
                    attempted.add(name)
                try:
                    response = client.post(
                        "/v1/instances/crashshop/images",
                        data={"product_id": "crash", "pic_name": name},
                        files={"picture": (f"{name}.jpg", pictures[name])},
                    )
                except httpx.TransportError:
                    return  # the server died under us
                if response.status_code == 200:
                    with lock:
                        acknowledged.add(name)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 20 and any(t.is_alive() for t in threads):
        time.sleep(0.02)
    server.kill9()  # mid-stream: the writers still have requests in flight
    for thread in threads:
        thread.join(timeout=60)
    assert 20 <= len(acknowledged) < len(pictures)

    restarted = ServerProcess(data_dir, model_cache, tmp_path / "server2.log", database_url)
    restarted.start()
    try:
        with httpx.Client(base_url=restarted.url, auth=creds, timeout=60) as client:
            for name in sorted(attempted):
                exists = client.post(
                    "/v1/instances/crashshop/images/exists", json={"product_id": "crash", "pic_name": name}
                ).json()["exists"]
                if name in acknowledged:
                    assert exists, f"acknowledged {name} was lost"
                if not exists:
                    continue
                # Present means whole: searchable by its own picture at rank 1.
                top = client.post(
                    "/v1/instances/crashshop/search/picture",
                    files={"picture": ("q.jpg", pictures[name])},
                    data={"num": "1"},
                ).json()["results"][0]
                assert top["pic_name"] == name and top["score"] > 0.99
    finally:
        restarted.stop()
