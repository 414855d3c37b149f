"""Bulk import: the same manifest through `lookalike import --engine local` and `--engine ray`, the write
side's ceiling measured alone, and a projection of what importing 50M pictures in a day would take.

* **Pictures**: N distinct real pictures drawn reproducibly by bench/e2e_bench.py's ``PictureMaker`` (picture
  ``seed`` is a random crop (35-100% of the area, aspect 3:4-4:3), resize (longest side 400-640 px), mirror
  and brightness/contrast/colour jitter of one of scikit-image's bundled photos; seeds 0..N-1), JPEG q90,
  written once to a cache directory with a JSON-lines manifest (3 pictures per ProductId, IntAttr set).
* **local**: a `lookalike serve` process on PostgreSQL (faiss index) and `lookalike.importer.run_import`
  (the CLI's `--engine local`: one HTTP add per picture, 8 requests in flight).
* **ray**: a local Ray cluster on loopback (`ray start --head --num-cpus 2`: 2 analysis actors, 1 CPU and 1
  ONNX thread each) and `lookalike.bulk.ray_engine.run_ray_import` writing into PostgreSQL (faiss index,
  which servers catch up from the change log). Both runs import into a fresh database.
* **write ceiling**: synthetic rows with real sizes (256-d vector + whole-picture vector, 5.8 KB thumbnail,
  2.6 KB local features: bench/README's thumbnail and feature sizes) written alone by
  ``ImageRepository.upsert_many`` (``--write-batch`` rows a transaction) into PostgreSQL; then a Milvus
  index caught up with them by ``IndexManager`` (its catch-up: SQL read of the change log + Milvus upsert).
* **projection**: from those measured rates only, how many analysis workers (at the measured per-worker
  rate) and how many writers (at the measured write rates) importing 50M pictures in under 24 h needs. It is
  a projection: nothing here ran on more than this machine.

    eval "$(scripts/test-servers start)"
    nice -n 10 .venv/bin/python bench/bulk_import_bench.py --count 20000

Needs PostgreSQL (LOOKALIKE_TEST_POSTGRES_URL) and Milvus (LOOKALIKE_TEST_MILVUS_URI); writes
bench/results/bulk_import_bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import Pool
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import sqlalchemy as sa
from run_info import git, machine_info

from lookalike.clock import SystemClock
from lookalike.config import Settings
from lookalike.domain.models import Attributes
from lookalike.importer import run_import
from lookalike.service.container import build_control_plane
from lookalike.storage.images_repo import ImageRepository, NewImage, NewPicture

REPO = Path(__file__).resolve().parent.parent
TARGET_PICTURES = 50_000_000
TARGET_SECONDS = 24 * 3600
THUMBNAIL_BYTES = 5_805  # bench/README: SQLite thumbnail growth per picture
FEATURE_BYTES = 2_631  # bench/README: PostgreSQL local-feature growth per picture
# At most thumbnails_max_capacity (1M): both engines make a thumbnail per picture, as most instances do.
CAPACITY = 1_000_000


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bulk_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


test_server = _load("server", REPO / "tests" / "server.py")

_maker: Any = None


def _draw(seed: int, directory: str) -> dict[str, Any]:
    global _maker
    if _maker is None:
        _maker = _load("e2e_bench", REPO / "bench" / "e2e_bench.py").PictureMaker()
    source, body = _maker.picture(seed)
    path = Path(directory) / f"{seed:06d}.jpg"
    path.write_bytes(body)
    return {
        "path": path.name,
        "product_id": f"p{seed // 3:06d}",
        "pic_name": f"{source}-{seed}.jpg",
        "int_attr": seed % 100,
    }


def draw_pictures(count: int, cache: Path) -> Path:
    """The manifest of pictures 0..count-1 (drawn once, then reused from the cache)."""
    directory = cache / f"pictures-{count}"
    manifest = directory / "manifest.jsonl"
    if manifest.exists():
        return manifest
    directory.mkdir(parents=True, exist_ok=True)
    with Pool(os.cpu_count() or 1) as pool:
        lines = pool.starmap(_draw, [(seed, str(directory)) for seed in range(count)], chunksize=64)
    temporary = manifest.with_suffix(".tmp")
    temporary.write_text("".join(json.dumps(line) + "\n" for line in lines))
    temporary.rename(manifest)
    return manifest


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    admin_url = sa.make_url(server_url)
    name = f"bulkbench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def tenant(settings: Settings, instance: str) -> tuple[str, str, str]:
    """An account with one instance (capacity 10M, adds unthrottled); returns (instance id, key, secret)."""
    plane = build_control_plane(settings, SystemClock())
    account, key = plane.accounts.create_account("bench")
    granted = plane.billing.orders.grant(account.id, instance, capacity=CAPACITY, qps=1000)
    plane.instances.set_operation_limits(granted.id, add_qps=100_000, delete_qps=1000, update_qps=1000)
    plane.engine.dispose()
    return granted.id, key.access_key_id, key.access_key_secret


def stored(settings: Settings, instance_id: str) -> dict[str, int]:
    engine = sa.create_engine(str(settings.database_url), poolclass=sa.NullPool)
    repo = ImageRepository(engine)
    out = {"count": repo.stored_count(instance_id), "rows": repo.recount(instance_id)}
    engine.dispose()
    return out


def run_local(manifest: Path, settings: Settings, work: Path, clients: int) -> dict[str, Any]:
    instance_id, key_id, secret = tenant(settings, "bench")
    server = test_server.ServerProcess(
        settings.data_dir, settings.models_dir, work / "server.log", settings.database_url
    )
    server.start(timeout=300)
    try:
        started = time.perf_counter()
        summary = run_import(
            source=manifest,
            instance="bench",
            url=server.url,
            key_id=key_id,
            secret=secret,
            state_dir=work / "local-state",
            workers=clients,
            progress=False,
        )
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    return {
        "seconds": round(seconds, 1),
        "pictures_per_s": round(summary["added"] / seconds, 2),
        "added": summary["added"],
        "failed": summary["failed"],
        "stored": stored(settings, instance_id),
        "http_clients": clients,
    }


@contextmanager
def ray_cluster(cpus: int, log: Path) -> Iterator[str]:
    port = test_server.free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            "--num-cpus",
            str(cpus),
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--include-dashboard=false",
            "--object-store-memory",
            str(1024 * 1024 * 1024),
            "--disable-usage-stats",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_ray(
    manifest: Path, settings: Settings, work: Path, workers: int, batch_size: int, write_batch: int
) -> dict[str, Any]:
    from lookalike.bulk.ray_engine import run_ray_import

    instance_id, _, _ = tenant(settings, "bench")
    with ray_cluster(workers, work / "ray.log") as address:
        started = time.perf_counter()
        summary = run_ray_import(
            settings=settings,
            source=manifest,
            instance="bench",
            state_dir=work / "ray-state",
            address=address,
            workers=workers,
            batch_size=batch_size,
            write_batch=write_batch,
            progress=False,
        )
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "pictures_per_s": round(summary["added"] / seconds, 2),
        "per_worker_pictures_per_s": round(summary["added"] / seconds / workers, 2),
        "added": summary["added"],
        "failed": summary["failed"],
        "stored": stored(settings, instance_id),
        "workers": workers,
        "batch_size": batch_size,
        "write_batch": write_batch,
        "note": "includes Ray start-up of the job and each actor's model load",
    }


def synthetic(n: int, rng: np.random.Generator) -> NewPicture:
    vectors = rng.normal(size=(2, 256)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return NewPicture(
        NewImage(
            product_id=f"w{n // 3:07d}",
            pic_name=f"write-{n}.jpg",
            category_id=n % 20,
            attributes=Attributes(int_attr=n % 100, str_attr=f"s{n % 7}"),
            custom_content="",
            region="10,300,10,300",
            embedding=vectors[0],
            model_id="bench",
            aux_embedding=vectors[1],
        ),
        thumbnail=rng.bytes(THUMBNAIL_BYTES),
        local_features=rng.bytes(FEATURE_BYTES),
    )


def write_ceiling(settings: Settings, rows: int, write_batch: int, milvus_uri: str | None) -> dict[str, Any]:
    """PostgreSQL's upsert_many alone, then (with Milvus) the index's catch-up of those rows alone."""
    from lookalike.service.container import open_database
    from lookalike.vectors.manager import IndexManager
    from lookalike.vectors.reduction import packaged as packaged_reduction

    instance_id, _, _ = tenant(settings, "writes")
    engine = open_database(settings)
    repo = ImageRepository(engine)
    indexes = None
    if milvus_uri:
        from lookalike.vectors.milvus import MilvusBackend

        backend = MilvusBackend(
            milvus_uri,
            engine=engine,
            collection_prefix=f"bulkbench_{uuid.uuid4().hex[:8]}_",
            write_through=False,
        )
        indexes = IndexManager(settings.index_dir, repo, packaged_reduction(), backend=backend)
        indexes.get(instance_id)  # the collection exists (empty) before the timing
    rng = np.random.default_rng(7)
    pictures = [synthetic(n, rng) for n in range(rows)]
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    for start in range(0, rows, write_batch):
        repo.upsert_many(instance_id, pictures[start : start + write_batch], capacity=CAPACITY, now=now)
    pg_seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "rows": rows,
        "write_batch": write_batch,
        "postgres_upsert_many_rows_per_s": round(rows / pg_seconds, 1),
        "postgres_seconds": round(pg_seconds, 2),
        "row": f"2 x 256-d float16 vectors, {THUMBNAIL_BYTES} B thumbnail, {FEATURE_BYTES} B local features",
    }
    if indexes is not None:
        try:
            started = time.perf_counter()
            with indexes.writing(instance_id):  # a shared index catches up with the change log on exit
                pass
            milvus_seconds = time.perf_counter() - started
            out["milvus_catch_up_rows_per_s"] = round(rows / milvus_seconds, 1)
            out["milvus_seconds"] = round(milvus_seconds, 2)
            out["milvus_note"] = (
                "IndexManager's catch-up of the rows alone: change log + rows read from PostgreSQL, "
                "Milvus upsert (its own collection, created beforehand)"
            )
        finally:
            indexes.drop(instance_id)
            indexes.close()
    engine.dispose()
    return out


def projection(ray: dict[str, Any], writes: dict[str, Any]) -> dict[str, Any]:
    needed = TARGET_PICTURES / TARGET_SECONDS
    per_worker = ray["per_worker_pictures_per_s"]
    out: dict[str, Any] = {
        "what": "a projection from this machine's measured rates, not a measurement on a cluster",
        "target": f"{TARGET_PICTURES:,} pictures in {TARGET_SECONDS // 3600} h",
        "needed_pictures_per_s": round(needed, 1),
        "per_worker_pictures_per_s": per_worker,
        "analysis_workers_needed": math.ceil(needed / per_worker),
        "postgres_writers_needed": math.ceil(needed / writes["postgres_upsert_many_rows_per_s"]),
        "hours_with_one_postgres_writer": round(
            TARGET_PICTURES / writes["postgres_upsert_many_rows_per_s"] / 3600, 1
        ),
    }
    if "milvus_catch_up_rows_per_s" in writes:
        out["milvus_writers_needed"] = math.ceil(needed / writes["milvus_catch_up_rows_per_s"])
        out["hours_with_one_milvus_catch_up"] = round(
            TARGET_PICTURES / writes["milvus_catch_up_rows_per_s"] / 3600, 1
        )
    return out


def machine() -> dict[str, Any]:
    import ray

    return machine_info() | {
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "ray": ray.__version__,
        "git_commit": git("rev-parse", "HEAD"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="Ray analysis actors (= the cluster's CPUs)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--write-batch", type=int, default=256)
    parser.add_argument("--http-clients", type=int, default=8)
    parser.add_argument("--write-rows", type=int, default=20_000)
    parser.add_argument("--engines", default="ray,local")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lookalike-bulk-bench"))
    parser.add_argument("--postgres-url", default=os.environ.get("LOOKALIKE_TEST_POSTGRES_URL"))
    parser.add_argument("--milvus-uri", default=os.environ.get("LOOKALIKE_TEST_MILVUS_URI"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "bulk_import_bench.json")
    args = parser.parse_args()
    if not args.postgres_url:
        sys.exit('needs PostgreSQL: eval "$(scripts/test-servers start)" or --postgres-url')
    info = machine()
    print(f"machine: {info}", flush=True)
    started = time.perf_counter()
    manifest = draw_pictures(args.count, args.cache)
    drawn_s = time.perf_counter() - started
    print(f"{args.count} pictures ready in {drawn_s:.0f} s: {manifest}", flush=True)
    models = args.cache / "models"
    results: dict[str, Any] = {}
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "pictures": {
            "count": args.count,
            "drawn_by": "bench/e2e_bench.py PictureMaker, seeds 0..count-1: a random crop (35-100% of the "
            "area, aspect 3:4-4:3), resize (longest side 400-640 px), 50% mirror, brightness/contrast "
            "0.8-1.2 and colour 0.7-1.3 of one of scikit-image's bundled photos (tests/photos.py), JPEG q90",
            "manifest": "3 pictures per ProductId, IntAttr = seed % 100",
            "draw_seconds": round(drawn_s, 1),
        },
        "engines": results,
    }

    def save() -> None:  # after each step: an interrupted run keeps what it measured
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")

    # The write side first (short), then the engines.
    with fresh_database(args.postgres_url) as url:
        work = args.cache / f"run-writes-{uuid.uuid4().hex[:6]}"
        settings = Settings(data_dir=work / "data", database_url=url, model_cache_dir=models)
        out["write_ceiling"] = writes = write_ceiling(
            settings, args.write_rows, args.write_batch, args.milvus_uri
        )
    print(f"writes: {writes}", flush=True)
    save()
    for engine in [e for e in args.engines.split(",") if e]:
        work = args.cache / f"run-{engine}-{uuid.uuid4().hex[:6]}"
        work.mkdir(parents=True)
        with fresh_database(args.postgres_url) as url:
            settings = Settings(data_dir=work / "data", database_url=url, model_cache_dir=models)
            if engine == "local":
                results[engine] = run_local(manifest, settings, work, args.http_clients)
            else:
                results[engine] = run_ray(
                    manifest, settings, work, args.workers, args.batch_size, args.write_batch
                )
        results[engine]["load_avg_after"] = list(os.getloadavg())
        print(f"{engine}: {results[engine]}", flush=True)
        if "ray" in results:
            out["projection"] = projection(results["ray"], writes)
        save()
    info["load_avg_at_end"] = list(os.getloadavg())
    save()
    print_table(out)


def print_table(out: dict[str, Any]) -> None:
    rows = [("measure", "value")]
    for engine, r in out["engines"].items():
        rows.append(
            (f"--engine {engine}: pictures/s ({r['added']} in {r['seconds']} s)", f"{r['pictures_per_s']}")
        )
    writes = out["write_ceiling"]
    rows.append(("PostgreSQL upsert_many rows/s (alone)", f"{writes['postgres_upsert_many_rows_per_s']}"))
    if "milvus_catch_up_rows_per_s" in writes:
        rows.append(("Milvus catch-up rows/s (alone)", f"{writes['milvus_catch_up_rows_per_s']}"))
    if "projection" in out:
        p = out["projection"]
        rows.append(("PROJECTION: pictures/s for 50M in 24 h", f"{p['needed_pictures_per_s']}"))
        rows.append(("PROJECTION: analysis workers (1 CPU each)", f"{p['analysis_workers_needed']}"))
        rows.append(("PROJECTION: PostgreSQL writers", f"{p['postgres_writers_needed']}"))
        if "milvus_writers_needed" in p:
            rows.append(("PROJECTION: Milvus catch-up streams", f"{p['milvus_writers_needed']}"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
