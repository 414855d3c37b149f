"""IncreaseInstance tasks on a Ray cluster (the setting `ray_address`; lookalike.service.bulk_analysis and
lookalike.bulk.ray_analysis): the same stored pictures (vectors within test_bulk_import's VECTOR_TOLERANCE),
task fields and error file as the local path; an over-quota task refused before anything is written; a
task re-run after a crash mid-way with nothing lost or doubled; a cluster that is away at start leaves the
server on the local path, said in one log line.

One loopback cluster for the session (tests/ray_cluster.py); this module's drivers share one connection.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import Tenant, grant_instance, make_settings, make_tenant
from lookalike.bulk import ray_analysis
from lookalike.bulk.ray_analysis import RayAnalysisEngine
from lookalike.clock import ManualClock
from lookalike.config import Bucket, Settings
from lookalike.service.container import Services, build_services
from lookalike.service.tasks import LEASE_S
from lookalike.storage.tables import changes, images
from lookalike.storage.tasks_repo import FAIL, SUCCESS, TaskRepository, TaskRow
from photos import encode, load_photo
from ray_cluster import RayCluster
from test_bulk_import import assert_same_pictures, stored_rows

BUCKET = "shop-bucket"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "horse", "camera")


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    for n, name in enumerate(PHOTOS):
        target = root / "batch" / "pics" / f"p{n}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode(load_photo(name)))
    (root / "batch" / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return root


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path, bucket: Path, database_url: str | None) -> Settings:
    return make_settings(
        tmp_path / "data",
        database_url,
        model_cache_dir=model_cache,
        buckets={BUCKET: Bucket(bucket, frozenset({"*"}))},
        callback_hosts=frozenset({"127.0.0.1"}),
    )


@pytest.fixture(scope="module", autouse=True)
def no_driver_left_over() -> Iterator[None]:
    """The module starts in a process that is no Ray driver: a module that ran before in the same process
    (the bulk import's) may have left it connected, and the first test here checks the server does not."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    yield


@pytest.fixture(scope="module")
def ray_driver(ray_cluster: RayCluster) -> Iterator[str]:
    """This process connected to the cluster once for the module (each server's engine reuses it)."""
    import ray

    ray.init(
        address=ray_cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False
    )
    try:
        yield ray_cluster.address
    finally:
        ray.shutdown()


@contextmanager
def on_ray(settings: Settings, clock: ManualClock, address: str, batch_size: int = 16) -> Iterator[Services]:
    """A server whose IncreaseInstance tasks run on the cluster (as `lookalike serve` builds it); windows of
    2 x 2 actors x ``batch_size`` lines."""
    services = build_services(
        replace(settings, ray_address=address),
        clock=clock,
        background=False,
        connect_bulk_engine=partial(RayAnalysisEngine.connect, batch_size=batch_size),
    )
    try:
        yield services
    finally:
        services.close()


def write_meta(bucket: Path, lines: list[dict[str, Any] | str]) -> str:
    (bucket / "batch" / "increment.meta").write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), "utf-8"
    )
    return "/batch/increment.meta"


def run_task(services: Services, tenant: Tenant, instance: str, path: str, **options: Any) -> TaskRow:
    task = services.tasks.start_increase(tenant.account, instance, bucket_name=BUCKET, path=path, **options)
    assert services.tasks.run_pending() == 1
    done = TaskRepository(services.engine).get(task.id)
    assert done is not None
    return done


def error_file(services: Services, task: TaskRow) -> list[dict[str, Any]]:
    path = services.settings.data_dir / "tasks" / str(task.id) / "errors.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def count(services: Services, table: sa.Table, instance_id: str) -> int:
    with services.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.instance_id == instance_id)
            ).scalar_one()
        )


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012  (one test's requests)
    arrived = threading.Event()

    def do_POST(self) -> None:
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers.get("content-length", "0")))))
        self.send_response(204)
        self.end_headers()
        _Hook.arrived.set()

    def log_message(self, *args: Any) -> None:
        pass


