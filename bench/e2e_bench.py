"""End-to-end benchmark of a real `lookalike serve` process over loopback HTTP.

What is measured (everything goes to 127.0.0.1 only):

* **Ingest**: N distinct real pictures (random crops / scales / flips / colour jitter of the offline
  scikit-image photos, 400-640 px, JPEG q90, made in memory) POSTed as multipart to
  ``/v1/instances/NAME/images`` by 1 and then 4 concurrent clients: images/s and per-request
  p50/p95/p99. Two baselines in the same run, in this process while the server is idle:
  - **the in-process pipeline**: the per-picture work of an add (``ImageService.add_image`` /
    ``_analyze``) without HTTP and SQL: decode, prepare (subject crop), stored views, network (through a
    ``MicroBatcher`` with the server's batch settings), reduction + category, ORB features (+ their
    encoding) and thumbnail, on the same pictures with the server's thread settings, by 1 and 4 threads
    (the HTTP runs' client counts): pictures/s. HTTP ingest / pipeline is what HTTP + SQL + the index cost;
  - the model alone (``EfficientNetEmbedder.embed`` of the subject crop, batch 1 and 16).
  The server runs with thumbnails on for the bench instance (``LOOKALIKE_THUMBNAILS_MAX_CAPACITY`` unset:
  its capacity is set far above 1M so quota never interferes, which would otherwise turn them off).
* **Scale**: the instance is filled to each ``--sizes`` with SYNTHETIC vectors drawn around the
  stored (reduced, 256-d) vectors of the ingested pictures (a mixture: real vector + isotropic
  Gaussian noise in the stored space, L2-normalized, noise sized so a synthetic point's cosine to its
  parent equals the median nearest-neighbour cosine between real pictures of different photos). They
  are written straight into SQL with the columns, blob format (``vector_to_blob``) and model id the
  service writes, plus their change-log rows, while the server is stopped. They have no whole-picture
  view, thumbnail or local features: a search's verification only checks the real pictures among its
  first hits (the stage profile counts how many it checked). The index directory is then deleted, so
  the next start rebuilds the index from SQL (IVF at >= 10k): that cold start is timed, and a warm
  restart (saved index) too.
* **Search** (closed loop): edited copies (tests/photos.py EDITS) of ingested real pictures POSTed to
  ``/search/picture`` (num=10) by 1, 4 and 16 concurrent clients for ``--duration`` s each:
  QPS, p50/p95/p99, errors, recall@1 (the edited picture's original is the top hit), recall@10,
  and same-photo@1 (the top hit is a picture, or a synthetic point drawn around a picture, cut
  from the same source photo). A small ingest at that size shows how adds scale.
* **Search, open loop** at the largest size: requests sent on a fixed schedule (``--open-loop-qps``,
  one or more rates in requests/s or as a multiple of the best closed-loop QPS there, ``--open-loop-seconds``
  each) by one client thread per scheduled request, so the client never holds the schedule back; latency
  counts from the *scheduled* send time (queueing included: no coordinated
  omission): p50/p95/p99/max, and how many requests started more than ``LATE_MS`` after their time.
* **RSS** (VmRSS, VmHWM from /proc) of the server after start and after the searches.
* **Where the time goes**: the stages of one search by picture and of one add, timed in this process on
  the server's data (server stopped) by calling the functions the service calls in the order
  ``ImageService._analyze`` / ``_vector_search`` / ``add_image`` call them (the service has no timing
  hooks), median per stage: search = decode, prepare (subject crop), search views, copy views (inner
  rectangle, strokes), query keypoints, preprocess + network (all views), reduction, index search,
  rescore, verification (features read; keypoint decode + inliers), hydrate; add = decode, prepare,
  stored views, keypoints, preprocess + network, reduction, thumbnail, SQL write, index insert. The
  views are checked against ``search_views`` so a change there shows. And a py-spy sample of the
  server under 4 clients (an extra, unmeasured run), if py-spy is installed.

The load generator runs on the same (2-core) machine as the server and takes CPU from it; the
index alone is benchmarked by bench/capacity_bench.py.

Usage: .venv/bin/python bench/e2e_bench.py [--sizes 10000,100000] [--ingest 2000] [--duration 20]
       [--clients 1,4,16] [--open-loop-qps 5,10,20] [--open-loop-seconds 30]
       [--out bench/results/e2e_bench.json] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageEnhance, ImageOps
from run_info import machine_info
from sqlalchemy import func, insert, select

from lookalike.config import Settings
from lookalike.domain import keypoint_codec
from lookalike.domain.copy_score import peer_matches, verified_score
from lookalike.domain.models import Attributes
from lookalike.service.images import COPY_FOUND_MATCHES, SHORTLIST_MARGIN, VERIFIED_HITS
from lookalike.storage.db import make_engine, sqlite_url
from lookalike.storage.images_repo import ImageRepository, NewImage, blob_to_vector, vector_to_blob
from lookalike.storage.tables import changes, images
from lookalike.vectors.manager import IndexManager
from lookalike.vectors.reduction import Reduction
from lookalike.vectors.reduction import packaged as packaged_reduction
from lookalike.vision.categories import predict_category
from lookalike.vision.copy_views import (
    INNER_MIN_EDGE_SHARE,
    INNER_WEIGHT,
    STROKE_WEIGHT,
    inner_rectangle,
    without_strokes,
)
from lookalike.vision.decode import decode_image
from lookalike.vision.embedder import EfficientNetEmbedder, MicroBatcher, preprocess, softmax
from lookalike.vision.keypoints import inliers, query_keypoints, stored_keypoints
from lookalike.vision.prepare import prepare_for_embedding
from lookalike.vision.thumbnail import make_thumbnail
from lookalike.vision.views import (
    CENTRE_SHARES,
    CENTRE_WEIGHTS,
    centre,
    first_search_views,
    search_views,
    stored_views,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MODEL_CACHE = Path(os.environ.get("LOOKALIKE_MODEL_CACHE_DIR", "/tmp/lookalike-bench-cache"))
INSTANCE = "bench"
SEARCH_NUM = 10
# The server's settings as `lookalike serve` reads them from this environment (the bench passes it on), so
# the in-process baselines use its thread, batching, decoding and thumbnail settings.
SERVER_SETTINGS = Settings.from_env()
# Thumbnails on for the bench instance: its capacity is far above the default thumbnails_max_capacity
# (1M) so that quota never interferes, and an instance of at most 1M pictures makes one per add.
SERVER_ENV = {"LOOKALIKE_THUMBNAILS_MAX_CAPACITY": ""}
INSTANCE_CAPACITY = 10_000_000
# An open-loop request that starts this much after its scheduled time counts as late.
LATE_MS = 10.0
# Open-loop client threads by default: one per scheduled request, up to this many.
MAX_OPEN_WORKERS = 1000


def _load_test_module(name: str) -> ModuleType:
    # tests/ is not a package; load the shared helpers by path instead of copying them.
    spec = importlib.util.spec_from_file_location(f"_lookalike_tests_{name}", REPO / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


photos = _load_test_module("photos")
test_server = _load_test_module("server")


# ----------------------------------------------------------------------------------- pictures


class PictureMaker:
    """Deterministic distinct pictures: picture ``seed`` is always the same image."""

    def __init__(self) -> None:
        self.sources = photos.sample_photos()
        self.names = sorted(self.sources)

    def image(self, seed: int) -> tuple[str, Image.Image]:
        rng = np.random.default_rng(seed)
        name = self.names[int(rng.integers(len(self.names)))]
        src = self.sources[name]
        w, h = src.size
        area = rng.uniform(0.35, 1.0) * w * h
        aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        cw = int(min(w, max(64, round(np.sqrt(area * aspect)))))
        ch = int(min(h, max(64, round(np.sqrt(area / aspect)))))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = src.crop((x0, y0, x0 + cw, y0 + ch))
        longest = int(rng.integers(400, 641))
        scale = longest / max(cw, ch)
        size = (max(120, round(cw * scale)), max(120, round(ch * scale)))
        img = img.resize(size, Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
        return name, img

    def picture(self, seed: int) -> tuple[str, bytes]:
        name, img = self.image(seed)
        return name, photos.encode(img, "JPEG", quality=90)


def key_of(seed: int, source: str) -> tuple[str, str]:
    # The source photo is the pic_name prefix, so a hit can be traced back to its photo.
    return f"p{seed:06d}", f"{source}-{seed}.jpg"


def source_of(pic_name: str) -> str:
    return pic_name.split("-", 1)[0]


@dataclass(frozen=True)
class Query:
    body: bytes
    edit: str
    product_id: str
    pic_name: str


def make_queries(maker: PictureMaker, seeds: list[int], count: int, rng: np.random.Generator) -> list[Query]:
    edits = list(photos.EDITS)
    out = []
    for i, seed in enumerate(rng.choice(seeds, size=min(count, len(seeds)), replace=False).tolist()):
        source, img = maker.image(int(seed))
        edit = edits[i % len(edits)]
        edited = photos.EDITS[edit](img)
        product_id, pic_name = key_of(int(seed), source)
        out.append(Query(photos.encode(edited, "JPEG", quality=90), edit, product_id, pic_name))
    return out


# ----------------------------------------------------------------------------------- load runner


@dataclass
class LoadResult:
    clients: int
    wall_s: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    # (job index, response JSON) for successful requests, to score recall afterwards.
    answers: list[tuple[int, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ms = np.array(self.latencies_ms) if self.latencies_ms else np.array([float("nan")])
        ok = self.statuses.get(200, 0)
        return {
            "clients": self.clients,
            "requests": int(sum(self.statuses.values())),
            "ok": ok,
            "errors": int(sum(self.statuses.values()) - ok),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "wall_s": round(self.wall_s, 2),
            "per_s": round(ok / self.wall_s, 2) if self.wall_s else 0.0,
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
        }


Job = Callable[[httpx.Client, int], httpx.Response]


def run_load(
    url: str,
    auth: tuple[str, str],
    job: Job,
    clients: int,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    keep_json: bool = False,
) -> LoadResult:
    """``clients`` threads, each with its own keep-alive connection, share one job counter.

    Stops after ``count`` jobs, or starts no new job after ``duration_s``.
    """
    counter = itertools.count()
    lock = threading.Lock()
    result = LoadResult(clients, 0.0)
    deadline = time.perf_counter() + duration_s if duration_s is not None else float("inf")

    def worker() -> None:
        with httpx.Client(base_url=url, auth=auth, timeout=120) as client:
            while True:
                i = next(counter)
                if (count is not None and i >= count) or time.perf_counter() >= deadline:
                    return
                t = time.perf_counter()
                try:
                    resp = job(client, i)
                    status = resp.status_code
                except httpx.HTTPError:
                    resp, status = None, -1
                elapsed = (time.perf_counter() - t) * 1e3
                body = resp.json() if keep_json and resp is not None and status == 200 else None
                with lock:
                    result.latencies_ms.append(elapsed)
                    result.statuses[status] += 1
                    if body is not None:
                        result.answers.append((i, body))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    result.wall_s = time.perf_counter() - t0
    return result


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def run_open_loop(
    url: str, auth: tuple[str, str], job: Job, qps: float, seconds: float, workers: int
) -> dict[str, Any]:
    """Request ``i`` is due at ``t0 + i / qps``, whatever the answers before it did (open loop).

    ``workers`` threads (sharing one client, a connection each) take the requests in order; a free one sleeps
    until its request is due, so a request starts late only when every worker is busy (the client held the
    schedule back) or the machine woke the thread late: both count, since latency is measured from the
    scheduled time, not from the send (no coordinated omission).
    """
    total = max(1, round(qps * seconds))
    counter = itertools.count()
    lock = threading.Lock()
    late_start_ms: list[float] = []  # actual send - scheduled
    from_schedule_ms: list[float] = []  # answer - scheduled (what a user on that schedule waits)
    service_ms: list[float] = []  # answer - actual send
    statuses: Counter[int] = Counter()
    busy = [0, 0]  # in flight now, most in flight at once
    go = threading.Event()
    t0 = 0.0

    def worker(client: httpx.Client) -> None:
        go.wait()
        while True:
            i = next(counter)
            if i >= total:
                return
            due = t0 + i / qps
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            with lock:
                busy[0] += 1
                busy[1] = max(busy[1], busy[0])
            try:
                status = job(client, i).status_code
            except httpx.HTTPError:
                status = -1
            done = time.perf_counter()
            with lock:
                busy[0] -= 1
                late_start_ms.append((sent - due) * 1e3)
                from_schedule_ms.append((done - due) * 1e3)
                service_ms.append((done - sent) * 1e3)
                statuses[status] += 1

    n_threads = min(workers, total)
    # One client shared by the threads (its pool is thread-safe): a client per thread would build hundreds
    # of SSL contexts while the schedule runs. Its pool has a connection for every thread.
    limits = httpx.Limits(max_connections=n_threads, max_keepalive_connections=n_threads)
    with httpx.Client(base_url=url, auth=auth, timeout=300, limits=limits) as client:
        threads = [threading.Thread(target=worker, args=(client,), daemon=True) for _ in range(n_threads)]
        for th in threads:
            th.start()
        t0 = time.perf_counter() + 0.05  # every thread is up before the first request is due
        go.set()
        for th in threads:
            th.join()
    wall = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    late = [d for d in late_start_ms if d > LATE_MS]
    return {
        "target_qps": qps,
        "scheduled_s": seconds,
        "requests": total,
        "ok": ok,
        "errors": total - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "workers": len(threads),
        "most_in_flight": busy[1],
        "wall_s": round(wall, 2),  # first due time to last answer (the backlog drains after the schedule)
        "achieved_qps": round(ok / wall, 2) if wall > 0 else 0.0,
        "p50_ms": _pct(from_schedule_ms, 50),
        "p95_ms": _pct(from_schedule_ms, 95),
        "p99_ms": _pct(from_schedule_ms, 99),
        "max_ms": round(max(from_schedule_ms), 1) if from_schedule_ms else float("nan"),
        "service_p50_ms": _pct(service_ms, 50),
        "service_p99_ms": _pct(service_ms, 99),
        "late_starts": len(late),
        "late_threshold_ms": LATE_MS,
        "start_delay_p99_ms": _pct(late_start_ms, 99),
        "start_delay_max_ms": round(max(late_start_ms), 1) if late_start_ms else float("nan"),
    }


def score_search(result: LoadResult, queries: list[Query]) -> dict[str, Any]:
    r1 = r10 = same = 0
    per_edit: dict[str, list[int]] = {}
    for i, body in result.answers:
        q = queries[i % len(queries)]
        keys = [(h["product_id"], h["pic_name"]) for h in body["results"]]
        top1 = bool(keys) and keys[0] == (q.product_id, q.pic_name)
        r1 += top1
        r10 += (q.product_id, q.pic_name) in keys
        same += bool(keys) and source_of(keys[0][1]) == source_of(q.pic_name)
        per_edit.setdefault(q.edit, []).append(int(top1))
    n = max(1, len(result.answers))
    return {
        "recall@1": round(r1 / n, 4),
        "recall@10": round(r10 / n, 4),
        "same_photo@1": round(same / n, 4),
        "recall@1_by_edit": {k: round(float(np.mean(v)), 3) for k, v in sorted(per_edit.items())},
    }


# ----------------------------------------------------------------------------------- server


def proc_mem_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.data_dir = work / "data"
        self.server = test_server.ServerProcess(self.data_dir, MODEL_CACHE, work / "server.log")
        self.server.env.update(SERVER_ENV)
        self.auth: tuple[str, str] = ("", "")
        self.instance_id = ""

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return int(self.server.process.pid)

    def start(self) -> float:
        t = time.perf_counter()
        self.server.start(timeout=900)
        return round(time.perf_counter() - t, 2)

    def stop(self) -> float:
        t = time.perf_counter()
        self.server.stop()  # SIGTERM (saves the index), SIGKILL after 30 s
        return round(time.perf_counter() - t, 2)

    def setup_tenant(self) -> None:
        account = test_server.cli_json(self.data_dir, "admin", "create-account", "bench")
        instance = test_server.cli_json(
            self.data_dir,
            "admin",
            "create-instance",
            INSTANCE,
            "--account",
            account["account_id"],
            # Far above what the bench can reach, so rate limits and quota never interfere.
            "--capacity",
            str(INSTANCE_CAPACITY),
            "--qps",
            "100000",
            "--add-qps",
            "100000",
        )
        self.auth = (account["access_key_id"], account["access_key_secret"])
        self.instance_id = instance["instance_id"]

    def add_job(self, pictures: list[tuple[int, str, bytes]]) -> Job:
        def job(client: httpx.Client, i: int) -> httpx.Response:
            seed, source, body = pictures[i]
            product_id, pic_name = key_of(seed, source)
            return client.post(
                f"/v1/instances/{INSTANCE}/images",
                data={"product_id": product_id, "pic_name": pic_name},
                files={"picture": ("p.jpg", body, "image/jpeg")},
            )

        return job

    def search_job(self, queries: list[Query]) -> Job:
        def job(client: httpx.Client, i: int) -> httpx.Response:
            q = queries[i % len(queries)]
            return client.post(
                f"/v1/instances/{INSTANCE}/search/picture",
                data={"num": str(SEARCH_NUM)},
                files={"picture": ("q.jpg", q.body, "image/jpeg")},
            )

        return job

    def ingest(self, pictures: list[tuple[int, str, bytes]], clients: int) -> dict[str, Any]:
        res = run_load(self.server.url, self.auth, self.add_job(pictures), clients, count=len(pictures))
        return res.summary()

    # --- synthetic fill -------------------------------------------------------------------

    def fill_synthetic(self, target: int, syn_cos: float | None, rng: np.random.Generator) -> dict[str, Any]:
        """Top the instance up to ``target`` rows with mixture vectors; the server must be stopped."""
        engine = make_engine(sqlite_url(self.data_dir))
        t0 = time.perf_counter()
        try:
            with engine.connect() as conn:
                real = conn.execute(
                    select(
                        images.c.embedding, images.c.category_id, images.c.region, images.c.pic_name
                    ).where(images.c.instance_id == self.instance_id, ~images.c.product_id.startswith("syn"))
                ).all()
                have = conn.execute(
                    select(func.count()).select_from(images).where(images.c.instance_id == self.instance_id)
                ).scalar_one()
                max_id = conn.execute(select(func.max(images.c.id))).scalar_one() or 0
                max_seq = conn.execute(select(func.max(changes.c.seq))).scalar_one() or 0
                model_id = conn.execute(select(images.c.model_id).limit(1)).scalar_one()
            vecs = np.stack([blob_to_vector(r.embedding) for r in real])
            # Noise sized from the real data. The real pictures are ~100 crops of each of a few
            # photos, so their nearest neighbour is a sibling crop (cos ~0.97); a synthetic point
            # that close would be a near-duplicate, not another picture. So a synthetic point is
            # as close to its parent as the nearest real picture cut from a DIFFERENT photo is.
            sims = vecs @ vecs.T
            np.fill_diagonal(sims, -1.0)
            median_nn = float(np.median(sims.max(axis=1)))
            src = np.array([source_of(r.pic_name) for r in real])
            sims[src[:, None] == src[None, :]] = -1.0
            median_nn_other = float(np.median(sims.max(axis=1)))
            cos = syn_cos if syn_cos is not None else median_nn_other
            noise_norm = float(np.sqrt(1.0 / cos**2 - 1.0))  # |x|=1, noise ⟂ x in high dim
            add = max(0, target - int(have))
            now = datetime.now(UTC)
            measured: list[float] = []
            with engine.begin() as conn:
                for start in range(0, add, 5000):
                    m = min(5000, add - start)
                    parents = rng.integers(0, len(real), m)
                    noise = rng.standard_normal((m, vecs.shape[1])).astype(np.float32)
                    x = vecs[parents] + noise * (noise_norm / np.sqrt(vecs.shape[1]))
                    x /= np.linalg.norm(x, axis=1, keepdims=True)
                    measured.extend(np.sum(x * vecs[parents], axis=1).tolist())
                    image_rows, change_rows = [], []
                    for j in range(m):
                        n = start + j
                        image_id, seq = max_id + 1 + n, max_seq + 1 + n
                        parent = real[int(parents[j])]
                        image_rows.append(
                            {
                                "id": image_id,
                                "instance_id": self.instance_id,
                                "product_id": f"syn{image_id}",
                                "pic_name": f"{source_of(parent.pic_name)}-syn{image_id}.jpg",
                                "category_id": parent.category_id,
                                "custom_content": "",
                                "region": parent.region,
                                "embedding": vector_to_blob(x[j]),
                                "model_id": model_id,
                                "seq": seq,
                                "created_at": now,
                                "updated_at": now,
                                "int_attr": 0,
                                "int_attr2": 0,
                                "int_attr3": 0,
                                "int_attr4": 0,
                                "str_attr": "",
                                "str_attr2": "",
                                "str_attr3": "",
                                "str_attr4": "",
                            }
                        )
                        change_rows.append(
                            {
                                "seq": seq,
                                "instance_id": self.instance_id,
                                "image_id": image_id,
                                "op": "upsert",
                            }
                        )
                    conn.execute(insert(images), image_rows)
                    conn.execute(insert(changes), change_rows)
            # The rows bypassed upsert, so the instance's picture counter is set from them.
            ImageRepository(engine).recount(self.instance_id)
        finally:
            engine.dispose()
        # Force a full replay of the change log on the next start (a cold start).
        shutil.rmtree(self.data_dir / "index", ignore_errors=True)
        return {
            "real_pictures": len(real),
            "synthetic_added": add,
            "median_nn_cos_real": round(median_nn, 4),
            "median_nn_cos_real_other_photo": round(median_nn_other, 4),
            "target_cos_to_parent": round(cos, 4),
            "measured_cos_to_parent_mean": round(float(np.mean(measured)), 4) if measured else None,
            "fill_s": round(time.perf_counter() - t0, 2),
        }


# ----------------------------------------------------------------------------------- baselines


def model_baseline(embedder: EfficientNetEmbedder, bodies: list[bytes]) -> dict[str, Any]:
    """The network alone on the same pictures (decoded and subject-cropped beforehand)."""
    pics = [prepare_for_embedding(decode_image(b), None, True)[0] for b in bodies]
    embedder.embed(pics[:2])  # warm-up
    t = time.perf_counter()
    for p in pics:
        embedder.embed([p])
    b1 = len(pics) / (time.perf_counter() - t)
    t = time.perf_counter()
    for s in range(0, len(pics), 16):
        embedder.embed(pics[s : s + 16])
    b16 = len(pics) / (time.perf_counter() - t)
    # Same graph with ONNX Runtime's intra-op spin-waiting off: on a shared 2-core machine the
    # spinning threads compete with everything else (see "where the time goes" in the README).
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = embedder.intra_op_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(
        str(embedder.model_path), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    batches = [preprocess([p], embedder.RESIZE) for p in pics]
    name = session.get_inputs()[0].name
    t = time.perf_counter()
    for b in batches:
        embedder.forward(b)
    spin_on = len(pics) / (time.perf_counter() - t)
    t = time.perf_counter()
    for b in batches:
        session.run(None, {name: b})
    spin_off = len(pics) / (time.perf_counter() - t)
    return {
        "network_only_batch1_per_s": {
            "ort_spinning_on (as served)": round(spin_on, 1),
            "spinning_off": round(spin_off, 1),
        },
        "images": len(pics),
        "intra_op_threads": embedder.intra_op_threads,
        "batch1_images_per_s": round(b1, 1),
        "batch16_images_per_s": round(b16, 1),
    }


class Laps:
    """Per-stage wall times in ms: ``start()`` once per item, then ``lap(stage)`` after each stage."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self._t = 0.0
        self.items = 0

    def start(self) -> None:
        self._t = time.perf_counter()
        self.items += 1

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.samples.setdefault(stage, []).append((now - self._t) * 1e3)
        self._t = now

    def summary(self) -> dict[str, Any]:
        med = {k: round(float(np.median(v)), 2) for k, v in self.samples.items()}
        return {
            "median_ms": med,
            "p90_ms": {k: round(float(np.percentile(v, 90)), 2) for k, v in self.samples.items()},
            "sum_of_medians_ms": round(sum(med.values()), 2),
            # A stage that runs for some items only (a search's second step) counts 0 ms for the others.
            "mean_per_item_ms": {
                k: round(float(np.sum(v)) / max(1, self.items), 2) for k, v in self.samples.items()
            },
            "ran_for": {k: len(v) for k, v in self.samples.items()},
            "items": self.items,
        }


