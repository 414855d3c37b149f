"""Vector backends side by side: the in-process FaissIndex vs Milvus (the scale-out backend), one run.

For each configuration (pictures x dimension) and backend: insert rate, search QPS / p50 / p99 from one
sequential client, recall@10 against exact search, all without and with a 1%-selective attribute filter
(int_attr == 7 of 0..99), plus RAM and disk per million pictures for the operator's sizing guide.

Data: SYNTHETIC clustered vectors — 2,000 random unit centres, each picture a centre plus Gaussian noise,
L2-normalized; queries drawn the same way (not copies of stored pictures). Uniform random vectors would
defeat every ANN index and say nothing (ARCHITECTURE.md); clusters are the closest cheap stand-in for real
embeddings, but real recall/latency can differ.

How each backend is driven — exactly as the service drives it:

* faiss: ``FaissIndex`` (HNSW M=32, efConstruction 40, ef 128; exact search below 10k rows or 10%
  selectivity), ids + vectors via ``upsert``; a filter arrives as the matching ids (``allowed_ids``).
* milvus: ``MilvusBackend``/``MilvusIndex`` on a running server (``--milvus-uri``; scripts/test-servers
  starts one), one partition, ``upsert_records`` with the filter fields, HNSW M=16 efConstruction=200,
  ef 128, consistency Bounded. Filtered search both ways the service uses: the compiled expression
  (``int_attr == 7``, evaluated inside Milvus) and an ``id in [...]`` list (matching sets <= 4096).
  "insert/s" counts upsert calls only; "ready s" adds flush + index build + load until every row is
  served from the index.

Sizing: faiss RAM is this process's RSS growth while the index is built (the benchmark's own copy of the
data is allocated before), disk is ``save()``'s files; Milvus RAM is the server processes' RSS growth and
disk the growth of its data directory (``--milvus-data-dir``; WAL + binlogs + index files), measured after
the load. Both are scaled to one million pictures.

Run:  .venv/bin/python bench/backend_bench.py            (default: ~15 min on 2 cores)
      .venv/bin/python bench/backend_bench.py --configs 20000x1280 --queries 100   (smoke)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import create_engine  # noqa: E402

from lookalike.domain.filters import Compare  # noqa: E402
from lookalike.storage.tables import INT_ATTR_COLUMNS, STR_ATTR_COLUMNS, metadata  # noqa: E402
from lookalike.vectors.local_index import LocalIndex  # noqa: E402
from lookalike.vectors.milvus import ID_LIST_SEARCH_MAX, MilvusBackend, MilvusIndex  # noqa: E402

K = 10
FILTER_VALUE = 7  # int_attr is uniform over 0..99: int_attr == 7 keeps 1%
N_CENTRES = 2000
NOISE = 0.6  # per-vector noise norm relative to the (unit) centre: clusters overlap, as embeddings do


# --- data ----------------------------------------------------------------------------------------------


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        pick = centres[rng.integers(len(centres), size=m)]
        noise = rng.standard_normal((m, dim)).astype(np.float32) * (NOISE / np.sqrt(dim))
        block = pick + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out


@dataclass
class Dataset:
    n: int
    dim: int
    vectors: np.ndarray
    int_attr: np.ndarray
    queries: np.ndarray
    truth: np.ndarray  # exact top-K ids per query (ids are row + 1)
    truth_filtered: np.ndarray

    @property
    def ids(self) -> np.ndarray:
        return np.arange(1, self.n + 1, dtype=np.int64)

    @property
    def allowed(self) -> np.ndarray:
        return self.ids[self.int_attr == FILTER_VALUE]


def make_dataset(n: int, dim: int, n_queries: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(n, dim, rng, centres)
    queries = clustered(n_queries, dim, rng, centres)
    int_attr = rng.integers(0, 100, size=n)
    mask = int_attr == FILTER_VALUE
    truth = np.empty((n_queries, K), np.int64)
    best = np.full((n_queries, K), -np.inf, np.float32)
    truth_f = np.empty((n_queries, K), np.int64)
    # Exact ground truth in blocks (scores of all queries against a block of vectors).
    best_f = np.full((n_queries, K), -np.inf, np.float32)
    truth[:] = truth_f[:] = -1
    for start in range(0, n, 100_000):
        block = vectors[start : start + 100_000]
        scores = queries @ block.T
        ids = np.arange(start + 1, start + 1 + len(block))
        for target, target_ids, s in ((best, truth, scores), (best_f, truth_f, None)):
            if s is None:
                s = np.where(mask[start : start + len(block)][None, :], scores, -np.inf)
            cand = np.concatenate([target, s], axis=1)
            cand_ids = np.concatenate([target_ids, np.broadcast_to(ids, s.shape)], axis=1)
            top = np.argpartition(-cand, K - 1, axis=1)[:, :K]
            target[:] = np.take_along_axis(cand, top, axis=1)
            target_ids[:] = np.take_along_axis(cand_ids, top, axis=1)
    return Dataset(n, dim, vectors, int_attr, queries, truth, truth_f)


# --- measuring -----------------------------------------------------------------------------------------


@dataclass
class SearchStats:
    qps: float
    p50_ms: float
    p99_ms: float
    recall: float


@dataclass
class Row:
    backend: str
    n: int
    dim: int
    insert_per_s: float
    ready_s: float  # from the first insert until every row is searchable through the index
    plain: SearchStats
    filtered: SearchStats  # the path the service takes for a 1% filter at this size
    filtered_other: SearchStats | None = None  # milvus: the other filter path
    filtered_other_label: str = ""
    ram_gb_per_million: float = 0.0
    disk_gb_per_million: float = 0.0
    notes: list[str] = field(default_factory=list)


def measure(search: Callable[[np.ndarray], np.ndarray], ds: Dataset, truth: np.ndarray) -> SearchStats:
    for q in ds.queries[:5]:  # warm-up
        search(q)
    lat = []
    hits = 0
    for qi, q in enumerate(ds.queries):
        t0 = time.perf_counter()
        ids = search(q)
        lat.append(time.perf_counter() - t0)
        hits += len(set(ids[:K].tolist()) & set(truth[qi].tolist()))
    arr = np.array(lat)
    return SearchStats(
        qps=round(1.0 / arr.mean(), 1),
        p50_ms=round(float(np.percentile(arr, 50)) * 1000, 2),
        p99_ms=round(float(np.percentile(arr, 99)) * 1000, 2),
        recall=round(hits / (K * len(ds.queries)), 4),
    )


def rss_bytes(pid: int | None = None) -> int:
    path = f"/proc/{pid or 'self'}/status"
    with open(path) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def milvus_server_rss() -> int:
    """RSS of the Milvus server processes on this machine (the standalone binary is named `milvus`)."""
    out = subprocess.run(["ps", "-C", "milvus", "-o", "rss="], capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split()) * 1024


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def per_million(value: float, n: int) -> float:
    return round(value / 1e9 * 1e6 / n, 3)


# --- backends ------------------------------------------------------------------------------------------


def bench_faiss(ds: Dataset) -> Row:
    gc.collect()
    base_rss = rss_bytes()
    with tempfile.TemporaryDirectory(prefix="faiss-bench-") as tmp:
        index = LocalIndex.open(Path(tmp) / "idx", ds.dim)
        t0 = time.perf_counter()
        batch = 10_000
        for start in range(0, ds.n, batch):
            index.upsert(ds.ids[start : start + batch], ds.vectors[start : start + batch], seq=start + 1)
        index.wait_for_maintenance()
        build = time.perf_counter() - t0
        ram = rss_bytes() - base_rss
        index.save()
        disk = dir_bytes(Path(tmp) / "idx")
        allowed = ds.allowed
        plain = measure(lambda q: index.search(q, K)[0], ds, ds.truth)
        filtered = measure(lambda q: index.search(q, K, allowed)[0], ds, ds.truth_filtered)
        stats = index.stats()
        index.close()
    return Row(
        "faiss",
        ds.n,
        ds.dim,
        insert_per_s=round(ds.n / build, 1),
        ready_s=round(build, 1),
        plain=plain,
        filtered=filtered,
        ram_gb_per_million=per_million(ram, ds.n),
        disk_gb_per_million=per_million(disk, ds.n),
        notes=[f"mode {stats['mode']}, 1% filter → exact over the allowed rows (planner)"],
    )


def wait_indexed(index: MilvusIndex, n: int, timeout_s: float) -> None:
    client = index._client
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info: dict[str, Any] = client.describe_index(index.collection, "vector")
        # Every row is in an indexed segment. Not pending_index_rows == 0: upserts (delete + insert) keep
        # compaction merging segments and re-indexing the result for minutes; the old indexed segments
        # serve meanwhile.
        if int(info.get("indexed_rows", 0)) >= n:
            return
        time.sleep(2)
    raise TimeoutError(f"Milvus index not built within {timeout_s:.0f} s: {info}")


def bench_milvus(ds: Dataset, uri: str, data_dir: Path | None, index_type: str = "HNSW") -> Row:
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    backend = MilvusBackend(
        uri, engine=engine, collection_prefix=prefix, consistency="Bounded", index_type=index_type
    )
    base_rss = milvus_server_rss()
    base_disk = dir_bytes(data_dir) if data_dir else 0
    try:
        index = backend.open("ins-bench", ds.dim)
        scalars_base: dict[str, int | str] = {"category_id": 0}
        scalars_base |= {c: 0 for c in INT_ATTR_COLUMNS} | {c: "" for c in STR_ATTR_COLUMNS}
        t0 = time.perf_counter()
        batch = 20_000
        for start in range(0, ds.n, batch):
            stop = min(start + batch, ds.n)
            scalars = [scalars_base | {"int_attr": int(v)} for v in ds.int_attr[start:stop]]
            index.upsert_records(ds.ids[start:stop], ds.vectors[start:stop], scalars)
        insert_s = time.perf_counter() - t0
        backend.client.flush(index.collection)
        wait_indexed(index, ds.n, timeout_s=3600)
        # Release + load so the query node serves every sealed segment from its index (not brute force).
        backend.client.release_collection(index.collection)
        backend.client.load_collection(index.collection)
        ready = time.perf_counter() - t0
        assert len(index) == ds.n
        time.sleep(3)  # let RSS settle after the load
        ram = milvus_server_rss() - base_rss
        disk = dir_bytes(data_dir) - base_disk if data_dir else 0
        plain = measure(lambda q: index.search(q, K)[0], ds, ds.truth)
        node = Compare("int_attr", "=", FILTER_VALUE)
        allowed = ds.allowed
        expr = measure(lambda q: index.search_filtered(q, K, node, None)[0], ds, ds.truth_filtered)
        id_list = measure(lambda q: index.search(q, K, allowed)[0], ds, ds.truth_filtered)
    finally:
        with contextlib.suppress(Exception):
            backend.client.drop_collection(backend.collection_name(ds.dim))
        backend.close()
    # The service sends `id in [...]` up to ID_LIST_SEARCH_MAX matching ids, else the compiled filter.
    service_uses_ids = len(allowed) <= ID_LIST_SEARCH_MAX
    return Row(
        "milvus" if index_type == "HNSW" else f"milvus {index_type}",
        ds.n,
        ds.dim,
        insert_per_s=round(ds.n / insert_s, 1),
        ready_s=round(ready, 1),
        plain=plain,
        filtered=id_list if service_uses_ids else expr,
        filtered_other=expr if service_uses_ids else id_list,
        filtered_other_label="filter expression" if service_uses_ids else f"id list ({len(allowed)} ids)",
        ram_gb_per_million=per_million(ram, ds.n),
        disk_gb_per_million=per_million(disk, ds.n) if data_dir else 0.0,
        notes=[f"1% filter as {'id in [...]' if service_uses_ids else 'int_attr == 7 inside Milvus'}"],
    )


# --- report --------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = (
        "| backend | pictures × dim | insert/s | ready s | QPS | p50 ms | p99 ms | recall@10 "
        "| 1% QPS | 1% p99 ms | 1% recall@10 | RAM GB/M | disk GB/M |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.n:,} × {r.dim} | {r.insert_per_s:,.0f} | {r.ready_s:.0f} "
            f"| {r.plain.qps:,.0f} | {r.plain.p50_ms} | {r.plain.p99_ms} | {r.plain.recall:.3f} "
            f"| {r.filtered.qps:,.0f} "
            f"| {r.filtered.p99_ms} | {r.filtered.recall:.3f} | {r.ram_gb_per_million} "
            f"| {r.disk_gb_per_million} |"
        )
        if r.filtered_other is not None:
            o = r.filtered_other
            lines.append(
                f"| ↳ milvus 1% via {r.filtered_other_label} | | | | | | | | {o.qps:,.0f} | {o.p99_ms} "
                f"| {o.recall:.3f} | | |"
            )
    return "\n".join(lines)


def parse_configs(text: str) -> list[tuple[int, int]]:
    configs = []
    for item in text.split(","):
        n, _, dim = item.strip().partition("x")
        configs.append((int(float(n)), int(dim)))
    return configs


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configs", default="100000x1280,1000000x128", help="pictures x dim, comma-separated"
    )
    parser.add_argument(
        "--backends", default="faiss,milvus", help="faiss, milvus (HNSW), milvus-ivf (IVF_FLAT)"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--milvus-uri", default=os.environ.get("LOOKALIKE_TEST_MILVUS_URI", "http://127.0.0.1:19530")
    )
    parser.add_argument(
        "--milvus-data-dir",
        type=Path,
        default=Path("/tmp/lookalike-test-servers/milvus"),
        help="the server's --data directory, for its disk growth (skipped if absent)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backend_bench.json")
    args = parser.parse_args()
    data_dir = args.milvus_data_dir if args.milvus_data_dir.is_dir() else None
    rows: list[Row] = []
    started = time.perf_counter()
    for n, dim in parse_configs(args.configs):
        print(f"== {n:,} × {dim}", flush=True)
        with timed("data + exact ground truth"):
            ds = make_dataset(n, dim, args.queries)
        for name in args.backends.split(","):
            with timed(name):
                if name == "faiss":
                    row = bench_faiss(ds)
                else:
                    kind = "IVF_FLAT" if name == "milvus-ivf" else "HNSW"
                    row = bench_milvus(ds, args.milvus_uri, data_dir, kind)
            rows.append(row)
            print(table([row]).splitlines()[-1 if row.filtered_other is None else -2], flush=True)
        del ds
        gc.collect()
    print()
    print(table(rows))
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM",
        "data": f"synthetic clustered unit vectors ({N_CENTRES} centres, noise {NOISE}), queries drawn alike",
        "queries": args.queries,
        "k": K,
        "filter": "int_attr == 7 of uniform 0..99 (1%)",
        "milvus_uri": args.milvus_uri,
        "total_s": round(time.perf_counter() - started, 1),
        "rows": [asdict(r) for r in rows],
        "table": table(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
