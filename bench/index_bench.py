"""Benchmark of lookalike.vectors.port.FaissIndex on synthetic clustered vectors.

Data: a clustered mixture, NOT uniform random (uniform high-dimensional vectors defeat every
ANN index and say nothing about real use): ``--centres`` random unit centres in ``--dim``
dimensions; each point = centre + isotropic Gaussian noise of norm ~``--noise``, then
L2-normalized. Queries are fresh draws from the same mixture.

Usage: .venv/bin/python bench/index_bench.py [--sizes 10000,100000] [--queries 300]
Writes bench/results/index_bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from lookalike.vectors.port import FaissIndex

RESULTS = Path(__file__).resolve().parent / "results"


def vm_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Mixture:
    def __init__(self, dim: int, centres: int, noise: float, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        c = self.rng.standard_normal((centres, dim)).astype(np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        self.dim, self.noise = dim, noise

    def draw(self, n: int) -> np.ndarray:
        out = np.empty((n, self.dim), np.float32)
        for s in range(0, n, 20_000):  # chunked to bound temporaries
            m = min(20_000, n - s)
            x = self.centres[self.rng.integers(0, len(self.centres), m)]
            x = x + self.rng.standard_normal((m, self.dim)).astype(np.float32) * (
                self.noise / np.sqrt(self.dim)
            )
            out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


def ground_truth(
    data: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> np.ndarray:
    ids = np.arange(len(data)) if allowed is None else np.sort(allowed)
    sub = data if allowed is None else data[ids]
    scores = queries @ sub.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return ids[top]


def recall_at(found: list[np.ndarray], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(
        np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)])
    )


def run_queries(
    fn: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, threads: int
) -> tuple[list[np.ndarray], dict[str, float]]:
    found: list[np.ndarray] = [np.empty(0)] * len(queries)
    lat = np.zeros(len(queries))

    def one(i: int) -> None:
        t = time.perf_counter()
        found[i] = fn(queries[i])
        lat[i] = time.perf_counter() - t

    for i in range(min(5, len(queries))):  # warm-up
        fn(queries[i])
    t0 = time.perf_counter()
    if threads == 1:
        for i in range(len(queries)):
            one(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(queries))))
    wall = time.perf_counter() - t0
    ms = lat * 1e3
    return found, {
        "qps": round(len(queries) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def bench_size(n: int, args: argparse.Namespace, mix: Mixture) -> dict[str, Any]:
    k = args.k
    res: dict[str, Any] = {"n": n, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    data = mix.draw(n)
    queries = mix.draw(args.queries)
    truth = ground_truth(data, queries, k)
    tmp = Path(tempfile.mkdtemp(prefix="idxbench-"))
    rss0 = vm_rss_mb()

    # exact_below=1: the graph is built so both planner branches can be timed on one index;
    # the planner is then steered by its public thresholds (exact_below / selectivity_exact).
    index = FaissIndex.open(tmp, args.dim, exact_below=1, ef_search=args.ef, hnsw_m=args.m)
    t = time.perf_counter()
    for s in range(0, n, 10_000):
        index.upsert(np.arange(s, min(n, s + 10_000), dtype=np.int64), data[s : s + 10_000], seq=s + 1)
    res["build_s"] = round(time.perf_counter() - t, 2)
    res["rss_index_mb"] = round(vm_rss_mb() - rss0, 1)
    res["stats_after_build"] = index.stats()

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q, k)[0]

    serial = threading.Lock()

    def search_serialized(q: np.ndarray) -> np.ndarray:  # what one global lock would give
        with serial:
            return index.search(q, k)[0]

    res["search"] = {}
    for mode in ("exact", "hnsw"):
        index.exact_below = n + 1 if mode == "exact" else 1
        nq = min(len(queries), args.exact_queries) if mode == "exact" else len(queries)
        for threads in (1, 2):
            found, m = run_queries(search, queries[:nq], threads)
            m["recall@10"] = round(recall_at(found, truth[:nq]), 4)
            res["search"][f"{mode}/{threads}t"] = m
        if mode == "hnsw":
            _, m = run_queries(search_serialized, queries, 2)
            res["search"]["hnsw/2t-one-lock"] = m
    index.exact_below = 1

    # Filtered search: random id subsets (independent of clusters), both planner branches.
    rng = np.random.default_rng(7)
    res["filtered"] = {}
    nq = min(len(queries), args.filter_queries)
    for sel in args.selectivities:
        allowed = rng.choice(n, max(k, int(sel * n)), replace=False).astype(np.int64)
        ftruth = ground_truth(data, queries[:nq], k, allowed)
        for branch, thr in (("exact", 1.1), ("hnsw", 0.0)):
            index.selectivity_exact = thr
            found, m = run_queries(lambda q, a=allowed: index.search(q, k, a)[0], queries[:nq], 1)  # type: ignore[misc]
            m["recall@10"] = round(recall_at(found, ftruth), 4)
            res["filtered"][f"{sel:.0%}/{branch}"] = m
    index.selectivity_exact = 0.05

    # Write path: single-vector upserts of new ids (includes amortized tail merges).
    extra = mix.draw(args.single_upserts)
    lat = []
    for i in range(len(extra)):
        t = time.perf_counter()
        index.upsert(np.array([n + i], np.int64), extra[i : i + 1], seq=n + 1 + i)
        lat.append(time.perf_counter() - t)
    ms = np.array(lat) * 1e3
    res["single_upsert_ms"] = {
        "mean": round(float(ms.mean()), 3),
        "p50": round(float(np.percentile(ms, 50)), 3),
        "max": round(float(ms.max()), 1),
    }
    # Deletes crossing the 20% tombstone threshold → one compacting rebuild.
    victims = np.arange(0, int(0.21 * int(index.stats()["sealed_rows"])) + 1, dtype=np.int64)
    t = time.perf_counter()
    index.remove(victims, seq=10 * n)
    res["remove_21pct_with_rebuild_s"] = round(time.perf_counter() - t, 2)
    res["stats_after_rebuild"] = index.stats()

    t = time.perf_counter()
    index.save()
    res["save_first_s"] = round(time.perf_counter() - t, 3)
    index.upsert(np.array([10 * n], np.int64), extra[:1], seq=10 * n + 1)  # tail-only change
    t = time.perf_counter()
    index.save()
    res["save_again_s"] = round(time.perf_counter() - t, 3)
    res["disk_mb"] = round(sum(p.stat().st_size for p in tmp.iterdir()) / 2**20, 1)
    index.close()
    t = time.perf_counter()
    reopened = FaissIndex.open(tmp, args.dim, ef_search=args.ef, hnsw_m=args.m)
    res["open_s"] = round(time.perf_counter() - t, 3)
    res["reopened_live"] = len(reopened)
    reopened.close()
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]  # the host is shared: context for timings
    return res


def print_table(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(
            f"\n== n={r['n']:,}  build {r['build_s']} s  index RSS +{r['rss_index_mb']} MB  "
            f"peak RSS {r['peak_rss_mb']} MB  loadavg {r['loadavg_before'][0]}->{r['loadavg_after'][0]}"
        )
        print(f"{'search':<22}{'QPS':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'recall@10':>11}")
        for name, m in list(r["search"].items()) + [(f"filter {k}", v) for k, v in r["filtered"].items()]:
            rec = m.get("recall@10", "")
            print(f"{name:<22}{m['qps']:>9}{m['p50_ms']:>9}{m['p95_ms']:>9}{m['p99_ms']:>9}{rec!s:>11}")
        su = r["single_upsert_ms"]
        print(
            f"single upsert ms: mean {su['mean']} p50 {su['p50']} max {su['max']};  "
            f"remove 21% (+rebuild) {r['remove_21pct_with_rebuild_s']} s"
        )
        print(
            f"save {r['save_first_s']} s (graph unchanged: {r['save_again_s']} s), open {r['open_s']} s, "
            f"disk {r['disk_mb']} MB"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated, e.g. 10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.8, help="norm of the noise added to a centre")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--exact-queries", type=int, default=150)
    ap.add_argument("--filter-queries", type=int, default=100)
    ap.add_argument("--selectivities", default="0.45,0.10,0.05,0.02,0.01")
    ap.add_argument("--single-upserts", type=int, default=1500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=128)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "index_bench.json")
    args = ap.parse_args()
    args.selectivities = [float(s) for s in args.selectivities.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    data_desc = (
        f"clustered mixture: {args.centres} random unit centres in dim {args.dim}, "
        f"point = centre + Gaussian noise of norm ~{args.noise}, L2-normalized; queries from the same mixture"
    )
    print(f"data: {data_desc} (not uniform random)")
    print(f"cpus: {os.cpu_count()}  faiss {faiss.__version__} omp threads {faiss.omp_get_max_threads()}")
    mix = Mixture(args.dim, args.centres, args.noise, args.seed)
    results = []
    for n in sizes:
        results.append(bench_size(n, args, mix))
        print_table(results[-1:])
    out = {
        "data": data_desc,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "faiss": faiss.__version__},
        "params": {k: v for k, v in vars(args).items() if k != "out"},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
