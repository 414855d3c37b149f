"""Export (DumpMeta) and batch (IncreaseInstance) tasks: service level, the signed download route, crash
resume, and the four Alibaba actions through the official SDK."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest
from alibabacloud_imagesearch20201214 import models
from fastapi.testclient import TestClient
from PIL import Image
from Tea.exceptions import TeaException

from alibaba_live import client_v3, live_server
from conftest import Tenant, make_settings, make_tenant
from lookalike.api.rest.app import create_app
from lookalike.clock import ManualClock
from lookalike.config import Bucket, Settings, parse_buckets, parse_hosts
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Attributes
from lookalike.service.container import Services, build_services
from lookalike.service.tasks import LEASE_S, TASK_ALREADY_EXIST, TaskService, resolve_in_bucket
from lookalike.storage.tasks_repo import FAIL, PROCESSING, SUCCESS, TaskRepository
from photos import encode, load_photo

BUCKET = "shop-bucket"
PUBLIC = "http://lookalike.test"


@cache
def photo(name: str) -> Image.Image:
    return load_photo(name)


@cache
def jpeg(name: str) -> bytes:
    return encode(photo(name))


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    (root / "batch" / "pics").mkdir(parents=True)
    return root


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path, bucket: Path, database_url: str | None) -> Settings:
    return make_settings(
        tmp_path / "data",
        database_url,
        model_cache_dir=model_cache,
        buckets={BUCKET: Bucket(bucket, frozenset({"*"}))},
        callback_hosts=frozenset({"127.0.0.1"}),
        public_base_url=PUBLIC,
    )


@pytest.fixture
def http(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, close_on_shutdown=False)) as client:
        yield client


def tick(clock: ManualClock) -> None:
    clock.advance(1.1)  # the console actions are limited to 1 per second per instance


def download(http: TestClient, url: str) -> httpx.Response:
    assert url.startswith(PUBLIC + "/v1/exports/")
    parts = urlsplit(url)
    return http.get(f"{parts.path}?{parts.query}")


def write_meta(bucket: Path, lines: list[dict[str, Any] | str], folder: str = "batch") -> str:
    path = bucket / folder / "increment.meta"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), "utf-8"
    )
    return f"/{folder}/increment.meta"


def put_picture(bucket: Path, relative: str, name: str) -> None:
    target = bucket / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(jpeg(name))


def add(services: Services, tenant: Tenant, product: str, pic: str, name: str, **attrs: Any) -> None:
    services.images.add_image(
        tenant.account,
        tenant.instance.name,
        product_id=product,
        pic_name=pic,
        picture=jpeg(name),
        attributes=Attributes(**attrs),
        custom_content=f"about {name}",
    )


# --- DumpMeta ---


def test_export_contains_every_stored_record(
    services: Services, tenant: Tenant, clock: ManualClock, http: TestClient
) -> None:
    add(services, tenant, "p1", "a.jpg", "coffee", int_attr=7, str_attr="红", str_attr4="x")
    add(services, tenant, "p1", "b.jpg", "rocket", int_attr3=-2)
    add(services, tenant, "p2", "c.jpg", "chelsea")
    task = services.tasks.start_dump(tenant.account, "shop")
    assert task.status == PROCESSING
    tick(clock)
    listed = services.tasks.list_dumps(tenant.account, "shop")
    assert [(v.task.id, v.task.status, v.url) for v in listed.items] == [(task.id, PROCESSING, "")]

    assert services.tasks.run_pending() == 1
    tick(clock)
    view = services.tasks.list_dumps(tenant.account, "shop", task_id=task.id).items[0]
    assert view.task.status == SUCCESS and view.url
    response = download(http, view.url)
    assert response.status_code == 200
    rows = [json.loads(line) for line in response.text.splitlines()]

    expected = []
    for product, pic in (("p1", "a.jpg"), ("p1", "b.jpg"), ("p2", "c.jpg")):
        record = services.images.check_exists(tenant.account, "shop", product, pic)
        assert record is not None
        a = record.attributes
        expected.append(
            {
                "ProductId": product,
                "PicName": pic,
                "CategoryId": record.category_id,
                "IntAttr": a.int_attr,
                "IntAttr2": a.int_attr2,
                "IntAttr3": a.int_attr3,
                "IntAttr4": a.int_attr4,
                "StrAttr": a.str_attr,
                "StrAttr2": a.str_attr2,
                "StrAttr3": a.str_attr3,
                "StrAttr4": a.str_attr4,
                "CustomContent": record.custom_content,
                "Region": record.region,
            }
        )
    assert rows == expected
    assert rows[0]["StrAttr"] == "红" and rows[1]["IntAttr3"] == -2


def test_one_running_export_per_instance(services: Services, tenant: Tenant, clock: ManualClock) -> None:
    first = services.tasks.start_dump(tenant.account, "shop")
    tick(clock)
    with pytest.raises(LookalikeError) as info:
        services.tasks.start_dump(tenant.account, "shop")
    assert info.value.code == TASK_ALREADY_EXIST and info.value.http_status == 409
    services.tasks.run_pending()
    tick(clock)
    second = services.tasks.start_dump(tenant.account, "shop")
    assert second.id > first.id


def test_console_actions_are_rate_limited(services: Services, tenant: Tenant) -> None:
    services.tasks.start_dump(tenant.account, "shop")
    with pytest.raises(LookalikeError) as info:
        services.tasks.list_dumps(tenant.account, "shop")
    assert info.value.code == "DeniedRequest"


def test_signed_link_expires_and_refuses_tampering(
    services: Services, tenant: Tenant, clock: ManualClock, http: TestClient
) -> None:
    add(services, tenant, "p1", "a.jpg", "coffee")
    first = services.tasks.start_dump(tenant.account, "shop")
    services.tasks.run_pending()
    tick(clock)
    second = services.tasks.start_dump(tenant.account, "shop")
    services.tasks.run_pending()
    url = services.tasks.signed_url(first.id)
    assert download(http, url).status_code == 200

    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&"))
    signature = query["signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    later = str(int(query["expires"]) + 3600)
    bad = [
        f"{parts.path}?expires={query['expires']}&signature={flipped}",  # tampered signature
        f"{parts.path}?expires={later}&signature={signature}",  # extended expiry
        f"/v1/exports/{second.id}?expires={query['expires']}&signature={signature}",  # another task
        f"{parts.path}?expires={query['expires']}",  # unsigned
        f"{parts.path}",
    ]
    for target in bad:
        response = http.get(target)
        assert response.status_code == 403, target
        assert response.json()["code"] == "NoPermission"

    clock.advance(timedelta(hours=2))
    assert download(http, url).status_code == 200  # still inside its 2 hours
    clock.advance(timedelta(seconds=1, milliseconds=1))
    response = download(http, url)
    assert response.status_code == 403 and "expired" in response.json()["message"]
    # A freshly listed link works again.
    tick(clock)
    fresh = services.tasks.list_dumps(tenant.account, "shop", task_id=first.id).items[0].url
    assert download(http, fresh).status_code == 200


def test_dump_list_paging_and_limits(services: Services, tenant: Tenant, clock: ManualClock) -> None:
    ids = []
    for _ in range(3):
        ids.append(services.tasks.start_dump(tenant.account, "shop").id)
        services.tasks.run_pending()
        tick(clock)
    page = services.tasks.list_dumps(tenant.account, "shop", page_number=2, page_size=2)
    assert (page.total, page.page_number, page.page_size) == (3, 2, 2)
    assert [v.task.id for v in page.items] == [ids[0]]  # newest first
    for number, size in ((0, 10), (1, 0), (1, 501)):
        tick(clock)
        with pytest.raises(LookalikeError) as info:
            services.tasks.list_dumps(tenant.account, "shop", page_number=number, page_size=size)
        assert info.value.code == "InvalidParameter"
    tick(clock)
    assert services.tasks.list_dumps(tenant.account, "shop", page_size=500).total == 3


# --- IncreaseInstance ---


def test_increase_adds_deletes_and_reports_failed_lines(
    services: Services, tenant: Tenant, clock: ManualClock, http: TestClient, bucket: Path
) -> None:
    add(services, tenant, "old", "gone.jpg", "camera")
    add(services, tenant, "keep", "k1.jpg", "coins")
    add(services, tenant, "keep", "k2.jpg", "astronaut")
    put_picture(bucket, "batch/pics/coffee.jpg", "coffee")
    put_picture(bucket, "shared/rocket.jpg", "rocket")
    put_picture(bucket, "batch/chelsea.jpg", "chelsea")
    path = write_meta(
        bucket,
        [
            {
                "OperationType": "ADD",
                "ProductId": "1000",
                "PicName": "pics/coffee.jpg",
                "CategoryId": 0,
                "IntAttr": 5,
                "StrAttr": "value1",
                "CustomContent": "k1:v1,k2:v2",
            },
            {"OperationType": "ADD", "ProductId": 1001, "PicName": "/shared/rocket.jpg", "IntAttr2": "9"},
            {"OperationType": "DELETE", "ProductId": "old"},
            {"OperationType": "DELETE", "ProductId": "keep", "PicName": "k1.jpg"},
            {"OperationType": "ADD", "ProductId": "1002", "PicName": "pics/missing.jpg"},
            {"OperationType": "ADD", "ProductId": "1003", "PicName": "chelsea.jpg", "Region": "1,2,3"},
            "",
            "this is not json",
            {"OperationType": "ADD", "ProductId": "1004", "PicName": "../../outside.jpg"},
            {"OperationType": "UPSERT", "ProductId": "1005", "PicName": "chelsea.jpg"},
        ],
    )
    task = services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
    assert task.status == PROCESSING
    assert services.tasks.run_pending() == 1

    done = TaskRepository(services.engine).get(task.id)
    assert done is not None
    assert (done.status, done.succeeded, done.failed, done.progress) == (SUCCESS, 4, 5, 10)
    assert done.msg == "4 lines applied, 5 failed."

    found = services.images.search_by_pic(tenant.account, "shop", jpeg("coffee")).hits[0].record
    assert (found.product_id, found.pic_name, found.attributes.int_attr, found.attributes.str_attr) == (
        "1000",
        "pics/coffee.jpg",
        5,
        "value1",
    )
    assert found.custom_content == "k1:v1,k2:v2"
    rocket = services.images.check_exists(tenant.account, "shop", "1001", "/shared/rocket.jpg")
    assert rocket is not None and rocket.attributes.int_attr2 == 9
    assert services.images.check_exists(tenant.account, "shop", "old", "gone.jpg") is None
    assert services.images.check_exists(tenant.account, "shop", "keep", "k1.jpg") is None
    assert services.images.check_exists(tenant.account, "shop", "keep", "k2.jpg") is not None

    tick(clock)
    view = services.tasks.list_increases(tenant.account, "shop", task_id=task.id).items[0]
    assert view.url
    response = download(http, view.url)
    assert response.status_code == 200
    errors = [json.loads(line) for line in response.text.splitlines()]
    assert [(e["Line"], e["Code"]) for e in errors] == [
        (5, "PicNotExist"),
        (6, "InvalidRegion"),
        (8, "InvalidMetaItem"),
        (9, "InvalidParameter"),
        (10, "UnsupportedOperationType"),
    ]
    assert errors[0]["ProductId"] == "1002" and errors[0]["PicName"] == "pics/missing.jpg"
    assert "missing.jpg" in errors[0]["Message"]
    assert errors[0]["OperationType"] == "ADD"


def test_increase_whose_every_line_fails_is_fail(
    services: Services, tenant: Tenant, clock: ManualClock, bucket: Path
) -> None:
    path = write_meta(bucket, [{"OperationType": "ADD", "ProductId": "1", "PicName": "nope.jpg"}])
    task = services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
    services.tasks.run_pending()
    tick(clock)
    view = services.tasks.list_increases(tenant.account, "shop").items[0]
    assert (view.task.id, view.task.status, view.task.failed) == (task.id, FAIL, 1)
    assert view.url  # the error file still explains why


def test_increase_accepts_the_folder_as_path(services: Services, tenant: Tenant, bucket: Path) -> None:
    put_picture(bucket, "batch/coffee.jpg", "coffee")
    write_meta(bucket, [{"OperationType": "ADD", "ProductId": "1", "PicName": "coffee.jpg"}])
    services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path="/batch")
    services.tasks.run_pending()
    assert services.images.check_exists(tenant.account, "shop", "1", "coffee.jpg") is not None


def test_increase_refuses_bad_buckets_paths_and_callbacks(
    services: Services, tenant: Tenant, clock: ManualClock, bucket: Path, tmp_path: Path
) -> None:
    write_meta(bucket, [])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "increment.meta").write_text("", "utf-8")
    (bucket / "escape").symlink_to(outside, target_is_directory=True)

    def refused(**kwargs: Any) -> str:
        params: dict[str, Any] = {"bucket_name": BUCKET, "path": "/batch/increment.meta", **kwargs}
        with pytest.raises(LookalikeError) as info:
            services.tasks.start_increase(tenant.account, "shop", **params)
        assert info.value.code == "InvalidParameter"
        return info.value.message

    missing = refused(path="/batch/absent.meta")
    assert "No increment.meta" in missing
    assert refused(bucket_name="nope", path="/batch/absent.meta") == missing.replace(BUCKET, "nope")
    refused(bucket_name=None)
    refused(path=None)
    refused(path="batch/increment.meta")  # not absolute
    refused(path="/batch/")  # trailing slash
    assert "leaves the bucket" in refused(path="/../outside/increment.meta")
    assert "leaves the bucket" in refused(path="/batch/../../outside/increment.meta")
    assert "leaves the bucket" in refused(path="/escape/increment.meta")  # symlink out of the root
    refused(path="/batch/absent.meta")
    assert "allow-list" in refused(callback_address="http://example.com/hook")
    refused(callback_address="ftp://127.0.0.1/hook")
    # None of the refusals created a task or used the console rate budget of a real submission.
    assert TaskRepository(services.engine).pending_ids() == []
    services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path="/batch/increment.meta")


def test_resolve_in_bucket_keeps_inside_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.jpg").write_bytes(b"x")
    os.symlink(root / "a" / "f.jpg", root / "link.jpg")
    assert resolve_in_bucket(root, "/link.jpg") == (root / "a" / "f.jpg").resolve()
    assert resolve_in_bucket(root, "f.jpg", (root / "a").resolve()) == (root / "a" / "f.jpg").resolve()
    with pytest.raises(LookalikeError):
        resolve_in_bucket(root, "a/../a/f.jpg")


def test_one_running_increase_per_instance(
    services: Services, tenant: Tenant, clock: ManualClock, bucket: Path
) -> None:
    path = write_meta(bucket, [])
    services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
    tick(clock)
    with pytest.raises(LookalikeError) as info:
        services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
    assert info.value.code == TASK_ALREADY_EXIST and info.value.http_status == 409
    tick(clock)
    services.tasks.start_dump(tenant.account, "shop")  # an export may run beside a batch


def test_increase_list_filters(services: Services, tenant: Tenant, clock: ManualClock, bucket: Path) -> None:
    first = write_meta(bucket, [], folder="one")
    second = write_meta(bucket, [], folder="two")
    ids = []
    for path in (first, second, first):
        ids.append(services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path).id)
        services.tasks.run_pending()
        tick(clock)
    tasks = services.tasks

    def listed(**kwargs: Any) -> list[int]:
        tick(clock)
        return [v.task.id for v in tasks.list_increases(tenant.account, "shop", **kwargs).items]

    assert listed() == ids[::-1]
    assert listed(path=first) == [ids[2], ids[0]]
    assert listed(task_id=ids[1]) == [ids[1]]
    assert listed(bucket_name="other") == []
    assert listed(bucket_name=BUCKET, path=second) == [ids[1]]
    assert listed(page_size=1, page_number=3) == [ids[0]]
    tick(clock)
    view = tasks.list_increases(tenant.account, "shop", task_id=ids[0]).items[0]
    assert (view.task.status, view.url, view.task.bucket_name) == (SUCCESS, "", BUCKET)


def test_increase_waits_for_flow_control(
    services: Services, tenant: Tenant, clock: ManualClock, bucket: Path
) -> None:
    services.instances_repo.set_operation_limits(tenant.instance.id, add_qps=1, delete_qps=1, update_qps=1)
    for name in ("coffee", "rocket", "chelsea"):
        put_picture(bucket, f"batch/{name}.jpg", name)
    path = write_meta(
        bucket,
        [
            {"OperationType": "ADD", "ProductId": n, "PicName": f"{n}.jpg"}
            for n in ("coffee", "rocket", "chelsea")
        ],
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    tasks = TaskService(
        settings=services.settings,
        repo=TaskRepository(services.engine),
        images=services.images,
        accounts=services.accounts,
        instances=services.instances_repo,
        clock=clock,
        link_key=b"k" * 32,
        sleep=sleep,
    )
    task = tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
    tasks.run_pending()
    done = TaskRepository(services.engine).get(task.id)
    assert done is not None and (done.status, done.succeeded, done.failed) == (SUCCESS, 3, 0)
    assert len(waits) >= 2 and all(0 < w <= 1.0 for w in waits)


def test_batch_tasks_yield_after_a_slice_and_tenants_take_turns(
    services: Services, tenant: Tenant, clock: ManualClock, bucket: Path
) -> None:
    """Each line costs 1 s of the injected monotonic clock and a slice is 2 s: A's 5-line import is cut into
    slices, B's export (submitted after it) runs right after A's first slice, and A still ends complete."""
    for n in ("coffee", "rocket"):
        put_picture(bucket, f"batch/{n}.jpg", n)
    path = write_meta(
        bucket, [{"OperationType": "ADD", "ProductId": str(i), "PicName": "coffee.jpg"} for i in range(5)]
    )
    other = make_tenant(services, "other-tenant", "their-shop")
    now = [0.0]
    order: list[str] = []

    def monotonic() -> float:
        now[0] += 1.0  # read once per line (and once as the slice starts)
        return now[0]

    tasks = TaskService(
        settings=replace(services.settings, task_slice_s=2.0),
        repo=TaskRepository(services.engine),
        images=services.images,
        accounts=services.accounts,
        instances=services.instances_repo,
        clock=clock,
        link_key=b"k" * 32,
        sleep=lambda seconds: clock.advance(seconds),
        monotonic=monotonic,
    )
    repo = TaskRepository(services.engine)
    original_claim = repo.claim
    long_task = tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
    export = tasks.start_dump(other.account, other.instance.name)

    def claim(task_id: int, *args: Any) -> Any:
        order.append("A" if task_id == long_task.id else "B")
        return original_claim(task_id, *args)

    tasks._repo.claim = claim  # type: ignore[method-assign]  # observe the order, the claim itself is real
    assert tasks.run_pending() == 2
    assert order[:3] == ["A", "B", "A"]  # A's first slice, then B, then A resumes
    done = repo.get(long_task.id)
    assert done is not None and (done.status, done.succeeded, done.failed) == (SUCCESS, 5, 0)
    assert len(order) >= 4  # the import took several slices
    assert services.images.check_exists(tenant.account, "shop", "4", "coffee.jpg") is not None
    assert repo.get(export.id) is not None and repo.get(export.id).status == SUCCESS  # type: ignore[union-attr]


def test_expired_instance_cannot_start_a_batch(services: Services, clock: ManualClock, bucket: Path) -> None:
    account, _key = services.accounts.create_account("shortlived")
    services.billing.grant(account.id, "month", capacity=10_000, qps=5, months=1)
    path = write_meta(bucket, [])
    clock.advance(timedelta(days=32))
    services.lifecycle.sweep()
    with pytest.raises(LookalikeError) as info:
        services.tasks.start_increase(account, "month", bucket_name=BUCKET, path=path)
    assert info.value.code == "InstanceStatusError"
    tick(clock)
    services.tasks.start_dump(account, "month")  # an export still lets a tenant take its data away


class _SimulatedCrash(BaseException):
    pass


def test_crash_resumes_from_the_last_committed_line(
    services: Services, tenant: Tenant, clock: ManualClock, settings: Settings, bucket: Path
) -> None:
    names = ("coffee", "rocket", "chelsea", "astronaut", "camera")
    for name in names:
        put_picture(bucket, f"batch/{name}.jpg", name)
    path = write_meta(
        bucket,
        [{"OperationType": "ADD", "ProductId": f"p-{n}", "PicName": f"{n}.jpg"} for n in names]
        + [{"OperationType": "ADD", "ProductId": "bad", "PicName": "missing.jpg"}],
    )
    task = services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)

    real_add: Callable[..., Any] = services.images.add_image
    calls = 0

    def add_then_crash(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = real_add(*args, **kwargs)
        if calls == 3:  # the third picture is written, but the process dies before its line commits
            raise _SimulatedCrash
        return result

    services.images.add_image = add_then_crash  # type: ignore[method-assign]
    with pytest.raises(_SimulatedCrash):
        services.tasks.run_pending()
    repo = TaskRepository(services.engine)
    crashed = repo.get(task.id)
    assert crashed is not None and (crashed.status, crashed.progress, crashed.succeeded) == (PROCESSING, 2, 2)

    restarted = build_services(settings, clock=clock, background=False)
    try:
        assert restarted.tasks.run_pending() == 0  # the dead worker's lease has not run out yet
        clock.advance(LEASE_S + 1)
        assert restarted.tasks.run_pending() == 1
        done = repo.get(task.id)
        assert done is not None
        assert (done.status, done.progress, done.succeeded, done.failed) == (SUCCESS, 6, 5, 1)
        assert restarted.instances_repo.count_images(tenant.instance.id) == 5  # line 3 redone, no duplicate
        for name in names:
            hit = restarted.images.search_by_pic(tenant.account, "shop", jpeg(name)).hits[0].record
            assert hit.product_id == f"p-{name}"
        assert [e.line_no for e in repo.errors(task.id)] == [6]
    finally:
        restarted.close()


def test_graceful_stop_hands_the_task_back(
    services: Services, tenant: Tenant, clock: ManualClock, settings: Settings, bucket: Path
) -> None:
    put_picture(bucket, "batch/coffee.jpg", "coffee")
    path = write_meta(bucket, [{"OperationType": "ADD", "ProductId": "1", "PicName": "coffee.jpg"}])
    task = services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
    services.tasks.stop()  # stopped before it ran: nothing claimed, the next process takes it at once
    assert services.tasks.run_pending() == 0
    restarted = build_services(settings, clock=clock, background=False)
    try:
        assert restarted.tasks.run_pending() == 1
        done = TaskRepository(services.engine).get(task.id)
        assert done is not None and done.status == SUCCESS
    finally:
        restarted.close()


# --- callbacks ---


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    arrived = threading.Event()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()
        _Hook.arrived.set()

    def log_message(self, *args: Any) -> None:
        pass


def test_callback_is_posted_on_completion(services: Services, tenant: Tenant, bucket: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = write_meta(bucket, [{"OperationType": "DELETE", "ProductId": "nothing"}])
        address = f"http://127.0.0.1:{server.server_port}/hook?x=1"
        task = services.tasks.start_increase(
            tenant.account, "shop", bucket_name=BUCKET, path=path, callback_address=address
        )
        services.tasks.run_pending()
        assert _Hook.arrived.wait(10)
        body = _Hook.received[-1]
        assert body["Id"] == task.id and body["Status"] == SUCCESS and body["ErrorUrl"] == ""
        assert body["BucketName"] == BUCKET and body["Path"] == path
    finally:
        server.shutdown()
        server.server_close()


def test_callback_failure_never_blocks_the_task(services: Services, tenant: Tenant, bucket: Path) -> None:
    path = write_meta(bucket, [{"OperationType": "DELETE", "ProductId": "nothing"}])
    task = services.tasks.start_increase(
        tenant.account, "shop", bucket_name=BUCKET, path=path, callback_address="http://127.0.0.1:9/closed"
    )
    assert services.tasks.run_pending() == 1
    done = TaskRepository(services.engine).get(task.id)
    assert done is not None and done.status == SUCCESS


# --- settings ---


def test_settings_parsers() -> None:
    assert parse_buckets(" a@acme=/x , b@acme+acc_12=/y/z ,c@*=/w") == {
        "a": Bucket(Path("/x"), frozenset({"acme"})),
        "b": Bucket(Path("/y/z"), frozenset({"acme", "acc_12"})),
        "c": Bucket(Path("/w"), frozenset({"*"})),
    }
    for malformed in ("a", "a=/x", "a@=/x", "@acme=/x", "a@acme="):
        with pytest.raises(ValueError):
            parse_buckets(malformed)
    assert parse_hosts("Hooks.Example.com, 127.0.0.1,") == frozenset({"hooks.example.com", "127.0.0.1"})


# --- the Alibaba actions through the official SDK (live loopback server) ---


def _sdk_error(call: Callable[[], Any]) -> tuple[str, int | None]:
    with pytest.raises(TeaException) as info:
        call()
    exc = info.value
    status = getattr(exc, "status_code", None)
    if status is None and isinstance(exc.data, dict):
        status = exc.data.get("statusCode")
    return exc.code, status


def test_sdk_dump_meta_and_list(services: Services, tenant: Tenant, clock: ManualClock) -> None:
    add(services, tenant, "商品 1", "a b&c.jpg", "coffee", str_attr="红")
    with live_server(services) as endpoint:
        client = client_v3(endpoint, tenant.key_id, tenant.secret)
        started = client.dump_meta(models.DumpMetaRequest(instance_name="shop")).body
        assert started.success is True
        assert started.data.dump_meta_status == PROCESSING and isinstance(started.data.id, str)
        tick(clock)
        assert _sdk_error(lambda: client.dump_meta(models.DumpMetaRequest(instance_name="shop"))) == (
            "Console.TaskAlreadyExist",
            409,
        )
        services.tasks.run_pending()
        tick(clock)
        body = client.dump_meta_list(
            models.DumpMetaListRequest(
                instance_name="shop", id=int(started.data.id), page_number=1, page_size=30
            )
        ).body
        assert (body.data.page_number, body.data.page_size, body.data.total_count) == (1, 30, 1)
        item = body.data.dump_meta_list[0]
        assert item.id == int(started.data.id) and item.status == SUCCESS and item.code == ""
        assert isinstance(item.utc_create, str) and item.utc_create.isdigit()
        assert isinstance(item.utc_modified, int) and item.utc_modified >= int(item.utc_create)
        parts = urlsplit(item.meta_url)
        response = httpx.get(f"http://{endpoint}{parts.path}?{parts.query}")
        assert response.status_code == 200
        row = json.loads(response.text.splitlines()[0])
        assert (row["ProductId"], row["PicName"], row["StrAttr"]) == ("商品 1", "a b&c.jpg", "红")
        tick(clock)
        assert _sdk_error(
            lambda: client.dump_meta_list(models.DumpMetaListRequest(instance_name="nope"))
        ) == ("Console.InstanceNotFound", 400)


def test_sdk_increase_instance_and_list(
    services: Services, tenant: Tenant, clock: ManualClock, bucket: Path
) -> None:
    put_picture(bucket, "batch/girl_cloth1.jpg", "astronaut")
    path = write_meta(
        bucket,
        [
            {
                "OperationType": "ADD",
                "ProductId": "1000",
                "PicName": "girl_cloth1.jpg",
                "CategoryId": 0,
                "IntAttr": 0,
                "StrAttr": "value1",
                "CustomContent": "k1:v1,k2:v2",
                "Region": "20,40,60,80",
            },
            {"OperationType": "ADD", "ProductId": "1001", "PicName": "absent.jpg"},
        ],
    )
    with live_server(services) as endpoint:
        client = client_v3(endpoint, tenant.key_id, tenant.secret)
        started = client.increase_instance(
            models.IncreaseInstanceRequest(instance_name="shop", bucket_name=BUCKET, path=path)
        ).body
        assert started.success is True and started.data.increment_status == PROCESSING
        tick(clock)
        assert _sdk_error(
            lambda: client.increase_instance(
                models.IncreaseInstanceRequest(instance_name="shop", bucket_name=BUCKET, path=path)
            )
        ) == ("Console.TaskAlreadyExist", 409)
        tick(clock)
        assert _sdk_error(
            lambda: client.increase_instance(
                models.IncreaseInstanceRequest(instance_name="shop", bucket_name="unknown", path=path)
            )
        ) == ("InvalidParameter", 400)
        services.tasks.run_pending()
        tick(clock)
        body = client.increase_list(
            models.IncreaseListRequest(instance_name="shop", bucket_name=BUCKET, path=path, page_size=10)
        ).body
        assert body.data.total_count == 1
        item = body.data.increments.instance[0]
        assert item.id == int(started.data.id) and isinstance(item.id, int)
        assert (item.status, item.bucket_name, item.path, item.callback_address) == (
            SUCCESS,
            BUCKET,
            path,
            "",
        )
        assert item.msg == "1 lines applied, 1 failed." and item.utc_create.isdigit()
        parts = urlsplit(item.error_url)
        errors = httpx.get(f"http://{endpoint}{parts.path}?{parts.query}").text.splitlines()
        assert [json.loads(line)["Line"] for line in errors] == [2]
        record = services.images.check_exists(tenant.account, "shop", "1000", "girl_cloth1.jpg")
        assert (
            record is not None and record.region == "20,40,60,80" and record.attributes.str_attr == "value1"
        )
