"""Two `lookalike serve` replicas sharing one PostgreSQL, one Redis and one Milvus (the scale-out set-up).

Shows, against the real servers (scripts/test-servers):
  (a) a write on replica A is searchable on replica B (and a delete on B never shows on A);
  (b) the combined search rate across both replicas stays within ±10% of the package QPS;
  (c) a lifecycle sweep runs exactly once although both replicas sweep;
  (d) killing one replica (SIGKILL) loses no acknowledged add: the other replica serves every one.

Each run gets a fresh PostgreSQL database (dropped at the end), its own Redis key prefix and a Milvus
collection prefix of its own. Without the servers' environment variables the tests skip locally and fail
under CI=true.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from imagegen import make_photo
from server import ServerProcess, cli_json

pytestmark = pytest.mark.slow

SERVER_ENV = ("LOOKALIKE_TEST_POSTGRES_URL", "LOOKALIKE_TEST_REDIS_URL", "LOOKALIKE_TEST_MILVUS_URI")
START_TIMEOUT_S = 240.0  # model load + Alembic + Milvus connection on a loaded 2-core machine
VISIBLE_WITHIN_S = 60.0  # Milvus is eventually consistent; generous for a loaded machine
RATE_QPS = 10  # the package QPS of the rate-limited instance
RATE_DURATION_S = 5.0
RATE_WORKERS_PER_REPLICA = 4


def _require_servers() -> dict[str, str]:
    missing = [name for name in SERVER_ENV if not os.environ.get(name)]
    if missing:
        message = f"two-replica test needs real servers: {', '.join(missing)} unset (scripts/test-servers)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return {name: os.environ[name] for name in SERVER_ENV}


class Replica(ServerProcess):
    """A `lookalike serve --demo-clock` with the shared backends' environment."""

    def __init__(self, data_dir: Path, env: dict[str, str], log_path: Path) -> None:
        super().__init__(
            data_dir, Path(env["LOOKALIKE_MODEL_CACHE_DIR"]), log_path, extra_args=("--demo-clock",)
        )
        self.env = env

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        super().start(timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    a: Replica
    b: Replica
    env: dict[str, str]
    cli_dir: Path  # data dir of the admin CLI (it only needs the database URL and the server key)
    account_id: str
    creds: tuple[str, str]  # the tenant's AccessKey pair
    admin: tuple[str, str]  # the operator's AccessKey pair

    def create_instance(self, name: str, *, qps: int, months: int = 12) -> dict[str, Any]:
        found: dict[str, Any] = cli_json(
            self.cli_dir,
            "admin",
            "create-instance",
            name,
            "--account",
            self.account_id,
            "--capacity",
            "100000",
            "--qps",
            str(qps),
            "--months",
            str(months),
            "--add-qps",
            "1000",
            "--delete-qps",
            "1000",
            env=self.env,
        )
        return found


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database, a unique Redis prefix and Milvus collection prefix; cleaned up after."""
    servers = _require_servers()
    import redis
    import sqlalchemy as sa

    run = uuid.uuid4().hex[:10]
    db_name = f"lookalike_2r_{run}"
    admin_url = sa.make_url(servers["LOOKALIKE_TEST_POSTGRES_URL"])
    admin_engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    redis_prefix = f"lookalike-test-{run}:"
    milvus_prefix = f"lk2r_{run}_"
    try:
        yield {
            "LOOKALIKE_DATABASE_URL": admin_url.set(database=db_name).render_as_string(hide_password=False),
            "LOOKALIKE_REDIS_URL": servers["LOOKALIKE_TEST_REDIS_URL"],
            "LOOKALIKE_REDIS_PREFIX": redis_prefix,
            "LOOKALIKE_VECTOR_BACKEND": "milvus",
            "LOOKALIKE_MILVUS_URI": servers["LOOKALIKE_TEST_MILVUS_URI"],
            "LOOKALIKE_MILVUS_COLLECTION_PREFIX": milvus_prefix,
        }
    finally:
        with admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin_engine.dispose()
        client = redis.Redis.from_url(servers["LOOKALIKE_TEST_REDIS_URL"])
        stale = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
        if stale:
            client.delete(*stale)
        client.close()
        _drop_milvus_collections(servers["LOOKALIKE_TEST_MILVUS_URI"], milvus_prefix)


def _milvus_collections(env: dict[str, str]) -> list[str]:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=env["LOOKALIKE_MILVUS_URI"])
    try:
        prefix = env["LOOKALIKE_MILVUS_COLLECTION_PREFIX"]
        return [name for name in client.list_collections() if name.startswith(prefix)]
    finally:
        client.close()


def _drop_milvus_collections(uri: str, prefix: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            if name.startswith(prefix):
                client.drop_collection(name)
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster(
    backends: dict[str, str], tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("two-replicas")
    env = {
        **os.environ,
        **backends,
        "LOOKALIKE_SERVER_KEY": Fernet.generate_key().decode(),  # both replicas decrypt the same secrets
        "LOOKALIKE_MODEL_CACHE_DIR": str(model_cache),
        "LOOKALIKE_SWEEP_INTERVAL_S": "1",  # both replicas sweep all the time
    }
    a = Replica(root / "a", env, root / "a.log")
    b = Replica(root / "b", env, root / "b.log")
    try:
        a.start()  # first start: migrates the new database and creates the operator account
        b.start()
        admin_file = json.loads((root / "a" / "admin-credentials.json").read_text())
        tenant = cli_json(root / "cli", "admin", "create-account", "twins", env=env)
        yield Cluster(
            a,
            b,
            env,
            root / "cli",
            tenant["account_id"],
            (tenant["access_key_id"], tenant["access_key_secret"]),
            (admin_file["access_key_id"], admin_file["access_key_secret"]),
        )
    finally:
        a.stop()
        b.stop()


def _poll(check: Callable[[], bool], within: float = VISIBLE_WITHIN_S, every: float = 0.25) -> float | None:
    """Seconds until `check()` held, or None if it never did within `within` seconds."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            return None
        time.sleep(every)


def _add(
    client: httpx.Client, instance: str, product_id: str, pic_name: str, picture: bytes
) -> httpx.Response:
    return client.post(
        f"/v1/instances/{instance}/images",
        data={"product_id": product_id, "pic_name": pic_name},
        files={"picture": (f"{pic_name}.jpg", picture, "image/jpeg")},
    )


def _names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["pic_name"] for hit in response.json()["results"]]