# Runs first: before this module connects the process to the cluster (ray_driver).
def test_a_cluster_away_at_start_leaves_tasks_on_this_server(
    settings: Settings, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("ray")
    import ray

    assert not ray.is_initialized()
    caplog.set_level(logging.INFO, logger="lookalike.service.bulk_analysis")
    with on_ray(settings, clock, "127.0.0.1:1") as services:  # nobody listens there
        note = services.tasks.increase_engine
        assert note.startswith(
            "on this server: the Ray cluster at 127.0.0.1:1 is unavailable: cannot connect"
        )
        said = [
            r for r in caplog.records if "IncreaseInstance tasks analyse their pictures" in r.getMessage()
        ]
        assert [(r.levelname, r.getMessage().split(" pictures ", 1)[1]) for r in said] == [("WARNING", note)]
        tenant = make_tenant(services, "acme", "shop")
        add = {"OperationType": "ADD", "ProductId": "1", "PicName": "pics/p0.jpg"}
        done = run_task(services, tenant, "shop", write_meta(settings.buckets[BUCKET].root, [add]))
        assert (done.status, done.succeeded) == (SUCCESS, 1)  # analysed here instead
        assert not ray.is_initialized()


def test_increase_on_ray_stores_what_the_local_increase_stores(
    services: Services,
    tenant: Tenant,
    settings: Settings,
    clock: ManualClock,
    bucket: Path,
    ray_driver: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same increment.meta through the local path (instance shop) and on Ray (instance viaray): the same
    task fields, error file and stored pictures; the callback is posted as today."""
    path = write_meta(
        bucket,
        [
            {
                "OperationType": "ADD",
                "ProductId": "p-0",
                "PicName": "pics/p0.jpg",
                "IntAttr": 5,
                "StrAttr": "a",
            },
            {"OperationType": "ADD", "ProductId": "p-1", "PicName": "pics/p1.jpg", "Crop": False},
            {"OperationType": "ADD", "ProductId": "p-2", "PicName": "pics/p2.jpg", "CategoryId": 3},
            {"OperationType": "ADD", "ProductId": "p-3", "PicName": "pics/p3.jpg", "Region": "10,110,20,100"},
            {"OperationType": "ADD", "ProductId": "p-4", "PicName": "pics/p4.jpg", "CustomContent": "k:v"},
            {"OperationType": "DELETE", "ProductId": "p-4"},  # the add before it is written first
            {"OperationType": "ADD", "ProductId": "p-0", "PicName": "pics/p0.jpg", "IntAttr": 7},  # last wins
            {"OperationType": "ADD", "ProductId": "p-5", "PicName": "/batch/pics/p5.jpg"},
            {"OperationType": "ADD", "ProductId": "bad", "PicName": "pics/missing.jpg"},
            {"OperationType": "ADD", "ProductId": "bad", "PicName": "corrupt.jpg"},
            {"OperationType": "ADD", "ProductId": "bad", "PicName": "pics/p1.jpg", "IntAttr": "many"},
            {"OperationType": "ADD", "ProductId": "bad", "PicName": "pics/p2.jpg", "Region": "1,2,3"},
            "",
            "this is not json",
            {"OperationType": "UPSERT", "ProductId": "bad", "PicName": "pics/p0.jpg"},
        ],
    )
    local = run_task(services, tenant, "shop", path)
    caplog.set_level(logging.INFO, logger="lookalike.service.bulk_analysis")
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with on_ray(settings, clock, ray_driver) as ray_services:
            assert (
                ray_services.tasks.increase_engine
                == f"on the Ray cluster at {ray_driver} (2 analysis actors)"
            )
            assert any(
                r.levelname == "INFO" and r.getMessage().endswith(ray_services.tasks.increase_engine)
                for r in caplog.records
            )
            viaray = grant_instance(ray_services, tenant.account.id, "viaray", capacity=100, qps=10)
            hook = f"http://127.0.0.1:{server.server_port}/done"
            remote = run_task(ray_services, tenant, "viaray", path, callback_address=hook)
            assert ray_services.tasks.increase_engine.startswith("on the Ray cluster")  # it did not fail
            clock.advance(1.1)  # the console actions' rate limit
            listed = ray_services.tasks.list_increases(tenant.account, "viaray").items[0].task
            assert _Hook.arrived.wait(10)
    finally:
        server.shutdown()
        server.server_close()
    assert (local.status, local.succeeded, local.failed, local.progress) == (SUCCESS, 8, 6, 15)
    assert (remote.status, remote.msg, remote.succeeded, remote.failed, remote.progress) == (
        local.status,
        local.msg,
        local.succeeded,
        local.failed,
        local.progress,
    )
    assert (listed.id, listed.status, listed.succeeded, listed.failed) == (remote.id, SUCCESS, 8, 6)
    assert error_file(services, remote) == error_file(services, local)
    assert [e["Code"] for e in error_file(services, remote)] == [
        "PicNotExist",
        "UnsupportedPicFormat",
        "InvalidIntAttr",
        "InvalidRegion",
        "InvalidMetaItem",
        "UnsupportedOperationType",
    ]
    kept = stored_rows(services, viaray.id)
    assert_same_pictures(stored_rows(services, tenant.instance.id), kept)
    assert sorted(kept) == sorted(
        [(f"p-{n}", f"pics/p{n}.jpg") for n in range(4)] + [("p-5", "/batch/pics/p5.jpg")]
    )
    assert kept[("p-0", "pics/p0.jpg")].attributes[0] == 7
    body = _Hook.received[-1]
    assert (body["Id"], body["Status"], bool(body["ErrorUrl"])) == (remote.id, SUCCESS, True)


def test_over_quota_increase_on_ray_is_refused_before_writing(
    tenant: Tenant, settings: Settings, clock: ManualClock, bucket: Path, ray_driver: str
) -> None:
    """Held + the file's new keys over the capacity: the task fails before any picture is written."""
    lines: list[dict[str, Any] | str] = [
        {"OperationType": "ADD", "ProductId": f"p-{n}", "PicName": f"pics/p{n}.jpg"} for n in range(5)
    ]
    path = write_meta(bucket, lines)
    with on_ray(settings, clock, ray_driver) as services:
        small = grant_instance(services, tenant.account.id, "small", capacity=4, qps=10)
        done = run_task(services, tenant, "small", path)
        assert (done.status, done.code, done.progress, done.succeeded) == (FAIL, "InstanceOverQuota", 0, 0)
        assert "would add 5" in done.msg
        assert count(services, images, small.id) == count(services, changes, small.id) == 0


class _SimulatedCrash(Exception):
    pass


def test_increase_on_ray_resumes_after_a_crash_with_nothing_lost_or_doubled(
    tenant: Tenant,
    settings: Settings,
    clock: ManualClock,
    bucket: Path,
    ray_driver: str,
) -> None:
    """Windows of 4 lines: the second window's pictures are written, then the process dies before its
    outcomes commit. The restarted server redoes that window: every picture once, each line counted once."""
    lines: list[dict[str, Any] | str] = [
        {
            "OperationType": "ADD",
            "ProductId": f"p-{n}",
            "PicName": f"pics/p{n % len(PHOTOS)}.jpg",
            "IntAttr": n,
        }
        for n in range(10)
    ]
    path = write_meta(bucket, [*lines, {"OperationType": "ADD", "ProductId": "bad", "PicName": "nope.jpg"}])
    with on_ray(settings, clock, ray_driver, batch_size=1) as services:
        real: Callable[..., Any] = services.images.store_analysed
        calls = 0

        def store_then_crash(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            written = real(*args, **kwargs)
            if calls == 2:  # written, but the process dies before the window's outcomes commit
                raise _SimulatedCrash
            return written

        services.images.store_analysed = store_then_crash  # type: ignore[method-assign]
        task = services.tasks.start_increase(tenant.account, "shop", bucket_name=BUCKET, path=path)
        with pytest.raises(_SimulatedCrash):
            services.tasks.run_pending()
        tasks = TaskRepository(services.engine)
        crashed = tasks.get(task.id)
        assert crashed is not None and (crashed.progress, crashed.succeeded) == (4, 4)
        assert services.instances_repo.count_images(tenant.instance.id) == 8
    with on_ray(settings, clock, ray_driver, batch_size=1) as restarted:
        assert restarted.tasks.run_pending() == 0  # the dead worker's lease has not run out yet
        clock.advance(LEASE_S + 1)
        assert restarted.tasks.run_pending() == 1
        done = tasks.get(task.id)
        assert done is not None
        assert (done.status, done.progress, done.succeeded, done.failed) == (SUCCESS, 11, 10, 1)
        assert [e.line_no for e in tasks.errors(task.id)] == [11]
        held = restarted.images._images
        assert held.stored_count(tenant.instance.id) == held.recount(tenant.instance.id) == 10
        assert sorted(stored_rows(restarted, tenant.instance.id)) == sorted(
            (f"p-{n}", f"pics/p{n % len(PHOTOS)}.jpg") for n in range(10)
        )


def test_an_engine_failing_mid_task_leaves_the_rest_to_this_server(
    tenant: Tenant,
    settings: Settings,
    clock: ManualClock,
    bucket: Path,
    ray_driver: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cluster stops answering (a batch past its timeout): the window in hand and the rest of the task
    run here, the log says so, and the server stays on the local path."""
    monkeypatch.setattr(ray_analysis, "BATCH_TIMEOUT_S", 0.001)  # no actor loads its model that fast
    lines: list[dict[str, Any] | str] = [
        {"OperationType": "ADD", "ProductId": f"p-{n}", "PicName": f"pics/p{n}.jpg"} for n in range(3)
    ]
    path = write_meta(bucket, [*lines, {"OperationType": "ADD", "ProductId": "bad", "PicName": "nope.jpg"}])
    with on_ray(settings, clock, ray_driver) as services:
        done = run_task(services, tenant, "shop", path)
        assert (done.status, done.progress, done.succeeded, done.failed) == (SUCCESS, 4, 3, 1)
        note = services.tasks.increase_engine
        assert note.startswith("on this server: the bulk engine failed: TimeoutError")
        assert any(
            "the bulk engine failed" in r.getMessage() for r in caplog.records if r.levelname == "WARNING"
        )
        assert services.instances_repo.count_images(tenant.instance.id) == 3
