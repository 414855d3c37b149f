"""Capacity of the embedded vector index at 1M-10M pictures: RAM, disk, SQL bytes, start-up, search.

Drives the service's own code (``IndexManager`` + ``LocalIndex`` over ``ImageRepository`` on SQLite), not a
copy. For each ``--sizes`` N:

1. **Data** (say which: SYNTHETIC vectors drawn around REAL embeddings). ~2,000 augmented views (random
   crop, scale, mirror, colour jitter) of the scikit-image photos of tests/photos.py are embedded by
   ``EfficientNetEmbedder`` (1280-d; cached in /tmp) and reduced by ``packaged().reduce`` (256-d). A
   synthetic picture = normalize(p + sigma * z): p a random real reduced vector, z ~ N(0, I_256), sigma
   sized so the cosine to the parent is ~``--cos`` (0.5). Generated per chunk from a seeded generator,
   never all held at once; queries / upserts are drawn the same way from other seeds (not in the DB).
2. **SQL**: the rows go straight into a fresh SQLite database (the columns, float16 blob
   ``vector_to_blob``, model id ``packaged().model_id()`` and change-log rows the service writes), one
   transaction per chunk, timed. In the same pass the exact top-10 of every query is computed over the
   float32 originals (faiss IndexFlatIP per chunk, merged), unfiltered and for each filter subset.
3. **Cold start** in a subprocess (its own VmHWM): ``IndexManager(...).get(instance)`` on an empty index
   directory (streams the rows, trains once at the end) then ``save_dirty()``; phases are timed by
   wrapping the service's methods (SQL read, writes to the mapped files, training, encoding, list adds).
4. **Warm start** in another subprocess: ``get`` again on the saved directory; then, in that process,
   searches (sequential, 2 threads, filtered subsets), and single upserts / overwrites / removes.
5. An EMPTY-index process of the same kind (and the same plus the loaded model) is measured once: RAM per
   picture = (warm RSS after searches - empty RSS) / N, with RssAnon (what must be resident) and RssFile
   (mapped file pages: page cache, reclaimable) reported apart.

Writes ``bench/results/capacity_bench.json`` (after every size) and prints a table. The machine is shared
(2 cores): the load average is recorded per phase.

Usage: .venv/bin/python bench/capacity_bench.py [--sizes 1000000,5000000] [--queries 1000] [--keep]
       [--out bench/results/capacity_bench.json]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import faiss
import numpy as np
import sqlalchemy
from sqlalchemy import insert

from lookalike.domain.attributes import Attributes
from lookalike.storage.db import make_engine, migrate, sqlite_url
from lookalike.storage.images_repo import ImageRepository, vector_to_blob
from lookalike.storage.tables import accounts, changes, images, instances
from lookalike.vectors import local_index as local_index_module
from lookalike.vectors.local_index import LocalIndex, _Files, _Ivf
from lookalike.vectors.manager import IndexManager
from lookalike.vectors.planner import IndexPolicy, nlist_for, plan_search
from lookalike.vectors.reduction import packaged

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CACHE = Path(os.environ.get("LOOKALIKE_MODEL_CACHE_DIR", "/tmp/lookalike-bench-cache"))
ACCOUNT = "capbench-account"
INSTANCE = "capbench"
K = 10
CHUNK = 50_000  # rows generated / inserted / ground-truthed per step
TAG_QUERIES, TAG_WARMUP, TAG_UPSERTS, TAG_PICK = 10**9 + 1, 10**9 + 2, 10**9 + 3, 10**9 + 4
GB = 1024**3


def _load_test_module(name: str) -> ModuleType:
    # tests/ is not a package; load the shared photo helpers by path instead of copying them.
    spec = importlib.util.spec_from_file_location(f"_lookalike_tests_{name}", REPO / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------- /proc


_STATUS_KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap")


def proc_status() -> dict[str, int]:
    """This process's memory counters from /proc/self/status, in bytes."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in _STATUS_KEYS:
            out[key] = int(rest.split()[0]) * 1024
    return out


class PeakSampler:
    """Samples /proc/self/status in a thread: the peaks of RssAnon / RssFile (the kernel keeps only
    VmHWM, which mixes both)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.peak: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for key, value in proc_status().items():
            self.peak[key] = max(self.peak[key], value)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        self.sample()
        return dict(self.peak)


def dir_bytes(path: Path) -> dict[str, int]:
    """Apparent size (the files' lengths; slot files are pre-sized sparse) and allocated size (du)."""
    apparent = allocated = files = 0
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            apparent += st.st_size
            allocated += st.st_blocks * 512
            files += 1
    return {"apparent": apparent, "allocated": allocated, "files": files}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ----------------------------------------------------------------------------------- data


def _augment(src: Any, rng: np.random.Generator) -> Any:
    from PIL import Image, ImageEnhance, ImageOps

    w, h = src.size
    area = rng.uniform(0.35, 1.0) * w * h
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    cw = int(min(w, max(64, round(np.sqrt(area * aspect)))))
    ch = int(min(h, max(64, round(np.sqrt(area / aspect)))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = src.crop((x0, y0, x0 + cw, y0 + ch))
    longest = int(rng.integers(400, 641))
    scale = longest / max(cw, ch)
    img = img.resize((max(120, round(cw * scale)), max(120, round(ch * scale))), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
    return ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))


AUGMENT_TEXT = (
    "random crop of 35-100 % of the area at aspect 3:4-4:3, resized to a longest side of 400-640 px, "
    "mirrored with p=0.5, brightness and contrast x0.8-1.2, colour x0.7-1.3"
)


def real_features(views: int, seed: int) -> dict[str, Any]:
    """(views, 1280) model features of augmented views of the test photos (cached: reruns skip the model)."""
    from lookalike.vision.efficientnet import default_weights_path
    from lookalike.vision.embedder import EfficientNetEmbedder

    photos = _load_test_module("photos")
    weights = hashlib.sha256(default_weights_path().read_bytes()).hexdigest()[:12]
    key = hashlib.sha256(
        f"{views}|{seed}|{photos.PHOTO_NAMES}|{AUGMENT_TEXT}|{EfficientNetEmbedder.MODEL_ID}|{weights}".encode()
    ).hexdigest()[:16]
    path = CACHE / f"capacity_real_features_{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {
                "features": z["features"],
                "categories": z["categories"],
                "photo": z["photo"],
                "cached": str(path),
                "embed_s": 0.0,
                "photo_names": list(photos.PHOTO_NAMES),
            }
    from lookalike.vision.categories import predict_category

    t0 = time.perf_counter()
    sources = [photos.load_photo(name) for name in photos.PHOTO_NAMES]
    embedder = EfficientNetEmbedder(CACHE)
    feats, cats, photo = [], [], []
    batch: list[Any] = []
    for i in range(views):
        rng = np.random.default_rng([seed, i])
        p = i % len(sources)
        batch.append(_augment(sources[p], rng))
        photo.append(p)
        if len(batch) == 32 or i == views - 1:
            res = embedder.embed(batch)
            feats.append(res.vectors)
            cats.extend(predict_category(pr) for pr in res.class_probs)
            batch = []
            print(f"  embedded {i + 1}/{views}", end="\r", flush=True)
    print()
    features = np.concatenate(feats).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, features=features, categories=np.array(cats, np.int64), photo=np.array(photo, np.int64))
    os.replace(tmp, path)
    return {
        "features": features,
        "categories": np.array(cats, np.int64),
        "photo": np.array(photo, np.int64),
        "cached": None,
        "embed_s": round(time.perf_counter() - t0, 1),
        "photo_names": list(photos.PHOTO_NAMES),
    }


