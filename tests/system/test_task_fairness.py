"""One tenant's long import cannot hold another tenant's task back (issue 12, point 5), against a real
`lookalike serve` on loopback driven by the official 2020-12-14 SDK.

Tenant A's imports add one picture per second (the add flow control of a 1,000-picture package), so 60
lines keep a worker busy for a minute. Tenant B then asks for a DumpMeta of its own instance: it must be
done within 5 s. With one worker that only holds because a batch task hands its worker back after each
slice (`task_slice_s`) and the next slice goes to the tenant served least recently; with the default two
workers, A runs two imports at once so both workers are taken when B arrives.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_imagesearch20201214 import models

from alibaba_live import client_v3
from photos import encode, load_photo
from server import ServerProcess, cli_json

pytestmark = pytest.mark.sqlite_only  # scheduling inside one process; the leases are tested elsewhere

LINES = 60


def write_long_batch(bucket: Path, folder: str) -> str:
    (bucket / folder).mkdir(parents=True, exist_ok=True)
    (bucket / folder / "cup.jpg").write_bytes(encode(load_photo("coffee")))
    lines = [
        {"OperationType": "ADD", "ProductId": f"{folder}-{n}", "PicName": "cup.jpg"} for n in range(LINES)
    ]
    (bucket / folder / "increment.meta").write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")
    return f"/{folder}/increment.meta"


def wait_done(client: Any, instance: str, task_id: str, limit_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s + 5:
        time.sleep(1.05)  # DumpMetaList shares the console actions' 1/s budget per instance
        body = client.dump_meta_list(models.DumpMetaListRequest(instance_name=instance, id=int(task_id))).body
        if body.data.dump_meta_list[0].status != "PROCESSING":
            assert body.data.dump_meta_list[0].status == "SUCCESS"
            return time.monotonic() - started
    raise AssertionError(f"the export was not done within {limit_s + 5:.0f} s")


@pytest.mark.parametrize("workers", [1, 2])
def test_other_tenants_export_is_not_held_back_by_a_long_import(
    workers: int, tmp_path: Path, model_cache: Path
) -> None:
    data, bucket = tmp_path / "data", tmp_path / "bucket"
    a = cli_json(data, "admin", "create-account", "tenant-a")
    b = cli_json(data, "admin", "create-account", "tenant-b")
    a_instances = [f"shop-a{n}" for n in range(workers)]
    for name in a_instances:
        cli_json(
            data,
            "admin",
            "create-instance",
            name,
            "--account",
            a["account_id"],
            "--capacity",
            "1000",
            "--qps",
            "5",
        )
    cli_json(
        data,
        "admin",
        "create-instance",
        "shop-b",
        "--account",
        b["account_id"],
        "--capacity",
        "1000",
        "--qps",
        "5",
    )
    paths = [write_long_batch(bucket, f"batch{n}") for n in range(workers)]
    server = ServerProcess(
        data, model_cache, tmp_path / "server.log", extra_args=("--bucket", f"imports@tenant-a={bucket}")
    )
    server.env["LOOKALIKE_TASK_WORKERS"] = str(workers)
    server.start()
    try:
        endpoint = server.url.removeprefix("http://")
        client_a = client_v3(endpoint, a["access_key_id"], a["access_key_secret"])
        client_b = client_v3(endpoint, b["access_key_id"], b["access_key_secret"])
        imports = [
            client_a.increase_instance(
                models.IncreaseInstanceRequest(instance_name=name, bucket_name="imports", path=path)
            ).body.data.id
            for name, path in zip(a_instances, paths, strict=True)
        ]
        time.sleep(3)  # A's imports are under way, every worker busy
        dump = client_b.dump_meta(models.DumpMetaRequest(instance_name="shop-b")).body
        took = wait_done(client_b, "shop-b", dump.data.id, limit_s=5)
        assert took <= 5, f"B's export took {took:.1f} s behind A's import"
        # A's imports were slowed, not stopped: they are still running and have made progress.
        for name, task_id in zip(a_instances, imports, strict=True):
            time.sleep(1.05)
            item = client_a.increase_list(
                models.IncreaseListRequest(instance_name=name, id=int(task_id))
            ).body.data.increments.instance[0]
            assert item.status == "PROCESSING"
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
