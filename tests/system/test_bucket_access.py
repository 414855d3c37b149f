"""Buckets belong to the accounts the operator names (issue 12, point 2), against a real `lookalike serve`
on loopback driven by the official 2020-12-14 SDK.

The operator maps `a-bucket` to tenant A only and `shared` to every account (`--bucket NAME@ACCOUNT=DIR`).
Tenant B naming A's bucket gets exactly the answer of a bucket that does not exist and of a file that does
not exist (code, status and message), and the instance is checked before any of that, so B can neither
import A's pictures nor probe which files A's bucket holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_imagesearch20201214 import models
from Tea.exceptions import TeaException

from alibaba_live import client_v3
from photos import encode, load_photo
from server import ServerProcess, cli_json

pytestmark = pytest.mark.sqlite_only  # HTTP and file-system behaviour; the stores are tested elsewhere


def write_batch(root: Path, folder: str, product: str) -> str:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "cup.jpg").write_bytes(encode(load_photo("coffee")))
    line = {"OperationType": "ADD", "ProductId": product, "PicName": "cup.jpg"}
    (root / folder / "increment.meta").write_text(json.dumps(line) + "\n", "utf-8")
    return f"/{folder}/increment.meta"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("buckets")
    data = root / "data"
    tenants = {}
    for name in ("tenant-a", "tenant-b"):
        created = cli_json(data, "admin", "create-account", name)
        cli_json(
            data,
            "admin",
            "create-instance",
            f"shop-{name[-1]}",
            "--account",
            created["account_id"],
            "--capacity",
            "1000",
            "--qps",
            "10",
        )
        tenants[name] = created
    a_dir, shared_dir = root / "a-bucket", root / "shared"
    paths = {
        "a": write_batch(a_dir, "batch", "a-secret"),
        "shared": write_batch(shared_dir, "batch", "common"),
    }
    process = ServerProcess(
        data,
        model_cache,
        root / "server.log",
        extra_args=(
            "--bucket",
            f"a-bucket@tenant-a={a_dir}",
            "--bucket",
            f"shared@*={shared_dir}",
        ),
    )
    process.start()
    endpoint = process.url.removeprefix("http://")
    clients = {
        name: client_v3(endpoint, t["access_key_id"], t["access_key_secret"]) for name, t in tenants.items()
    }
    yield {"clients": clients, "paths": paths, "a_dir": a_dir, "server": process, "root": root}
    process.stop()
    log = (root / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def refusal(client: Any, instance: str, bucket: str, path: str) -> tuple[str, int | None, str]:
    with pytest.raises(TeaException) as info:
        client.increase_instance(
            models.IncreaseInstanceRequest(instance_name=instance, bucket_name=bucket, path=path)
        )
    exc = info.value
    status = exc.data.get("statusCode") if isinstance(exc.data, dict) else None
    return exc.code, status, exc.message.split("request id:")[0].replace(bucket, "<bucket>")


def wait_for(client: Any, instance: str, task_id: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1.1)  # IncreaseList shares the console actions' 1/s budget
        body = client.increase_list(models.IncreaseListRequest(instance_name=instance, id=int(task_id))).body
        item = body.data.increments.instance[0]
        if item.status != "PROCESSING":
            return item
    raise AssertionError("the task did not finish")


def test_foreign_bucket_answers_like_a_missing_one(world: dict[str, Any]) -> None:
    b = world["clients"]["tenant-b"]
    a_path = world["paths"]["a"]
    foreign = refusal(b, "shop-b", "a-bucket", a_path)  # the file exists, in A's bucket
    unknown = refusal(b, "shop-b", "no-such-bucket", a_path)
    missing_in_own = refusal(b, "shop-b", "shared", "/nothing/increment.meta")
    foreign_missing = refusal(b, "shop-b", "a-bucket", "/nothing/increment.meta")
    assert foreign == unknown
    assert foreign[:2] == ("InvalidParameter", 400) and "No increment.meta file" in foreign[2]
    assert foreign_missing == missing_in_own  # a file absent from A's bucket: same answer as present
    # Paths that would say "leaves the bucket" in one's own bucket say nothing about a foreign one.
    assert refusal(b, "shop-b", "a-bucket", "/../elsewhere/increment.meta") == refusal(
        b, "shop-b", "no-such-bucket", "/../elsewhere/increment.meta"
    )


def test_instance_is_checked_before_the_bucket(world: dict[str, Any]) -> None:
    b = world["clients"]["tenant-b"]
    a_path = world["paths"]["a"]
    # Another tenant's instance, or none: the instance answer, whatever the bucket and path.
    answers = {
        refusal(b, instance, bucket, path)
        for instance in ("shop-a", "no-such-instance")
        for bucket, path in (("a-bucket", a_path), ("no-such-bucket", a_path), ("shared", "/none"))
    }
    assert len({answer[:2] for answer in answers}) == 1
    assert next(iter(answers))[0] == "Console.InstanceNotFound"


def test_owner_imports_and_the_other_tenant_sees_nothing(world: dict[str, Any]) -> None:
    a, b = world["clients"]["tenant-a"], world["clients"]["tenant-b"]
    started = a.increase_instance(
        models.IncreaseInstanceRequest(
            instance_name="shop-a", bucket_name="a-bucket", path=world["paths"]["a"]
        )
    ).body
    assert started.success is True
    item = wait_for(a, "shop-a", started.data.id)
    assert (item.status, item.msg) == ("SUCCESS", "1 lines applied, 0 failed.")
    # B's instance never held A's picture, and B's shared-bucket import works as usual.
    shared = b.increase_instance(
        models.IncreaseInstanceRequest(
            instance_name="shop-b", bucket_name="shared", path=world["paths"]["shared"]
        )
    ).body
    assert wait_for(b, "shop-b", shared.data.id).status == "SUCCESS"
    time.sleep(1.1)
    dumped = b.dump_meta(models.DumpMetaRequest(instance_name="shop-b")).body
    assert dumped.success is True
    for _ in range(60):
        time.sleep(1.1)
        listed = b.dump_meta_list(
            models.DumpMetaListRequest(instance_name="shop-b", id=int(dumped.data.id))
        ).body
        row = listed.data.dump_meta_list[0]
        if row.status != "PROCESSING":
            break
    meta_url = row.meta_url
    server = world["server"]
    parts = meta_url.split("/", 3)
    lines = httpx.get(f"{server.url}/{parts[3]}").text.splitlines()
    assert [json.loads(line)["ProductId"] for line in lines] == ["common"]