@dataclass(frozen=True)
class AddWork:
    """What an add computes before its SQL write (ImageService._analyze + add_image)."""

    vector: np.ndarray  # the primary view's reduced vector (what the index holds)
    aux: np.ndarray | None  # the whole picture's, when the primary view is a crop
    category: int
    region: str
    local_features: bytes
    thumbnail: bytes


def add_work(
    body: bytes,
    embedder: EfficientNetEmbedder,
    reduction: Reduction,
    batcher: MicroBatcher | None = None,
    laps: Laps | None = None,
) -> AddWork:
    """The per-picture work of ``ImageService.add_image`` except HTTP and SQL, in its order (product
    instance, Crop on, no Region, copy verification and thumbnails on). With ``batcher`` the views are
    embedded through it as the server does (``embed_several``); without, preprocess and network are
    called directly so ``laps`` can time them apart."""
    lap = laps.lap if laps is not None else (lambda _stage: None)
    decoded = decode_image(body, SERVER_SETTINGS.image_limits, reduced=True)
    lap("decode")
    picture, box, _ = prepare_for_embedding(decoded, None, True)
    lap("prepare (subject crop)")
    views = stored_views(decoded.image, picture)
    lap("stored views")
    features = keypoint_codec.encode(stored_keypoints(decoded.image))
    lap("keypoints (ORB + encode)")
    if batcher is not None:
        embedded = batcher.embed_several(views)
        vectors, probs = embedded.vectors, embedded.class_probs
    else:
        batch = preprocess(views, embedder.RESIZE)
        lap("preprocess (all views)")
        feats, logits = embedder.forward(batch)
        vectors, probs = embedder.pool(feats), softmax(logits)
    lap("network (all views)")
    reduced = reduction.reduce(vectors)
    category = predict_category(probs[0])
    lap("reduction + category")
    assert SERVER_SETTINGS.thumbnail_size is not None
    thumbnail = make_thumbnail(decoded.image, SERVER_SETTINGS.thumbnail_size)
    lap("thumbnail")
    aux = reduced[1] if len(reduced) > 1 else None
    return AddWork(reduced[0], aux, category, box.to_str(), features, thumbnail)