class Mixture:
    """Synthetic pictures around real reduced vectors; row r of the database has id r + 1."""

    def __init__(self, parents: np.ndarray, cos: float, seed: int) -> None:
        self.parents = np.ascontiguousarray(parents, np.float32)
        self.dim = self.parents.shape[1]
        self.seed = seed
        # |p| = 1 and z is nearly orthogonal to p in 256-d: cos(p + s z, p) ~ 1 / sqrt(1 + s^2 dim).
        self.sigma = math.sqrt((1.0 / cos**2 - 1.0) / self.dim)

    def draw(self, stream: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, stream])
        parent = rng.integers(0, len(self.parents), m)
        x = self.parents[parent] + self.sigma * rng.standard_normal((m, self.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x.astype(np.float32, copy=False), parent

    def chunk(self, i: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        return self.draw(i, rows)


class TopK:
    """Running exact top-k per query over chunks of the database."""

    def __init__(self, nq: int, k: int) -> None:
        self.k = k
        self.ids = np.full((nq, k), -1, np.int64)
        self.scores = np.full((nq, k), -np.inf, np.float32)

    def add(self, queries: np.ndarray, vecs: np.ndarray, ids: np.ndarray) -> None:
        if len(vecs) == 0:
            return
        flat = faiss.IndexFlatIP(vecs.shape[1])
        flat.add(np.ascontiguousarray(vecs))
        d, i = flat.search(queries, min(self.k, len(vecs)))
        cand_ids = np.where(i >= 0, ids[np.maximum(i, 0)], -1)
        all_ids = np.concatenate([self.ids, cand_ids], axis=1)
        all_sc = np.concatenate([self.scores, np.where(i >= 0, d, -np.inf).astype(np.float32)], axis=1)
        part = np.argpartition(-all_sc, self.k - 1, axis=1)[:, : self.k]
        rows = np.arange(len(queries))[:, None]
        sc, ii = all_sc[rows, part], all_ids[rows, part]
        order = np.argsort(-sc, axis=1, kind="stable")
        self.scores, self.ids = sc[rows, order], ii[rows, order]


def recall(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)


# ----------------------------------------------------------------------------------- SQL


def create_tenant(engine: sqlalchemy.Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(accounts).values(id=ACCOUNT, name="capacity bench", is_admin=False, created_at=now)
        )
        conn.execute(
            insert(instances).values(
                id=INSTANCE,
                account_id=ACCOUNT,
                name="capbench",
                service_type=0,
                capacity=10**9,
                search_qps=10**6,
                status="active",
                created_at=now,
                auto_renew=False,
            )
        )


def fill_sql(
    data_dir: Path,
    n: int,
    mix: Mixture,
    real: dict[str, Any],
    queries: np.ndarray,
    filters: dict[str, np.ndarray],
) -> tuple[dict[str, Any], dict[str, TopK]]:
    """Write n synthetic rows (+ change-log rows) and compute the exact top-k in the same pass."""
    engine = make_engine(sqlite_url(data_dir))
    migrate(engine)
    create_tenant(engine)
    model_id = packaged().model_id()
    names = real["photo_names"]
    now = datetime.now(UTC)
    truth = {"all": TopK(len(queries), K), **{name: TopK(len(queries), K) for name in filters}}
    t_gen = t_rows = t_sql = t_gt = 0.0
    cos_sum = 0.0
    t0 = time.perf_counter()
    for c, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        t = time.perf_counter()
        x, parent = mix.chunk(c, m)
        cos_sum += float(np.einsum("ij,ij->", x, mix.parents[parent]))
        t_gen += time.perf_counter() - t
        t = time.perf_counter()
        ids = np.arange(start + 1, start + m + 1, dtype=np.int64)
        image_rows, change_rows = [], []
        unset_attributes = Attributes().as_filter_fields()  # every slot at its default (0 or "")
        for j in range(m):
            image_id = start + 1 + j  # seq = id: one change-log row per picture, in id order
            p = int(parent[j])
            image_rows.append(
                {
                    "id": image_id,
                    "instance_id": INSTANCE,
                    "product_id": f"syn{image_id}",
                    "pic_name": f"{names[int(real['photo'][p])]}-syn{image_id}.jpg",
                    "category_id": int(real["categories"][p]),
                    "custom_content": "",
                    "region": "0,640,0,480",
                    "embedding": vector_to_blob(x[j]),
                    "model_id": model_id,
                    "seq": image_id,
                    "created_at": now,
                    "updated_at": now,
                    **unset_attributes,
                }
            )
            change_rows.append(
                {"seq": image_id, "instance_id": INSTANCE, "image_id": image_id, "op": "upsert"}
            )
        t_rows += time.perf_counter() - t
        t = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(insert(images), image_rows)
            conn.execute(insert(changes), change_rows)
        t_sql += time.perf_counter() - t
        del image_rows, change_rows
        t = time.perf_counter()
        truth["all"].add(queries, x, ids)
        for name, sel in filters.items():
            a, b = np.searchsorted(sel, [start + 1, start + m + 1])
            local = sel[a:b] - (start + 1)
            truth[name].add(queries, x[local], ids[local])
        t_gt += time.perf_counter() - t
        done = start + m
        if c % 10 == 9 or done == n:
            el = time.perf_counter() - t0
            print(f"  sql+truth {done:,}/{n:,}  {done / el:,.0f} rows/s  load {load()}", flush=True)
    ImageRepository(engine).recount(INSTANCE)  # the rows bypassed upsert's counter
    t = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        by_object: dict[str, int] = {}
        try:
            for name, size in conn.exec_driver_sql("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                by_object[str(name)] = int(size)
        except Exception:  # dbstat not compiled in
            by_object = {}
    checkpoint_s = time.perf_counter() - t
    engine.dispose()
    db = data_dir / "lookalike.db"
    sizes = {p.name: p.stat().st_size for p in data_dir.glob("lookalike.db*")}
    sql_bytes = sizes.get(db.name, 0) + sizes.get(db.name + "-wal", 0)
    stats = {
        "rows": n,
        "sql_insert_s": round(t_sql, 2),
        "row_building_s": round(t_rows, 2),  # dicts + vector_to_blob (float16 encode) per row
        "generate_s": round(t_gen, 2),
        "ground_truth_s": round(t_gt, 2),
        "checkpoint_s": round(checkpoint_s, 2),
        "sql_rows_per_s": round(n / t_sql, 1),
        "sql_rows_per_s_incl_row_building": round(n / (t_sql + t_rows), 1),
        "files": sizes,
        "sql_bytes": sql_bytes,
        "bytes_by_table_or_index": by_object,
        "mean_cos_to_parent": round(cos_sum / n, 4),
    }
    return stats, truth


# ----------------------------------------------------------------------------------- children


class Phases:
    """Timing wrappers around the service's own methods (the child processes only)."""

    def __init__(self) -> None:
        self.s: dict[str, float] = defaultdict(float)
        self.n: dict[str, int] = defaultdict(int)

    def add(self, key: str, dt: float) -> None:
        self.s[key] += dt
        self.n[key] += 1

    def wrap(self, owner: Any, name: str, key: str) -> None:
        orig = getattr(owner, name)

        @functools.wraps(orig)
        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                self.add(key, time.perf_counter() - t)

        setattr(owner, name, timed)

    def wrap_generator(self, owner: Any, name: str, key: str) -> None:
        orig = getattr(owner, name)

        @functools.wraps(orig)
        def timed(*a: Any, **kw: Any) -> Iterator[Any]:
            gen = orig(*a, **kw)
            while True:
                t = time.perf_counter()
                try:
                    item = next(gen)
                except StopIteration:
                    self.add(key, time.perf_counter() - t)
                    return
                self.add(key, time.perf_counter() - t)
                yield item

        setattr(owner, name, timed)

    def instrument(self) -> None:
        self.wrap_generator(ImageRepository, "iter_live", "sql_read_iter_live")
        self.wrap_generator(ImageRepository, "iter_changes", "sql_read_iter_changes")
        self.wrap(ImageRepository, "last_seq", "sql_last_seq")
        self.wrap(LocalIndex, "upsert", "index_upsert")
        self.wrap(LocalIndex, "_load", "index_load")
        self.wrap(LocalIndex, "_train", "train_total")
        self.wrap(LocalIndex, "_build_generation", "build_generation")
        self.wrap(LocalIndex, "save", "save")
        self.wrap(_Ivf, "add", "ivf_add_sa_codes")
        self.wrap(_Files, "ensure", "files_ensure_grow")
        self.wrap(_Files, "flush", "files_flush_msync")
        phases = self
        faiss_mod: Any = local_index_module.faiss
        orig_factory, orig_read = faiss_mod.index_factory, faiss_mod.read_index

        def patch(index: Any) -> Any:
            for method, key in (("train", "faiss_train"), ("sa_encode", "faiss_sa_encode")):
                orig = getattr(index, method)

                def timed(*a: Any, _orig: Callable[..., Any] = orig, _key: str = key, **kw: Any) -> Any:
                    t = time.perf_counter()
                    try:
                        return _orig(*a, **kw)
                    finally:
                        phases.add(_key, time.perf_counter() - t)

                setattr(index, method, timed)
            return index

        faiss_mod.index_factory = lambda *a, **kw: patch(orig_factory(*a, **kw))
        faiss_mod.read_index = lambda *a, **kw: patch(orig_read(*a, **kw))

    def report(self) -> dict[str, Any]:
        return {k: {"s": round(v, 3), "calls": self.n[k]} for k, v in sorted(self.s.items())}


def _manager(data_dir: Path) -> tuple[IndexManager, sqlalchemy.Engine]:
    engine = make_engine(sqlite_url(data_dir))
    return IndexManager(data_dir / "index", ImageRepository(engine), packaged(), policy=IndexPolicy()), engine


def child_empty(work: Path) -> dict[str, Any]:
    """The same kind of process with an instance that has no pictures, then with the model loaded."""
    at_imports = proc_status()
    data_dir = work / "empty-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(sqlite_url(data_dir))
    migrate(engine)
    create_tenant(engine)
    manager = IndexManager(data_dir / "index", ImageRepository(engine), packaged(), policy=IndexPolicy())
    index = manager.get(INSTANCE)
    index.search(np.ones(index.dim, np.float32) / 16, K)
    empty = proc_status()
    from lookalike.vision.embedder import EfficientNetEmbedder

    photos = _load_test_module("photos")
    embedder = EfficientNetEmbedder(CACHE)
    embedder.embed([photos.load_photo("astronaut")] * 4)
    with_model = proc_status()
    return {"at_imports": at_imports, "empty_index": empty, "empty_index_plus_model": with_model}


def child_cold(work: Path) -> dict[str, Any]:
    sampler = PeakSampler(0.1)
    phases = Phases()
    phases.instrument()
    at_imports = proc_status()
    data_dir = work / "data"
    manager, engine = _manager(data_dir)
    t0 = time.perf_counter()
    index = manager.get(INSTANCE)
    get_s = time.perf_counter() - t0
    assert isinstance(index, LocalIndex)
    after_get = proc_status()
    t = time.perf_counter()
    manager.save_dirty()
    save_s = time.perf_counter() - t
    t = time.perf_counter()
    index.wait_for_maintenance()
    wait_s = time.perf_counter() - t
    after_save = proc_status()
    peaks = sampler.stop()
    out = {
        "cold_get_s": round(get_s, 2),
        "save_s": round(save_s, 2),
        "wait_maintenance_s": round(wait_s, 3),
        "cold_start_s": round(get_s + save_s + wait_s, 2),
        "phases": phases.report(),
        "status_at_imports": at_imports,
        "status_after_get": after_get,
        "status_after_save": after_save,
        "peaks_sampled": peaks,
        "stats": index.stats(),
        "ram_bytes_estimate": index.ram_bytes(),
        "omp_threads": faiss.omp_get_max_threads(),
    }
    manager.close()
    engine.dispose()
    return out


def child_warm(work: Path, sweep_queries: int) -> dict[str, Any]:
    sampler = PeakSampler(0.25)
    phases = Phases()
    phases.instrument()
    at_imports = proc_status()
    data_dir = work / "data"
    manager, _engine = _manager(data_dir)
    t0 = time.perf_counter()
    index = manager.get(INSTANCE)
    warm_s = time.perf_counter() - t0
    assert isinstance(index, LocalIndex)
    after_open = proc_status()
    peak_open = dict(sampler.peak)
    with np.load(work / "inputs.npz", allow_pickle=False) as z:
        inputs = {k: z[k] for k in z.files}
    queries, warmup = inputs["queries"], inputs["warmup"]
    filter_names = [k[len("filter_") :] for k in inputs if k.startswith("filter_")]
    out: dict[str, Any] = {"warm_start_s": round(warm_s, 3), "stats": index.stats()}
    results: dict[str, np.ndarray] = {}

    def run(qs: np.ndarray, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        found = np.full((len(qs), K), -1, np.int64)
        lat = np.empty(len(qs))
        for i, q in enumerate(qs):
            t = time.perf_counter()
            ids, _ = index.search(q, K, allowed)
            lat[i] = time.perf_counter() - t
            found[i, : len(ids)] = ids
        return found, lat * 1000

    def ms(lat: np.ndarray) -> dict[str, float]:
        return {
            "p50_ms": round(float(np.percentile(lat, 50)), 3),
            "p99_ms": round(float(np.percentile(lat, 99)), 3),
            "mean_ms": round(float(lat.mean()), 3),
        }

    run(warmup)
    t = time.perf_counter()
    results["all"], lat = run(queries)
    wall = time.perf_counter() - t
    out["search"] = {**ms(lat), "qps_1_thread": round(len(queries) / wall, 1), "load": load()}

    # Two threads, each searching every query (in a different order), at once.
    def worker(order: np.ndarray) -> None:
        for i in order:
            index.search(queries[i], K)

    orders = [np.arange(len(queries)), np.arange(len(queries))[::-1].copy()]
    threads = [threading.Thread(target=worker, args=(o,)) for o in orders]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out["search"]["qps_2_threads"] = round(2 * len(queries) / (time.perf_counter() - t), 1)

    nlist = int(index.stats()["nlist"]) or None
    out["filtered"] = {}
    for name in filter_names:
        allowed = inputs[f"filter_{name}"]
        plan = plan_search(len(index), len(allowed), K, trained_nlist=nlist, policy=index.policy)
        results[f"filter_{name}"], lat = run(queries, allowed)
        out["filtered"][name] = {
            "allowed": len(allowed),
            "mode": plan.mode.value,
            "nprobe": plan.nprobe,
            "shortlist": plan.shortlist,
            **ms(lat),
            "load": load(),
        }
    out["status_after_open"] = after_open
    out["peaks_during_open"] = peak_open
    out["status_after_searches"] = proc_status()
    # What the allocator keeps of the searches' freed temporaries, apart from what the index holds.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    out["status_after_searches_malloc_trim"] = proc_status()

    # Beyond the policy: recall against nprobe / shortlist on a subset of the queries (not the defaults).
    base = index.policy
    out["sweep"] = []
    if sweep_queries and nlist:
        sq = queries[:sweep_queries]
        grid = [(f, sl) for f in (1 / 64, 1 / 32, 1 / 16, 1 / 8) for sl in (100, 200, 500, 1000)]
        for frac, shortlist in grid:
            index.policy = dataclasses.replace(
                base,
                nprobe_fraction=frac,
                min_nprobe=1,
                min_shortlist=shortlist,
                shortlist_factor=shortlist // K,
            )
            plan = plan_search(len(index), None, K, trained_nlist=nlist, policy=index.policy)
            found, lat = run(sq)
            results[f"sweep_{plan.nprobe}_{plan.shortlist}"] = found
            out["sweep"].append(
                {"nprobe": plan.nprobe, "shortlist": plan.shortlist, "queries": len(sq), **ms(lat)}
            )
        index.policy = base

    # Writes against the warm index: single new ids (append), single overwrites, single removes.
    seq = int(index.applied_seq)
    writes: dict[str, Any] = {}
    for kind in ("upsert_new", "overwrite", "remove"):
        lat = []
        if kind == "upsert_new":
            ids, vecs = inputs["upsert_ids"], inputs["upsert_vecs"]
        elif kind == "overwrite":
            ids, vecs = inputs["overwrite_ids"], inputs["upsert_vecs"]
        else:
            ids, vecs = inputs["remove_ids"], None
        for i in range(len(ids)):
            seq += 1
            t = time.perf_counter()
            if vecs is None:
                index.remove(ids[i : i + 1], seq)
            else:
                index.upsert(ids[i : i + 1], vecs[i : i + 1], seq)
            lat.append(time.perf_counter() - t)
        arr = np.array(lat) * 1000
        writes[kind] = {"count": len(ids), **ms(arr)}
    index.wait_for_maintenance()
    out["writes"] = writes
    out["status_after_writes"] = proc_status()
    out["stats_after_writes"] = index.stats()
    out["ram_bytes_estimate"] = index.ram_bytes()
    out["peaks_sampled"] = sampler.stop()
    out["status_at_imports"] = at_imports
    out["phases_open"] = phases.report()
    out["omp_threads"] = faiss.omp_get_max_threads()
    np.savez(work / "warm_results.npz", **results)
    # No close(): it would save the writes above into the kept index directory.
    return out


def spawn(mode: str, work: Path, extra: list[str] | None = None) -> dict[str, Any]:
    out_file = work / f"child-{mode}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--work",
        str(work),
        *(extra or []),
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    result = json.loads(out_file.read_text())
    result["process_wall_s"] = round(time.perf_counter() - t, 2)
    return result


# ----------------------------------------------------------------------------------- one size


def filter_fractions(text: str) -> dict[str, float]:
    return {f"{float(f) * 100:g}pct": float(f) for f in text.split(",") if f}


def run_size(
    n: int, args: argparse.Namespace, real: dict[str, Any], mix: Mixture, empty: dict[str, Any]
) -> dict[str, Any]:
    t_size = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f"capbench-{n}-", dir=args.tmp))
    data_dir = work / "data"
    data_dir.mkdir()
    print(
        f"\n=== {n:,} pictures  (work dir {work}; {shutil.disk_usage(work).free / GB:.0f} GB free)",
        flush=True,
    )
    try:
        queries, _ = mix.draw(TAG_QUERIES, args.queries)
        warmup, _ = mix.draw(TAG_WARMUP, 200)
        upsert_vecs, _ = mix.draw(TAG_UPSERTS, args.writes)
        pick = np.random.default_rng([args.seed, TAG_PICK, n])
        filters = {
            name: np.sort(pick.choice(n, size=max(1, round(n * frac)), replace=False) + 1).astype(np.int64)
            for name, frac in filter_fractions(args.filters).items()
        }
        inputs = {
            "queries": queries,
            "warmup": warmup,
            "upsert_ids": np.arange(n + 1, n + 1 + args.writes, dtype=np.int64),
            "upsert_vecs": upsert_vecs,
            "overwrite_ids": pick.choice(n, size=args.writes, replace=False).astype(np.int64) + 1,
            "remove_ids": pick.choice(n, size=args.writes, replace=False).astype(np.int64) + 1,
            **{f"filter_{k}": v for k, v in filters.items()},
        }
        np.savez(work / "inputs.npz", **inputs)

        print("-- SQL (+ exact ground truth in the same pass)", flush=True)
        t = time.perf_counter()
        load_before = load()
        sql, truth = fill_sql(data_dir, n, mix, real, queries, filters)
        sql["wall_s"] = round(time.perf_counter() - t, 1)
        if args.keep:  # the exact answers too, so a kept directory can be searched again
            np.savez(work / "truth.npz", **{name: topk.ids for name, topk in truth.items()})
        sql["load_before"], sql["load_after"] = load_before, load()
        print(
            f"   {sql['sql_rows_per_s']:,.0f} rows/s, {sql['sql_bytes'] / n:.0f} B/picture, {sql['wall_s']} s"
        )

        print("-- cold start (subprocess)", flush=True)
        load_before = load()
        cold = spawn("cold", work)
        cold["load_before"], cold["load_after"] = load_before, load()
        disk = dir_bytes(data_dir / "index")
        print(
            f"   {cold['cold_start_s']} s, VmHWM {cold['status_after_save']['VmHWM'] / GB:.2f} GB", flush=True
        )

        print("-- warm start + searches + writes (subprocess)", flush=True)
        load_before = load()
        warm = spawn("warm", work, ["--sweep-queries", str(args.sweep_queries)])
        warm["load_before"], warm["load_after"] = load_before, load()
        with np.load(work / "warm_results.npz", allow_pickle=False) as z:
            found = {k: z[k] for k in z.files}
        print(f"   warm {warm['warm_start_s']} s, p50 {warm['search']['p50_ms']} ms", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    gt = truth["all"]
    base = empty["empty_index"]
    steady = warm["status_after_searches"]
    rec = {name: recall(found[f"filter_{name}"], truth[name].ids) for name in filters}
    filtered = {
        name: {**warm["filtered"][name], "recall_at_10": round(rec[name], 4)} for name in warm["filtered"]
    }
    sweep = []
    for row in warm["sweep"]:
        key = f"sweep_{row['nprobe']}_{row['shortlist']}"
        sweep.append({**row, "recall_at_10": round(recall(found[key], gt.ids[: row["queries"]]), 4)})
    one_pct = filtered.get("1pct", {})
    ph = cold["phases"]

    def s(key: str) -> float:
        return float(ph.get(key, {}).get("s", 0.0))

    encode_s = s("faiss_sa_encode")
    breakdown = {
        "sql_read_and_decode_s": round(
            s("sql_read_iter_live") + s("sql_read_iter_changes") + s("sql_last_seq"), 2
        ),
        "write_to_mapped_files_s": round(s("index_upsert"), 2),  # during the bulk load: no IVF yet
        "train_faiss_s": round(s("faiss_train"), 2),
        "train_sample_gather_s": round(s("train_total") - s("faiss_train"), 2),
        "encode_sa_encode_s": round(encode_s, 2),
        "ivf_add_sa_codes_s": round(s("ivf_add_sa_codes"), 2),
        "copy_to_next_generation_s": round(
            s("build_generation") - s("train_total") - encode_s - s("ivf_add_sa_codes"), 2
        ),
        "save_msync_s": round(s("save"), 2),
        "other_s": round(
            cold["cold_start_s"]
            - s("sql_read_iter_live")
            - s("sql_read_iter_changes")
            - s("sql_last_seq")
            - s("index_upsert")
            - s("build_generation")
            - s("save"),
            2,
        ),
    }
    run = {
        "pictures": n,
        "dim": mix.dim,
        "ram_bytes_per_picture": round((steady["RssAnon"] - base["RssAnon"]) / n, 1),
        "disk_bytes_per_picture": round(disk["apparent"] / n, 1),
        "sql_bytes_per_picture": round(sql["sql_bytes"] / n, 1),
        "build_per_s": round(n / cold["cold_start_s"], 1),
        "cold_start_s": cold["cold_start_s"],
        "warm_start_s": warm["warm_start_s"],
        "peak_rss_gb": round(cold["status_after_save"]["VmHWM"] / GB, 3),
        "recall_at_10": round(recall(found["all"], gt.ids), 4),
        "p50_ms": warm["search"]["p50_ms"],
        "p99_ms": warm["search"]["p99_ms"],
        "qps_1_thread": warm["search"]["qps_1_thread"],
        "qps_2_threads": warm["search"]["qps_2_threads"],
        "filtered_1pct_recall_at_10": one_pct.get("recall_at_10"),
        "filtered_1pct_p50_ms": one_pct.get("p50_ms"),
        # ---- extras
        "recall_at_1": round(float(np.mean(found["all"][:, 0] == gt.ids[:, 0])), 4),
        "queries": len(gt.ids),
        "ram_rss_bytes_per_picture": round((steady["VmRSS"] - base["VmRSS"]) / n, 1),
        "ram_bytes_per_picture_after_malloc_trim": round(
            (warm["status_after_searches_malloc_trim"]["RssAnon"] - base["RssAnon"]) / n, 1
        ),
        "ram_file_bytes_per_picture": round((steady["RssFile"] - base["RssFile"]) / n, 1),
        "ram_estimate_bytes_per_picture": round(warm["ram_bytes_estimate"] / n, 1),
        "disk_allocated_bytes_per_picture": round(disk["allocated"] / n, 1),
        "disk_index_dir": disk,
        "cold_peak_rss_anon_gb": round(cold["peaks_sampled"].get("RssAnon", 0) / GB, 3),
        "cold_peak_rss_file_gb": round(cold["peaks_sampled"].get("RssFile", 0) / GB, 3),
        "cold_rss_after_save_gb": round(cold["status_after_save"]["VmRSS"] / GB, 3),
        "cold_rss_anon_after_save_gb": round(cold["status_after_save"]["RssAnon"] / GB, 3),
        "warm_rss_after_open_gb": round(warm["status_after_open"]["VmRSS"] / GB, 3),
        "warm_rss_anon_after_open_gb": round(warm["status_after_open"]["RssAnon"] / GB, 3),
        "warm_rss_after_searches_gb": round(steady["VmRSS"] / GB, 3),
        "warm_rss_anon_after_searches_gb": round(steady["RssAnon"] / GB, 3),
        "warm_rss_file_after_searches_gb": round(steady["RssFile"] / GB, 3),
        "warm_peak_rss_gb": round(warm["status_after_writes"]["VmHWM"] / GB, 3),
        "filtered": filtered,
        "sweep_recall_vs_nprobe_shortlist": sweep,
        "writes": warm["writes"],
        "cold_start_breakdown": breakdown,
        "index_stats": cold["stats"],
        "ground_truth_scores": {
            "mean_top1": round(float(gt.scores[:, 0].mean()), 4),
            "mean_top10": round(float(gt.scores[:, K - 1].mean()), 4),
        },
        "sql": sql,
        "cold": cold,
        "warm": {k: v for k, v in warm.items() if k not in ("filtered",)},
        "wall_s": round(time.perf_counter() - t_size, 1),
    }
    return run


# ----------------------------------------------------------------------------------- report


def extrapolate(
    runs: list[dict[str, Any]], empty: dict[str, Any], policy: IndexPolicy, target: int
) -> dict[str, Any]:
    rs = sorted(runs, key=lambda r: r["pictures"])
    if len(rs) >= 2:
        a, b = rs[-2], rs[-1]
        how = (
            f"linear in pictures from the measured runs: the line through {a['pictures']:,} and "
            f"{b['pictures']:,} pictures, evaluated at {target:,}"
        )

        def at(get: Callable[[dict[str, Any]], float]) -> float:
            slope = (get(b) - get(a)) / (b["pictures"] - a["pictures"])
            return get(b) + slope * (target - b["pictures"])
    else:
        a = b = rs[-1]
        how = f"linear in pictures from the measured run: proportional to the one run at {b['pictures']:,}"

        def at(get: Callable[[dict[str, Any]], float]) -> float:
            return get(b) / b["pictures"] * target

    def ram(r: dict[str, Any]) -> float:
        return r["ram_bytes_per_picture"] * r["pictures"]

    def rss(r: dict[str, Any]) -> float:
        return r["ram_rss_bytes_per_picture"] * r["pictures"]

    server = empty["empty_index_plus_model"]["VmRSS"]
    index_ram = at(ram)
    index_rss = at(rss)
    vectors_file = target * b["dim"] * 2
    total = index_ram + server
    # Encoding every picture against nlist ~ sqrt(n) centroids costs n * nlist: superlinear.
    bd = b["cold_start_breakdown"]
    grow = target / b["pictures"]
    nl_grow = nlist_for(target, policy) / nlist_for(b["pictures"], policy)
    linear_part = b["cold_start_s"] - bd["encode_sa_encode_s"]
    cold_nlist_scaled = linear_part * grow + bd["encode_sa_encode_s"] * grow * nl_grow
    return {
        "pictures": target,
        "method": how,
        "index_ram_gb": round(index_ram / GB, 2),
        "index_ram_rss_gb": round(index_rss / GB, 2),
        "index_ram_estimate_gb": round(
            at(lambda r: r["ram_estimate_bytes_per_picture"] * r["pictures"]) / GB, 2
        ),
        "server_baseline_gb": round(server / GB, 3),
        "server_baseline_what": "VmRSS of this bench's empty-index process with the EfficientNet model "
        "loaded and one batch embedded (no HTTP stack, no text encoder)",
        "projected_total_ram_gb": round(total / GB, 2),
        "fits_in_24_gb": bool(total < 24 * GB),
        "vectors_file_gb": round(vectors_file / GB, 2),
        "vectors_file_fits_page_cache_with_index": bool(vectors_file + total < 24 * GB),
        "disk_gb": round(at(lambda r: r["disk_bytes_per_picture"] * r["pictures"]) / GB, 2),
        "sql_gb": round(at(lambda r: r["sql_bytes_per_picture"] * r["pictures"]) / GB, 2),
        "cold_start_s": round(at(lambda r: r["cold_start_s"]), 0),
        "cold_start_s_encode_scaled_by_nlist": round(cold_nlist_scaled, 0),
        "cold_start_note": "the linear figure; the second scales the measured sa_encode time by n * nlist "
        f"(nlist {nlist_for(b['pictures'], policy)} -> {nlist_for(target, policy)}), the rest linearly",
        "cold_peak_rss_anon_gb": round(at(lambda r: r["cold_peak_rss_anon_gb"] * GB) / GB, 2),
        "cold_peak_rss_gb": round(at(lambda r: r["peak_rss_gb"] * GB) / GB, 2),
        "nlist": nlist_for(target, policy),
    }


def machine_info() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        "?",
    )
    mem = next(
        (
            int(ln.split()[1]) * 1024
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        ),
        0,
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "mem_total_gb": round(mem / GB, 1),
        "load_avg_at_start": load(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "numpy": np.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": __import__("sqlite3").sqlite_version,
        "git_src_dirty": bool(_git("status", "--porcelain", "--", "src")),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def print_table(out: dict[str, Any]) -> None:
    print(f"\n{out['data']}\n")
    cols = [
        ("pictures", "{:,}"),
        ("ram_bytes_per_picture", "{:.0f}"),
        ("ram_rss_bytes_per_picture", "{:.0f}"),
        ("ram_estimate_bytes_per_picture", "{:.0f}"),
        ("disk_bytes_per_picture", "{:.0f}"),
        ("sql_bytes_per_picture", "{:.0f}"),
        ("build_per_s", "{:,.0f}"),
        ("cold_start_s", "{:.1f}"),
        ("warm_start_s", "{:.2f}"),
        ("peak_rss_gb", "{:.2f}"),
        ("cold_peak_rss_anon_gb", "{:.2f}"),
        ("recall_at_10", "{:.3f}"),
        ("p50_ms", "{:.2f}"),
        ("p99_ms", "{:.2f}"),
        ("qps_1_thread", "{:.0f}"),
        ("qps_2_threads", "{:.0f}"),
        ("filtered_1pct_recall_at_10", "{:.3f}"),
        ("filtered_1pct_p50_ms", "{:.2f}"),
    ]
    width = max(len(c) for c, _ in cols)
    for name, fmt in cols:
        cells = []
        for r in out["runs"]:
            v = r.get(name)
            cells.append(f"{'-' if v is None else fmt.format(v):>14}")
        print(f"{name:<{width}} " + "".join(cells))
    for r in out["runs"]:
        print(f"\n-- {r['pictures']:,}: filters")
        for name, f in r["filtered"].items():
            print(
                f"   {name:>7} allowed {f['allowed']:>9,} {f['mode']:>5} nprobe {f['nprobe']:>4} "
                f"R@10 {f['recall_at_10']:.3f} p50 {f['p50_ms']:.2f} p99 {f['p99_ms']:.2f} ms"
            )
        print(
            "   sweep: "
            + "; ".join(
                f"nprobe {s['nprobe']} shortlist {s['shortlist']}: "
                f"R@10 {s['recall_at_10']:.3f} p50 {s['p50_ms']:.2f} ms"
                for s in r["sweep_recall_vs_nprobe_shortlist"]
            )
        )
        print(
            "   writes: "
            + "; ".join(
                f"{k} mean {w['mean_ms']:.3f} p99 {w['p99_ms']:.3f} ms" for k, w in r["writes"].items()
            )
        )
        print("   cold start: " + ", ".join(f"{k} {v}" for k, v in r["cold_start_breakdown"].items()))
        print(
            f"   SQL: {r['sql']['sql_rows_per_s']:,.0f} rows/s insert "
            f"({r['sql']['sql_rows_per_s_incl_row_building']:,.0f} incl. building rows), "
            f"checkpoint {r['sql']['checkpoint_s']} s; total wall {r['wall_s']} s"
        )
    e = out["extrapolated_50m"]
    print(f"\n-- 50M ({e['method']})")
    print(
        f"   index RAM {e['index_ram_gb']} GB (with touched file pages {e['index_ram_rss_gb']}, "
        f"estimate {e['index_ram_estimate_gb']})"
        f" + server {e['server_baseline_gb']} GB = {e['projected_total_ram_gb']} GB -> fits 24 GB: "
        f"{e['fits_in_24_gb']}; vectors file {e['vectors_file_gb']} GB (page cache); disk {e['disk_gb']} GB, "
        f"SQL {e['sql_gb']} GB, cold start {e['cold_start_s']:.0f} s linear / "
        f"{e['cold_start_s_encode_scaled_by_nlist']:.0f} s with encode ~ n*nlist"
    )


# ----------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,5000000", help="pictures per run, comma-separated")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--views", type=int, default=2000, help="augmented real views embedded")
    ap.add_argument("--cos", type=float, default=0.5, help="target cosine of a synthetic point to its parent")
    ap.add_argument("--filters", default="0.001,0.01,0.05,0.2", help="filter fractions (random id subsets)")
    ap.add_argument("--writes", type=int, default=1000, help="single upserts / overwrites / removes timed")
    ap.add_argument(
        "--sweep-queries", type=int, default=300, help="queries per nprobe/shortlist point; 0: none"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    ap.add_argument("--out", type=Path, default=RESULTS / "capacity_bench.json")
    ap.add_argument("--child", choices=("empty", "cold", "warm"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        if args.child == "empty":
            result = child_empty(args.work)
        elif args.child == "cold":
            result = child_cold(args.work)
        else:
            result = child_warm(args.work, args.sweep_queries)
        (args.work / f"child-{args.child}.json").write_text(json.dumps(result))
        sys.stdout.flush()
        os._exit(0)  # no interpreter teardown (the warm index is deliberately left unclosed)

    sizes = sorted(int(float(s.replace("_", ""))) for s in args.sizes.split(","))
    t_all = time.perf_counter()
    machine = machine_info()
    print(f"machine: {machine}", flush=True)
    print(f"df /tmp: {shutil.disk_usage(args.tmp).free / GB:.0f} GB free", flush=True)

    print(f"-- real features ({args.views} augmented views)", flush=True)
    real = real_features(args.views, args.seed)
    red = packaged()
    reduced = red.reduce(real["features"])
    mix = Mixture(reduced, args.cos, args.seed)
    probe, parent = mix.draw(TAG_PICK + 7, 20_000)
    probe_cos = float(np.mean(np.sum(probe * mix.parents[parent], axis=1)))
    sims = reduced @ reduced.T
    np.fill_diagonal(sims, -1)
    nn_real = float(np.median(sims.max(axis=1)))
    other = real["photo"][:, None] != real["photo"][None, :]
    nn_other = float(np.median(np.where(other, sims, -1).max(axis=1)))
    data = (
        f"SYNTHETIC 256-d unit vectors drawn around REAL embeddings. Real: {len(reduced)} augmented views "
        f"({AUGMENT_TEXT}) of the {len(real['photo_names'])} scikit-image photos of tests/photos.py, "
        f"embedded by EfficientNetEmbedder ({red.dim_in}-d, features cached in {CACHE}) and reduced "
        f"by packaged() '{red.model_id()}' to {red.dim_out}-d. A synthetic picture = "
        f"normalize(p + sigma*z): p a uniformly "
        f"random real reduced vector, z ~ N(0, I_{red.dim_out}), sigma = sqrt((1/c^2 - 1)/{red.dim_out}) = "
        f"{mix.sigma:.4f} for c = {args.cos}; measured mean cosine to the parent {probe_cos:.4f} (median "
        f"nearest-neighbour cosine among the real views {nn_real:.3f}, to a view of another photo "
        f"{nn_other:.3f}). Rows are drawn per {CHUNK:,}-row chunk from numpy default_rng([seed={args.seed}, "
        f"chunk]) and stored in SQL as float16; {args.queries} queries (and the upserted vectors) are drawn "
        "the same way from other seeds and are not in the database. Ground truth: exact inner product over "
        "the float32 originals (faiss IndexFlatIP per chunk, top-10 merged); filters: uniformly random id "
        f"subsets ({args.filters} of the pictures), exact over the subset."
    )
    print(f"-- empty-index process (baseline), embed {real['embed_s']} s", flush=True)
    empty_work = Path(tempfile.mkdtemp(prefix="capbench-empty-", dir=args.tmp))
    try:
        empty = spawn("empty", empty_work)
    finally:
        shutil.rmtree(empty_work, ignore_errors=True)
    print(
        f"   empty index VmRSS {empty['empty_index']['VmRSS'] / GB:.3f} GB, with model "
        f"{empty['empty_index_plus_model']['VmRSS'] / GB:.3f} GB",
        flush=True,
    )
    policy = IndexPolicy()
    out: dict[str, Any] = {
        "runs": [],
        "extrapolated_50m": {},
        "data": data,
        "machine": machine,
        "git_head": _git("rev-parse", "--short", "HEAD"),
        "policy": dataclasses.asdict(policy),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "params": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("child", "work")
        },
        "real_views": {
            "views": len(reduced),
            "photos": len(real["photo_names"]),
            "features_cache": real["cached"],
            "embed_s": real["embed_s"],
            "median_nn_cos": round(nn_real, 4),
            "median_nn_cos_other_photo": round(nn_other, 4),
        },
        "mixture": {
            "cos_target": args.cos,
            "sigma": mix.sigma,
            "measured_mean_cos_to_parent": round(probe_cos, 4),
        },
        "empty_process": empty,
        "ram_note": (
            "ram_bytes_per_picture = (RssAnon of the warm process after its searches - RssAnon of the same "
            "kind of process with an empty index) / pictures: the memory that must stay resident (the IVF "
            "inverted lists of PQ codes, faiss/numpy heap). ram_rss_bytes_per_picture uses VmRSS = RssAnon + "
            "RssFile instead: RssFile is pages of the memory-mapped files (float16 vectors, ids, alive "
            "flags, codes) that the process touched - page cache, shared and reclaimable under "
            "pressure (a re-rank "
            "then faults its shortlist's vectors back from disk), which is the design: compact codes in "
            "RAM, the larger form on disk. peak_rss_gb is the cold-start process's VmHWM (file pages of the "
            "mapped files it wrote included); cold_peak_rss_anon_gb the sampled (0.1 s) peak of RssAnon."
        ),
    }
    for n in sizes:
        out["runs"].append(run_size(n, args, real, mix, empty))
        out["runs"].sort(key=lambda r: r["pictures"])
        out["extrapolated_50m"] = extrapolate(out["runs"], empty, policy, 50_000_000)
        out["total_wall_s"] = round(time.perf_counter() - t_all, 1)
        out["load_avg_at_end"] = load()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print(f"   wrote {args.out}", flush=True)
    print_table(out)


if __name__ == "__main__":
    main()