def _search_by_name(client: httpx.Client, instance: str, product_id: str, pic_name: str) -> list[str]:
    response = client.post(
        f"/v1/instances/{instance}/search/name",
        json={"product_id": product_id, "pic_name": pic_name, "num": 5},
    )
    return _names(response)


def _assert_empty(client: httpx.Client, instance: str) -> None:
    """A vector search and a listing on `instance` through `client`'s replica find nothing yet.

    Run before the other replica writes: the replica has then opened whatever it keeps per instance, so it
    cannot learn of later writes merely by loading the instance after them."""
    probe = client.post(
        f"/v1/instances/{instance}/search/picture",
        data={"num": "3"},
        files={"picture": ("q.jpg", make_photo(300, 200, seed=99), "image/jpeg")},
    )
    assert _names(probe) == []
    assert (
        _names(client.post(f"/v1/instances/{instance}/search/filter", json={"filter": "int_attr >= 0"})) == []
    )


# --- (a) --------------------------------------------------------------------------------------------------
def test_write_on_one_replica_is_searchable_on_the_other(cluster: Cluster) -> None:
    cluster.create_instance("twin-a", qps=1000)
    photos = {f"a-{i}": make_photo(360 + 16 * i, 260 + 8 * i, seed=100 + i) for i in range(3)}
    with (
        httpx.Client(base_url=cluster.a.url, auth=cluster.creds, timeout=60) as on_a,
        httpx.Client(base_url=cluster.b.url, auth=cluster.creds, timeout=60) as on_b,
    ):
        # B serves the instance (and has loaded whatever it keeps for it) before A writes to it, so B cannot
        # pick A's writes up by loading the instance lazily after them.
        _assert_empty(on_b, "twin-a")
        for name, picture in photos.items():
            assert _add(on_a, "twin-a", "sku-a", name, picture).status_code == 200

        def top_hit_on_b(name: str) -> bool:
            response = on_b.post(
                "/v1/instances/twin-a/search/picture",
                data={"num": "3"},
                files={"picture": ("q.jpg", photos[name], "image/jpeg")},
            )
            hits = response.json()["results"] if response.status_code == 200 else []
            return bool(hits) and hits[0]["pic_name"] == name and hits[0]["score"] >= 0.99

        pending = set(photos)

        def all_on_b() -> bool:
            for name in sorted(pending):
                if top_hit_on_b(name):
                    pending.discard(name)
            return not pending

        waited = _poll(all_on_b)
        assert waited is not None, f"added on A, not the top hit on B after {VISIBLE_WITHIN_S}s: {pending}"
        print(f"(a) {len(photos)} pictures written on A were top hits on B after {waited:.2f}s of polling")
        # ... through Milvus: the replicas made this run's collection there (no silent fallback to FAISS).
        assert _milvus_collections(cluster.env), "no Milvus collection with this run's prefix"

        # The other way round: a delete on B is never shown by A, even while Milvus still holds the vector.
        deleted = on_b.post(
            "/v1/instances/twin-a/images/delete", json={"product_id": "sku-a", "pic_name": "a-0"}
        )
        assert deleted.status_code == 200 and deleted.json()["pic_names"] == ["a-0"], deleted.text
        response = on_a.post(
            "/v1/instances/twin-a/search/picture",
            data={"num": "3"},
            files={"picture": ("q.jpg", photos["a-0"], "image/jpeg")},
        )
        assert "a-0" not in _names(response)