def pipeline_baseline(
    embedder: EfficientNetEmbedder, bodies: list[bytes], thread_counts: list[int]
) -> dict[str, Any]:
    """The in-process add pipeline (``add_work`` through a MicroBatcher with the server's settings) on the
    same pictures, by each number of threads: pictures/s."""
    reduction = packaged_reduction()
    per_s: dict[str, float] = {}
    with MicroBatcher(
        embedder, max_batch=SERVER_SETTINGS.embed_max_batch, max_wait_ms=SERVER_SETTINGS.embed_max_wait_ms
    ) as batcher:
        for body in bodies[:2]:  # warm-up
            add_work(body, embedder, reduction, batcher)

        def worker(counter: Iterator[int]) -> None:
            while (i := next(counter)) < len(bodies):
                add_work(bodies[i], embedder, reduction, batcher)

        for threads in thread_counts:
            counter = itertools.count()
            pool = [threading.Thread(target=worker, args=(counter,), daemon=True) for _ in range(threads)]
            t = time.perf_counter()
            for th in pool:
                th.start()
            for th in pool:
                th.join()
            per_s[str(threads)] = round(len(bodies) / (time.perf_counter() - t), 1)
    return {
        "pictures": len(bodies),
        "pictures_per_s_by_threads": per_s,
        "intra_op_threads": embedder.intra_op_threads,
        "embed_max_batch": SERVER_SETTINGS.embed_max_batch,
        "embed_max_wait_ms": SERVER_SETTINGS.embed_max_wait_ms,
        "thumbnail_size": SERVER_SETTINGS.thumbnail_size,
        "stages": "decode, subject crop, stored views, network (MicroBatcher), reduction + category, "
        "ORB features + encoding, thumbnail (no HTTP, no SQL, no index insert)",
    }