# --- (b) --------------------------------------------------------------------------------------------------
def test_combined_search_rate_stays_within_the_package_qps(cluster: Cluster) -> None:
    cluster.create_instance("twin-b", qps=RATE_QPS)
    with httpx.Client(base_url=cluster.a.url, auth=cluster.creds, timeout=60) as on_a:
        added = _add(on_a, "twin-b", "sku-b", "probe", make_photo(320, 240, seed=7))
        assert added.status_code == 200, added.text

    statuses: dict[str, Counter[int]] = {"a": Counter(), "b": Counter()}
    lock = threading.Lock()
    stop_at: list[float] = []
    granted_at: list[float] = []  # seconds since the start, when a 200 came back
    # The window starts when every client is connected (the barrier's action runs before it releases them).
    barrier = threading.Barrier(
        2 * RATE_WORKERS_PER_REPLICA, action=lambda: stop_at.append(time.monotonic() + RATE_DURATION_S)
    )

    def drive(which: str, url: str) -> None:
        with httpx.Client(base_url=url, auth=cluster.creds, timeout=30) as client:
            # Connect and authenticate first (listing instances is not rate limited), so the window starts
            # with every client sending searches, not with connection set-up on a loaded machine.
            assert client.get("/v1/instances").status_code == 200
            barrier.wait()
            while time.monotonic() < stop_at[0]:
                response = client.post(
                    "/v1/instances/twin-b/search/name",
                    json={"product_id": "sku-b", "pic_name": "probe", "num": 1},
                )
                with lock:
                    statuses[which][response.status_code] += 1
                    if response.status_code == 200:
                        granted_at.append(time.monotonic() - stop_at[0] + RATE_DURATION_S)

    workers = [
        threading.Thread(target=drive, args=(which, replica.url))
        for which, replica in (("a", cluster.a), ("b", cluster.b))
        for _ in range(RATE_WORKERS_PER_REPLICA)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    granted = statuses["a"][200] + statuses["b"][200]
    burst = max(1, RATE_QPS)  # GCRA with one second of burst
    expected = RATE_QPS * RATE_DURATION_S + burst
    print(
        f"(b) statuses per replica: {dict(statuses['a'])} / {dict(statuses['b'])}; "
        f"200s {granted} vs expected {expected:.0f} (QPS {RATE_QPS} x {RATE_DURATION_S}s + burst {burst}); "
        f"first/last 200 at {min(granted_at, default=0):.2f}/{max(granted_at, default=0):.2f}s"
    )
    for which, counts in statuses.items():
        assert set(counts) <= {200, 429}, f"replica {which} answered {dict(counts)}"
        assert counts[200] > 0, f"replica {which} served no search at all: {dict(counts)}"
    refused = statuses["a"][429] + statuses["b"][429]
    assert refused > granted, f"demand did not exceed the limit ({granted} granted, {refused} refused)"
    import redis

    with redis.Redis.from_url(cluster.env["LOOKALIKE_REDIS_URL"]) as shared:
        keys = list(shared.scan_iter(match=f"{cluster.env['LOOKALIKE_REDIS_PREFIX']}rl:*", count=1000))
    assert keys, "no rate-limit state under this run's Redis prefix: the replicas did not share Redis"
    assert abs(granted - expected) <= 0.10 * expected, f"{granted} searches granted, expected {expected:.0f}"


# --- (c) --------------------------------------------------------------------------------------------------
def test_lifecycle_sweep_runs_exactly_once(cluster: Cluster) -> None:
    granted = cluster.create_instance("twin-c", qps=5, months=1)
    paid_until = datetime.fromisoformat(granted["paid_until"])
    instance_id = granted["instance_id"]
    admin_urls = (cluster.a.url, cluster.b.url)

    def on_both(path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The same admin call on both replicas at the same moment."""
        barrier = threading.Barrier(2)
        replies: list[dict[str, Any]] = []

        def call(url: str) -> None:
            with httpx.Client(base_url=url, auth=cluster.admin, timeout=120) as client:
                barrier.wait()
                response = client.post(path, json=body)
            assert response.status_code == 200, response.text
            replies.append(response.json())

        threads = [threading.Thread(target=call, args=(url,)) for url in admin_urls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert len(replies) == 2
        return replies

    # Both clocks to 12 hours before the end of the period (the 7, 3 and 1-day notices are due), then past it.
    to_notices = int((paid_until - datetime.now(paid_until.tzinfo) - timedelta(hours=12)).total_seconds())
    reports = [r["sweep"] for r in on_both("/v1/admin/clock/advance", {"seconds": to_notices})]
    reports += [r["sweep"] for r in on_both("/v1/admin/clock/advance", {"seconds": 86_400})]
    for _ in range(3):  # and both sweep again, concurrently, while the background sweepers run too
        reports += on_both("/v1/admin/lifecycle/sweep", {})

    with httpx.Client(base_url=cluster.b.url, auth=cluster.creds, timeout=60) as on_b:
        detail = on_b.get("/v1/instances/twin-c")
        assert detail.status_code == 200 and detail.json()["status"] == "expired", detail.text
        events = [e for e in on_b.get("/v1/events").json()["events"] if e["instance_id"] == instance_id]
    kinds = Counter(event["kind"] for event in events)
    print(
        f"(c) events of the expiring instance: {dict(kinds)}; sweeps that ran: "
        f"{sum(bool(r['ran']) for r in reports)} of {len(reports)} explicit sweep calls"
    )
    for kind in ("expiring_in_7d", "expiring_in_3d", "expiring_in_1d", "expired"):
        assert kinds[kind] == 1, f"{kind}: {kinds[kind]} events, expected exactly one ({dict(kinds)})"
    assert max(kinds.values()) == 1, f"an event was recorded twice: {dict(kinds)}"
    assert sum("twin-c" in r["expired"] for r in reports) <= 1


# --- (d) --------------------------------------------------------------------------------------------------
def test_killing_a_replica_loses_no_acknowledged_add(cluster: Cluster) -> None:
    cluster.create_instance("twin-d", qps=1000)
    pictures = {
        f"d-{i:03d}": make_photo(320 + (i % 5) * 16, 240 + (i % 3) * 16, seed=500 + i) for i in range(60)
    }
    names = list(pictures)
    acknowledged: set[str] = set()
    attempted: set[str] = set()
    lock = threading.Lock()
    with httpx.Client(base_url=cluster.b.url, auth=cluster.creds, timeout=60) as on_b:
        # B serves the instance before A's writes, so it cannot learn them only by loading it afterwards.
        _assert_empty(on_b, "twin-d")

    def writer(worker: int) -> None:
        with httpx.Client(base_url=cluster.a.url, auth=cluster.creds, timeout=60) as client:
            for name in names[worker::2]:
                with lock:
                    attempted.add(name)
                try:
                    response = _add(client, "twin-d", "sku-d", name, pictures[name])
                except httpx.TransportError:
                    return  # replica A died under us
                if response.status_code == 200:
                    with lock:
                        acknowledged.add(name)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 300
    while len(acknowledged) < 20 and any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.02)
    cluster.a.kill9()  # mid-stream: the writers still have adds in flight
    for thread in threads:
        thread.join(timeout=120)
    assert 20 <= len(acknowledged) < len(pictures), f"{len(acknowledged)} acknowledged before the kill"
    assert cluster.b.alive

    with httpx.Client(base_url=cluster.b.url, auth=cluster.creds, timeout=60) as on_b:

        def exists(name: str) -> bool:
            response = on_b.post(
                "/v1/instances/twin-d/images/exists", json={"product_id": "sku-d", "pic_name": name}
            )
            assert response.status_code == 200, response.text
            return bool(response.json()["exists"])

        missing = sorted(name for name in acknowledged if not exists(name))
        assert not missing, f"acknowledged on A, unknown to B after the kill: {missing}"
        # Every picture B knows (acknowledged, or committed just before the kill) must be searchable on B.
        stored = sorted(name for name in attempted if name in acknowledged or exists(name))

        pending = set(stored)

        def all_searchable() -> bool:
            for name in sorted(pending):
                if name in _search_by_name(on_b, "twin-d", "sku-d", name):
                    pending.discard(name)
            return not pending

        waited = _poll(all_searchable)
        unsearchable = sorted(pending)
        print(
            f"(d) {len(acknowledged)} acknowledged by A before SIGKILL, {len(attempted)} attempted, "
            f"{len(stored)} stored; all searchable on B: {not unsearchable} "
            f"(after {waited if waited is None else round(waited, 2)}s of polling)"
        )
        assert not unsearchable, f"in SQL but never searchable on B: {unsearchable}"