def _same_views(got: list[tuple[Image.Image, float]], want: list[tuple[Image.Image, float]]) -> bool:
    return [(v.size, round(w, 6)) for v, w in got] == [(v.size, round(w, 6)) for v, w in want] and all(
        a.tobytes() == b.tobytes() for (a, _), (b, _) in zip(got, want, strict=True)
    )


def _search_round(
    views: np.ndarray,
    weights: np.ndarray,
    keypoints: Any,
    manager: IndexManager,
    repo: ImageRepository,
    instance_id: str,
    counts: dict[int, int],
    laps: Laps,
    step: str,
) -> np.ndarray:
    """One ``_vector_search`` round (first round of the shortlist): index, ``_rescore``, ``_verify``;
    ``counts`` (id -> matches) is shared by the two steps, as the service shares ``checked``."""
    scope = manager.scope(instance_id, None, None)
    k = min(scope.cap, SEARCH_NUM + SHORTLIST_MARGIN)
    shortlist = np.unique(np.concatenate(scope.top_many(views, k)))
    laps.lap(f"{step}: index search")
    stored = repo.views_by_id(instance_id, shortlist.tolist())
    kept = [i for i in shortlist.tolist() if i in stored]
    scores = np.array([float(((views @ stored[i].T) * weights[:, None]).max()) for i in kept], np.float32)
    order = np.argsort(-scores, kind="stable")
    ids, scores = np.array(kept, np.int64)[order], scores[order]
    laps.lap(f"{step}: rescore (SQL views)")
    if len(keypoints) > 0:
        first = [int(i) for i in ids[:VERIFIED_HITS]]
        blobs = repo.local_features(instance_id, [i for i in first if i not in counts])
        laps.lap(f"{step}: verification, read features (SQL)")
        counts.update({i: inliers(keypoints, keypoint_codec.decode(blob)) for i, blob in blobs.items()})
        scores = scores.copy()
        for row, matched in enumerate(peer_matches([counts.setdefault(i, 0) for i in first])):
            if matched:
                scores[row] = verified_score(float(scores[row]), matched)
        order = np.argsort(-scores, kind="stable")
        ids = ids[order]
        laps.lap(f"{step}: verification, decode + inliers")
    return ids


def profile_search(
    query: Query,
    embedder: EfficientNetEmbedder,
    manager: IndexManager,
    repo: ImageRepository,
    instance_id: str,
    laps: Laps,
) -> tuple[list[tuple[Image.Image, float]], int]:
    """One search by picture (num=10, Crop on, no Region, no filter) as ``ImageService.search_by_pic`` runs
    it, stage by stage: ``_analyze`` with for_search (the first views), a ``_vector_search`` round
    (``_rescore``, ``_verify``), and, when no checked hit has ``COPY_FOUND_MATCHES`` matches, the second
    step with the central and copy views, then ``_hydrate``. Returns the views searched (to check against
    ``first_search_views`` / ``search_views``) and how many hits the verification checked."""
    laps.start()
    decoded = decode_image(query.body, SERVER_SETTINGS.image_limits, reduced=True)
    laps.lap("decode")
    picture, _box, _ = prepare_for_embedding(decoded, None, True)
    laps.lap("prepare (subject crop)")
    image = decoded.image
    weighted = [(view, 1.0) for view in stored_views(image, picture)]
    keypoints = query_keypoints(image)
    laps.lap("query keypoints")

    def embed(views: list[tuple[Image.Image, float]], step: str) -> np.ndarray:
        batch = preprocess([view for view, _ in views], embedder.RESIZE)
        laps.lap(f"{step}: preprocess")
        feats, logits = embedder.forward(batch)
        vectors, probs = embedder.pool(feats), softmax(logits)
        laps.lap(f"{step}: network")
        reduced = manager.reduce(vectors)
        if step == "step 1":
            predict_category(probs[0])
        laps.lap(f"{step}: reduction (+ category)")
        return reduced

    views = embed(weighted, "step 1")
    weights = np.array([w for _, w in weighted], np.float32)
    counts: dict[int, int] = {}
    ids = _search_round(views, weights, keypoints, manager, repo, instance_id, counts, laps, "step 1")
    if max(counts.values(), default=0) < COPY_FOUND_MATCHES:
        more = [(centre(image, share), w) for share, w in zip(CENTRE_SHARES, CENTRE_WEIGHTS, strict=True)]
        laps.lap("step 2: centre crops")
        found = inner_rectangle(image)
        if found is not None and found[1] >= INNER_MIN_EDGE_SHARE:
            more.append((image.crop(found[0].as_pil_box()), INNER_WEIGHT))
        laps.lap("step 2: copy view, inner rectangle")
        more.append((without_strokes(image), STROKE_WEIGHT))
        laps.lap("step 2: copy view, strokes")
        views = np.vstack([views, embed(more, "step 2")])
        weights = np.concatenate([weights, np.array([w for _, w in more], np.float32)])
        weighted += more
        ids = _search_round(views, weights, keypoints, manager, repo, instance_id, counts, laps, "step 2")
    repo.hydrate(instance_id, [int(i) for i in ids])
    laps.lap("hydrate")
    return weighted, len(counts)


def stage_profile(
    data_dir: Path,
    instance_id: str,
    embedder: EfficientNetEmbedder,
    queries: list[Query],
    adds: list[tuple[int, str, bytes]],
) -> dict[str, Any]:
    """Searches and adds, stage by stage, in this process on the server's data (server stopped); the
    adds are written to SQL and the index as the service writes them."""
    engine = make_engine(sqlite_url(data_dir))
    repo = ImageRepository(engine)
    reduction = packaged_reduction()
    manager = IndexManager(data_dir / "index", repo, reduction)  # same defaults as the server
    try:
        t = time.perf_counter()
        index = manager.get(instance_id)
        open_s = time.perf_counter() - t
        stats = getattr(index, "stats", None)
        mode = stats().get("mode") if callable(stats) else type(index).__name__
        views_match = True
        for q in queries[:2]:  # warm-up, and the views checked against the service's own choice
            got, _ = profile_search(q, embedder, manager, repo, instance_id, Laps())
            decoded = decode_image(q.body, SERVER_SETTINGS.image_limits, reduced=True)
            picture, _box, _ = prepare_for_embedding(decoded, None, True)
            first = first_search_views(decoded.image, picture, region_given=False)
            every = search_views(decoded.image, picture, region_given=False)
            views_match &= _same_views(got, first) or _same_views(got, every)
        search_laps = Laps()
        checked: list[int] = []
        n_views: list[int] = []
        for q in queries:
            got, n = profile_search(q, embedder, manager, repo, instance_id, search_laps)
            checked.append(n)
            n_views.append(len(got))
        stopped = sum(1 for v in n_views if v <= 2)
        add_laps = Laps()
        now = datetime.now(UTC)
        for seed, source, body in adds:
            add_laps.start()
            work = add_work(body, embedder, reduction, laps=add_laps)
            product_id, pic_name = key_of(seed, source)
            record = NewImage(
                product_id=product_id,
                pic_name=pic_name,
                category_id=work.category,
                attributes=Attributes(),
                custom_content="",
                region=work.region,
                embedding=work.vector,
                model_id=manager.model_id,
                aux_embedding=work.aux,
            )
            with manager.writing(instance_id) as writable:
                written = repo.upsert(
                    instance_id,
                    record,
                    capacity=INSTANCE_CAPACITY,
                    now=now,
                    thumbnail=work.thumbnail,
                    local_features=work.local_features,
                )
                add_laps.lap("SQL write")
                writable.upsert(np.array([written.image_id], np.int64), work.vector[None, :], written.seq)
                add_laps.lap("index insert")
        return {
            "index_open_s": round(open_s, 2),
            "index_mode": mode,
            "search": {
                "queries": len(queries),
                "views_match_service": views_match,
                "views_per_query_median": float(np.median(n_views)) if n_views else 0.0,
                "stopped_after_step_1": stopped,
                "checked_hits_per_query_median": float(np.median(checked)) if checked else 0.0,
                **search_laps.summary(),
            },
            "add": {"pictures": len(adds), **add_laps.summary()},
        }
    finally:
        manager.close()
        engine.dispose()


# ----------------------------------------------------------------------------------- py-spy

# First match wins, in this order: lookalike's own stages before the generic layers they call.
SPY_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("network (onnxruntime)", ("forward (lookalike/vision/embedder.py", "onnxruntime")),
    ("preprocess (resize+normalize)", ("preprocess (lookalike/vision/embedder.py",)),
    ("pool/softmax/category", ("gem_pool", "softmax (lookalike", "l2_normalize", "predict_category")),
    (
        "local features (ORB, inliers)",
        ("lookalike/vision/keypoints.py", "lookalike/domain/keypoint_codec.py"),
    ),
    ("copy views (inner rectangle, strokes)", ("lookalike/vision/copy_views.py",)),
    ("search views (centre crops)", ("lookalike/vision/views.py",)),
    ("thumbnail", ("lookalike/vision/thumbnail.py",)),
    ("subject crop", ("lookalike/vision/subject.py", "lookalike/vision/prepare.py")),
    ("decode", ("lookalike/vision/decode.py",)),
    ("index search", ("lookalike/vectors/",)),
    ("rescore (SQL views)", ("_rescore (lookalike",)),
    ("verification (SQL features)", ("_verify (lookalike",)),
    ("hydrate (SQL)", ("hydrate (lookalike",)),
    ("auth", ("lookalike/api/rest/auth.py", "lookalike/service/accounts.py")),
    ("rate limit", ("lookalike/service/limits.py", "lookalike/domain/ratelimit.py")),
    ("multipart parsing", ("multipart", "payload.py")),
    ("SQL (other)", ("sqlalchemy", "sqlite3")),
    ("JSON response", ("json", "render (")),
    # uvicorn's loop runs in C (uvloop), so its samples include the loop's own idle polling.
    (
        "HTTP/ASGI (uvicorn, starlette, anyio)",
        ("uvicorn", "starlette", "fastapi", "anyio", "h11", "httptools"),
    ),
]
IDLE_LEAVES = ("Condition.wait", "Event.wait", "Thread.join", "MicroBatcher._run", "Queue.get")


def py_spy_profile(pid: int, seconds: int, out_raw: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "50",
            "--format",
            "raw",
            "-o",
            str(out_raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_spy(raw: Path) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        # py-spy's idle detection misses Python-level waits (pool threads parked on a Condition,
        # the batcher blocked on its queue), so those leaves are dropped here.
        if stack.rsplit(";", 1)[-1].startswith(IDLE_LEAVES):
            idle += int(n)
            continue
        total += int(n)
        category = next((c for c, pats in SPY_CATEGORIES if any(p in stack for p in pats)), "other")
        counts[category] += int(n)
    return {
        "waiting_samples_dropped": idle,
        "active_samples": total,
        "share": {k: round(v / total, 3) for k, v in counts.most_common()} if total else {},
    }


# ----------------------------------------------------------------------------------- main


def _stage_rows(title: str, part: dict[str, Any]) -> None:
    means = part["mean_per_item_ms"]
    total = sum(means.values())
    print(title)
    print(f"  {'stage':<44}{'ran for':>8}{'median ms':>10}{'p90 ms':>9}{'mean/item':>10}{'share':>7}")
    for stage, ms in part["median_ms"].items():
        share = means[stage] / total if total else 0.0
        print(
            f"  {stage:<44}{part['ran_for'][stage]:>8}{ms:>10.2f}{part['p90_ms'][stage]:>9.2f}"
            f"{means[stage]:>10.2f}{share:>7.0%}"
        )
    print(f"  {'sum (mean per item)':<44}{'':>8}{'':>10}{'':>9}{total:>10.2f}")


def print_table(out: dict[str, Any]) -> None:
    base = out["baseline_model_only"]
    pipe = out["baseline_pipeline"]["pictures_per_s_by_threads"]
    print("\n== ingest (real pictures over HTTP)")
    print(
        f"{'phase':<26}{'clients':>8}{'img/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'vs pipeline':>13}{'vs model b1':>13}"
    )
    rows = [(f"ingest 0→{out['ingest_real']['pictures']}", r) for r in out["ingest_real"]["runs"]]
    rows += [
        (f"ingest @ {s['size']:,}", s["ingest_at_size"]) for s in out["sizes"] if s.get("ingest_at_size")
    ]
    for name, r in rows:
        ratio = r["per_s"] / base["batch1_images_per_s"]
        vs_pipe = r.get("vs_pipeline")
        vs = f"{vs_pipe:>12.2f}x" if vs_pipe is not None else f"{'':>13}"
        print(
            f"{name:<26}{r['clients']:>8}{r['per_s']:>9}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}"
            f"{r['errors']:>8}{vs}{ratio:>12.2f}x"
        )
    print(
        "baseline, the add pipeline in-process (no HTTP, no SQL): "
        + ", ".join(f"{v} pictures/s with {k} thread(s)" for k, v in pipe.items())
        + f" ({out['baseline_pipeline']['pictures']} pictures)"
    )
    print(
        f"baseline, model alone in-process: {base['batch1_images_per_s']} img/s at batch 1, "
        f"{base['batch16_images_per_s']} img/s at batch 16 ({base['intra_op_threads']} ORT threads); "
        f"network only, batch 1: {base['network_only_batch1_per_s']}"
    )
    print(
        "\n== search/picture end to end (HTTP + decode + subject crop + views + embed + ORB + ANN + verify "
        "+ hydrate), num=10, closed loop"
    )
    print(
        f"{'pictures':>9}{'clients':>8}{'QPS':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'R@1':>7}{'R@10':>7}{'photo@1':>9}{'RSS MB':>8}{'HWM MB':>8}"
    )
    r = out["search_real_only"]
    print(
        f"{r['size']:>9,}{r['clients']:>8}{r['per_s']:>8}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}"
        f"{r['errors']:>8}{r['recall@1']:>7}{r['recall@10']:>7}{r['same_photo@1']:>9}   (real pictures only)"
    )
    for s in out["sizes"]:
        for r in s["search"]:
            print(
                f"{s['size']:>9,}{r['clients']:>8}{r['per_s']:>8}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}"
                f"{r['errors']:>8}{r['recall@1']:>7}{r['recall@10']:>7}{r['same_photo@1']:>9}"
                f"{s['rss_after_search']['VmRSS']:>8}{s['rss_after_search']['VmHWM']:>8}"
            )
    for s in out["sizes"]:
        if not s.get("open_loop"):
            continue
        print(
            f"\n== search/picture open loop at {s['size']:,}: latency from the SCHEDULED send time; "
            f"late = started > {LATE_MS:g} ms after its time"
        )
        heads = ["rate", "target QPS", "sent", "done/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"]
        heads += ["late", "max late ms", "in flight", "workers", "svc p50"]
        keys = ["rate", "target_qps", "requests", "achieved_qps", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
        keys += ["errors", "late_starts", "start_delay_max_ms", "most_in_flight", "workers", "service_p50_ms"]
        widths = [max(7, len(h) + 2) for h in heads]
        print("".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
        for r in s["open_loop"]:
            print("".join(f"{r[k]!s:>{w}}" for k, w in zip(keys, widths, strict=True)))
    print()
    for s in out["sizes"]:
        f = s["fill"]
        print(
            f"size {s['size']:,}: +{f['synthetic_added']:,} synthetic "
            f"(cos to parent {f['measured_cos_to_parent_mean']})"
            f" filled in {f['fill_s']} s; cold start (replay + index build) {s['cold_start_s']} s, "
            f"RSS {s['rss_after_cold_start']}; warm restart {s.get('warm_start_s')} s"
        )
    prof = out.get("stage_profile")
    if prof:
        srch = prof["search"]
        _stage_rows(
            f"\n== one search by picture, stages in-process at {prof['size']:,} ({prof['index_mode']}), "
            f"{srch['queries']} queries, {srch['views_per_query_median']:g} views, "
            f"{srch['checked_hits_per_query_median']:g} hits verified (median); views as the service's: "
            f"{srch['views_match_service']}",
            srch,
        )
        _stage_rows(f"\n== one add, stages in-process ({prof['add']['pictures']} pictures)", prof["add"])
    spy = out.get("py_spy")
    if spy and spy.get("share"):
        print(
            f"\n== py-spy, server under {spy['clients']} clients for {spy['seconds']} s "
            "(share of active samples)"
        )
        print("  " + ", ".join(f"{k} {v:.0%}" for k, v in spy["share"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="instance sizes, comma-separated")
    ap.add_argument("--ingest", type=int, default=2000, help="real pictures ingested over HTTP")
    ap.add_argument("--ingest-at-size", type=int, default=200, help="extra pictures added at each size")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per search concurrency level")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--queries", type=int, default=300, help="distinct edited query pictures")
    ap.add_argument("--profile-queries", type=int, default=100)
    ap.add_argument("--profile-adds", type=int, default=50, help="adds timed stage by stage in-process")
    ap.add_argument(
        "--pipeline-pictures", type=int, default=200, help="pictures of the in-process add pipeline baseline"
    )
    ap.add_argument(
        "--open-loop-qps",
        default="0.5x,0.8x",
        help="open-loop search rates at the largest size, comma-separated: requests/s (20), or a multiple "
        "of the best closed-loop QPS measured at that size (0.8x); empty or 0: no open-loop run",
    )
    ap.add_argument("--open-loop-seconds", type=float, default=30.0, help="schedule length per rate")
    ap.add_argument(
        "--open-loop-workers",
        type=int,
        default=0,
        help=f"client threads of the open-loop run; 0: one per scheduled request, at most {MAX_OPEN_WORKERS}",
    )
    ap.add_argument("--spy-seconds", type=int, default=10, help="0 disables the py-spy run")
    ap.add_argument("--syn-cos", type=float, default=None, help="cosine of a synthetic point to its parent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "e2e_bench.json")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (sizes 600, 60 pictures, 3 s)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.ingest, args.ingest_at_size, args.duration = "300,600", 60, 10, 3.0
        args.queries, args.profile_queries, args.spy_seconds = 30, 10, 3
        args.profile_adds, args.pipeline_pictures = 5, 12
        args.open_loop_qps, args.open_loop_seconds = "0.5x,2x", 3.0
        if args.out == RESULTS / "e2e_bench.json":
            args.out = Path(tempfile.gettempdir()) / "e2e_bench_quick.json"
    sizes = sorted(int(s) for s in args.sizes.split(","))
    levels = [int(c) for c in args.clients.split(",")]
    open_rates = [q.strip() for q in args.open_loop_qps.split(",") if q.strip() not in ("", "0")]
    rng = np.random.default_rng(args.seed)

    out: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": (
            f"{args.ingest} real pictures (random crop 35-100% area, 400-640 px, flip, colour jitter of the "
            f"{len(photos.PHOTO_NAMES)} scikit-image photos; JPEG q90) ingested over HTTP; the instance is "
            "then "
            "topped up to each size with SYNTHETIC vectors drawn around those real embeddings (mixture: "
            "real vector + isotropic Gaussian noise, L2-normalized) written to SQL + change log directly. "
            "Queries: tests/photos.py EDITS of ingested real pictures, JPEG q90."
        ),
        "server_env": SERVER_ENV,
    }
    print(f"machine: {out['machine']}")
    print("generating pictures ...", flush=True)
    maker = PictureMaker()
    total_pics = args.ingest + args.ingest_at_size * len(sizes)
    pictures = [(seed, *maker.picture(seed)) for seed in range(total_pics + args.profile_adds)]
    profile_adds = pictures[total_pics:]  # never sent to the server: the stage profile adds them
    pictures = pictures[:total_pics]
    real = pictures[: args.ingest]
    queries = make_queries(maker, [p[0] for p in real], args.queries, rng)

    print("baseline: model alone ...", flush=True)
    embedder = EfficientNetEmbedder(MODEL_CACHE, intra_op_threads=SERVER_SETTINGS.embed_threads)
    embedder.load()
    out["baseline_model_only"] = model_baseline(embedder, [p[2] for p in real[:64]])
    print(f"  {out['baseline_model_only']}", flush=True)
    print("baseline: the add pipeline in-process ...", flush=True)
    # The same pictures as the HTTP ingest, by as many threads as its clients (1, then 4).
    out["baseline_pipeline"] = pipeline_baseline(
        embedder, [p[2] for p in real[: args.pipeline_pictures]], [1, 4]
    )
    print(f"  {out['baseline_pipeline']}", flush=True)
    pipe_per_s = out["baseline_pipeline"]["pictures_per_s_by_threads"]

    work = Path(tempfile.mkdtemp(prefix="lookalike-e2e-"))
    bench = Bench(args, work)
    try:
        out["start_empty_s"] = bench.start()
        bench.setup_tenant()
        out["rss_empty"] = proc_mem_mb(bench.pid)
        # Ingest: the first quarter with one client, the rest with four.
        split = max(1, args.ingest // 4)
        runs = []
        for clients, chunk in ((1, real[:split]), (4, real[split:])):
            summary = bench.ingest(chunk, clients)
            summary["vs_pipeline"] = round(summary["per_s"] / pipe_per_s[str(clients)], 3)
            print(f"ingest {clients} client(s): {summary}", flush=True)
            runs.append(summary)
        out["ingest_real"] = {"pictures": args.ingest, "runs": runs, "rss_after": proc_mem_mb(bench.pid)}
        extra = pictures[args.ingest :]

        # Recall baseline in the same run: the real pictures alone, before any synthetic point.
        job = bench.search_job(queries)
        run_load(bench.server.url, bench.auth, job, 1, count=5)  # warm-up, not counted
        r = run_load(bench.server.url, bench.auth, job, 1, duration_s=args.duration, keep_json=True)
        out["search_real_only"] = {"size": args.ingest, **r.summary(), **score_search(r, queries)}
        print(f"search, real pictures only: {out['search_real_only']}", flush=True)

        out["sizes"] = []
        for n_i, size in enumerate(sizes):
            res: dict[str, Any] = {"size": size}
            bench.stop()
            res["fill"] = bench.fill_synthetic(size, args.syn_cos, rng)
            print(f"size {size}: {res['fill']}", flush=True)
            res["cold_start_s"] = bench.start()
            res["rss_after_cold_start"] = proc_mem_mb(bench.pid)
            job = bench.search_job(queries)
            run_load(bench.server.url, bench.auth, job, 1, count=5)  # warm-up, not counted
            res["search"] = []
            for clients in levels:
                r = run_load(
                    bench.server.url, bench.auth, job, clients, duration_s=args.duration, keep_json=True
                )
                row = {**r.summary(), **score_search(r, queries)}
                print(f"  search {clients} client(s): {row}", flush=True)
                res["search"].append(row)
            res["rss_after_search"] = proc_mem_mb(bench.pid)
            if size == sizes[-1] and open_rates:
                res["open_loop"] = []
                best = max(r["per_s"] for r in res["search"])
                for rate in open_rates:
                    qps = float(rate[:-1]) * best if rate.endswith("x") else float(rate)
                    if qps <= 0:
                        continue
                    scheduled = round(qps * args.open_loop_seconds)
                    workers = args.open_loop_workers or min(MAX_OPEN_WORKERS, scheduled)
                    row = run_open_loop(
                        bench.server.url, bench.auth, job, round(qps, 2), args.open_loop_seconds, workers
                    )
                    row = {"rate": rate, "closed_loop_best_qps": best, **row}
                    print(f"  open loop {rate} = {qps:.2f}/s: {row}", flush=True)
                    res["open_loop"].append(row)
            if args.spy_seconds and size == sizes[-1]:
                raw = work / "spy.txt"
                spy = py_spy_profile(bench.pid, args.spy_seconds, raw)
                if spy is not None:
                    run_load(bench.server.url, bench.auth, job, 4, duration_s=args.spy_seconds + 1)
                    spy.wait(timeout=60)
                    if raw.exists():
                        out["py_spy"] = {"clients": 4, "seconds": args.spy_seconds, **summarize_spy(raw)}
                        print(f"  py-spy: {out['py_spy']}", flush=True)
            chunk = extra[n_i * args.ingest_at_size : (n_i + 1) * args.ingest_at_size]
            if chunk:
                res["ingest_at_size"] = bench.ingest(chunk, 4)
                res["ingest_at_size"]["vs_pipeline"] = round(
                    res["ingest_at_size"]["per_s"] / pipe_per_s["4"], 3
                )
                print(f"  ingest at size: {res['ingest_at_size']}", flush=True)
            bench.stop()
            res["warm_start_s"] = bench.start()  # loads the index saved at shutdown
            res["rss_after_warm_start"] = proc_mem_mb(bench.pid)
            out["sizes"].append(res)
        bench.stop()
        print("stage profile ...", flush=True)
        prof = stage_profile(
            bench.data_dir, bench.instance_id, embedder, queries[: args.profile_queries], profile_adds
        )
        out["stage_profile"] = {"size": sizes[-1] + args.ingest_at_size, **prof}
    finally:
        bench.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    out["machine"]["load_avg_at_end"] = list(os.getloadavg())
    print_table(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
