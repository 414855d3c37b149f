"""Choose the in-RAM code of the IVF vector index by measurement (256-d, inner product, 1M vectors).

The planned index: a faiss IVF index whose codes live in RAM (labels = row slots), plus a
memory-mapped float16 copy of every vector on disk that re-ranks a shortlist exactly.  For each
candidate code, nprobe and shortlist size S this measures recall@10 against exact float32 search,
single-thread latency (one query per call, as a service does), faiss RAM per picture, train time
and add throughput.

Candidates (all by faiss' own defaults unless said): IVF,SQ8 (256 B/code), IVF,SQ4 (128 B),
IVF,PQ64 (8-bit, 64 B), IVF,PQ32 (32 B), IVF,PQ64x4fs (32 B) and IVF,PQ32x4fs (16 B)
(``IndexIVFPQFastScan``; its default is by_residual=False), IVF RaBitQ 1-bit (``IndexIVFRaBitQ``,
32 B of bits + 8 B of factors at 256-d, qb=4 by default), its fast-scan form
(``IndexIVFRaBitQFastScan``, qb=8) and 2-bit RaBitQ (64 B + 20 B factors).

Data (seeded, see ``describe_data``): a clustered mixture in 256-d with a PCA-like spectrum.
20,000 parent centres ~ N(0, diag(std_i^2)), std_i = (i+1)^-0.5, L2-normalized; each vector =
a uniformly drawn parent + isotropic Gaussian noise whose norm sets its cosine to the parent to
c ~ U(0.5, 0.8) (noise norm sqrt(1/c^2 - 1)), then L2-normalized.  Queries: 1,000 fresh draws from
the same mixture (not in the database).  Ground truth: exact top-10 by ``faiss.IndexFlatIP`` on the
float32 vectors.

Protocol: the coarse quantizer (spherical k-means, 10 iterations, nlist = 2^round(log2(4 sqrt N)))
is trained once on a sample of min(64 nlist, 262,144) database vectors and shared by every code;
each code's PQ/SQ/RaBitQ part is trained on the same sample.  Re-rank: the top-S ids of the IVF
search are sorted, their rows gathered from an ``np.memmap`` float16 file, converted to float32 and
dotted with the query (numpy einsum, no BLAS threads); S = k = 10 means no re-rank.  The memmap
file was just written, so re-rank times are warm page cache (at 50M pictures the 25.6 GB copy does
not fit in RAM and a cold re-rank costs ~S random 4 KiB reads).  Timing: ``faiss.omp_set_num_threads(1)``,
each of the 1,000 queries searched alone, p50/p99 of the whole call (coarse + scan + re-rank).

Run: ``.venv/bin/python bench/code_choice.py`` (about 20-30 min on 2 shared cores; peak ~4 GB);
``--also-n 2000000`` adds a 2M run of the two best codes.  Prints a table and writes
``bench/results/code_choice.json`` (rewritten after every measured setting).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "code_choice.json"

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

D = 256
K = 10
N_PARENTS = 20_000
COS_LO, COS_HI = 0.5, 0.8
N_QUERIES = 1_000
SEED = 20_240_611
CHUNK = 100_000
NPROBES = (8, 16, 32, 64)
# measured too, in order, while the best recall@10 of the previous nprobe is below this target
EXTRA_NPROBES = (128, 256)
EXTEND_BELOW = 0.95
SHORTLISTS = (10, 50, 100, 200, 400)
KMEANS_ITERS = 10
IP = faiss.METRIC_INNER_PRODUCT
BUILD_THREADS = min(2, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------- data
def describe_data() -> dict[str, Any]:
    return {
        "dim": D,
        "parents": N_PARENTS,
        "parent_draw": "N(0, diag(std_i^2)), std_i = (i+1)^-0.5 for i = 0..255, then L2-normalized",
        "vector_draw": (
            "parent p uniform among the parents; c ~ U(0.5, 0.8); "
            "v = p + g * sqrt(1/c^2 - 1) / sqrt(256) with g ~ N(0, I_256); v L2-normalized "
            "(so cos(v, p) ~= c)"
        ),
        "queries": f"{N_QUERIES} fresh draws from the same mixture (own RNG stream, not in the database)",
        "seed": SEED,
        "rng": "numpy default_rng; parents seed [SEED, 0]; database chunk j of 100,000 seed [SEED, 1, j]; "
        "queries seed [SEED, 2] (so a larger N extends a smaller one)",
    }


def parents() -> F32:
    rng = np.random.default_rng([SEED, 0])
    std = (np.arange(D, dtype=np.float32) + 1.0) ** -0.5
    p = rng.standard_normal((N_PARENTS, D), dtype=np.float32) * std
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p


def draw(rng: np.random.Generator, par: F32, n: int) -> tuple[F32, npt.NDArray[np.float32]]:
    which = rng.integers(0, N_PARENTS, n)
    c = rng.uniform(COS_LO, COS_HI, n).astype(np.float32)
    scale = np.sqrt(1.0 / c**2 - 1.0) / math.sqrt(D)
    v = rng.standard_normal((n, D), dtype=np.float32)
    v *= scale[:, None]
    v += par[which]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", v, par[which])
    return v, cos


def database(par: F32, n: int) -> tuple[F32, list[float]]:
    x = np.empty((n, D), dtype=np.float32)
    cos_all = []
    for j, lo in enumerate(range(0, n, CHUNK)):
        hi = min(n, lo + CHUNK)
        x[lo:hi], cos = draw(np.random.default_rng([SEED, 1, j]), par, hi - lo)
        cos_all.append(cos)
    cs = np.concatenate(cos_all)
    return x, [float(cs.min()), float(cs.mean()), float(cs.max())]


# ---------------------------------------------------------------------------------------- indexes
def nlist_rule(n: int) -> int:
    return int(2 ** round(math.log2(4 * math.sqrt(n))))


CODES: dict[str, Callable[[faiss.Index, int], faiss.IndexIVF]] = {
    "PQ64": lambda q, nl: faiss.IndexIVFPQ(q, D, nl, 64, 8, IP),
    "PQ64x4fs": lambda q, nl: faiss.IndexIVFPQFastScan(q, D, nl, 64, 4, IP),
    "RaBitQx2": lambda q, nl: faiss.IndexIVFRaBitQ(q, D, nl, IP, True, 2),
    "RaBitQfs": lambda q, nl: faiss.IndexIVFRaBitQFastScan(q, D, nl, IP),
    "RaBitQ": lambda q, nl: faiss.IndexIVFRaBitQ(q, D, nl, IP),
    "PQ32": lambda q, nl: faiss.IndexIVFPQ(q, D, nl, 32, 8, IP),
    "PQ32x4fs": lambda q, nl: faiss.IndexIVFPQFastScan(q, D, nl, 32, 4, IP),
    "SQ4": lambda q, nl: faiss.IndexIVFScalarQuantizer(q, D, nl, faiss.ScalarQuantizer.QT_4bit, IP),
    "SQ8": lambda q, nl: faiss.IndexIVFScalarQuantizer(q, D, nl, faiss.ScalarQuantizer.QT_8bit, IP),
}
# Fast-scan indexes keep codes in 32-vector blocks; their add_core does not take precomputed lists.
FAST_SCAN = {"PQ64x4fs", "PQ32x4fs", "RaBitQfs"}


class Coarse:
    """A trained coarse quantizer, the training sample and the database's list assignment."""

    def __init__(self, x: F32, nlist: int) -> None:
        self.nlist = nlist
        n_train = min(64 * nlist, 262_144, len(x))
        rng = np.random.default_rng([SEED, 3, nlist])
        self.sample = np.ascontiguousarray(x[np.sort(rng.choice(len(x), n_train, replace=False))])
        faiss.omp_set_num_threads(BUILD_THREADS)
        t0 = time.perf_counter()
        km = faiss.Kmeans(D, nlist, niter=KMEANS_ITERS, spherical=True, seed=SEED % 2**31, verbose=False)
        km.train(self.sample)
        self.train_s = time.perf_counter() - t0
        self.quantizer = faiss.IndexFlatIP(D)
        self.quantizer.add(km.centroids)
        t0 = time.perf_counter()
        _, a = self.quantizer.search(x, 1)
        self.assign_s = time.perf_counter() - t0
        self.assign: I64 = np.ascontiguousarray(a.ravel().astype(np.int64))
        sizes = np.bincount(self.assign, minlength=nlist)
        self.list_sizes = {
            "mean": float(sizes.mean()), "max": int(sizes.max()), "empty": int((sizes == 0).sum())
        }


def build(code: str, coarse: Coarse, x: F32) -> tuple[faiss.IndexIVF, dict[str, Any]]:
    faiss.omp_set_num_threads(BUILD_THREADS)
    index = CODES[code](coarse.quantizer, coarse.nlist)
    t0 = time.perf_counter()
    index.train(coarse.sample)  # the quantizer is trained: only the code's own part is trained
    train_s = time.perf_counter() - t0
    n = len(x)
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    if code in FAST_SCAN:
        index.add(x)  # assigns lists itself
        add_s = time.perf_counter() - t0
    else:
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            xs, ls = np.ascontiguousarray(x[lo:hi]), coarse.assign[lo:hi]
            index.add_core(hi - lo, faiss.swig_ptr(xs), faiss.swig_ptr(ids[lo:hi]), faiss.swig_ptr(ls))
        # charge the shared coarse assignment to every code so add rates compare
        add_s = time.perf_counter() - t0 + coarse.assign_s
    ser = len(faiss.serialize_index(index))
    info = {
        "code_size_B": int(index.code_size),
        "code_plus_label_B": int(index.code_size) + 8,
        "serialized_B_per_picture": ser / n,
        "centroids_B_per_picture": coarse.nlist * D * 4 / n,
        "by_residual": bool(index.by_residual),
        "qb": int(index.qb) if hasattr(index, "qb") else None,
        "code_train_s": train_s,
        "train_s_incl_coarse": train_s + coarse.train_s,
        "add_s": add_s,
        "add_vectors_per_s": n / add_s,
    }
    return index, info


# ----------------------------------------------------------------------------------------- search
def recall(found: I64, truth: I64) -> float:
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def measure(index: faiss.IndexIVF, x16: np.memmap[Any, np.dtype[np.float16]], xq: F32, gt: I64,
            nprobe: int, s: int) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)
    index.nprobe = nprobe
    found = np.empty((len(xq), K), dtype=np.int64)
    times = np.empty(len(xq))
    for i in range(len(xq)):
        q = xq[i : i + 1]
        t0 = time.perf_counter()
        _, ii = index.search(q, s)
        if s > K:
            cand = np.sort(ii[0][ii[0] >= 0])
            scores = np.einsum("ij,j->i", x16[cand].astype(np.float32), q[0])
            top = np.argpartition(-scores, K)[:K] if len(cand) > K else np.arange(len(cand))
            res = cand[top[np.argsort(-scores[top])]]
        else:
            res = ii[0]
        times[i] = time.perf_counter() - t0
        found[i, : len(res)] = res
        found[i, len(res) :] = -1
    return {
        "nprobe": nprobe,
        "shortlist": s,
        "recall_at_10": recall(found, gt),
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "mean_ms": float(times.mean() * 1e3),
    }


# ------------------------------------------------------------------------------------------ run
def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Bench:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.doc: dict[str, Any] = {
            "benchmark": "code_choice",
            "data": describe_data(),
            "protocol": {
                "k": K, "queries": N_QUERIES, "nprobes": list(NPROBES), "shortlists": list(SHORTLISTS),
                "extra_nprobes": f"{list(EXTRA_NPROBES)}, each only while the best recall@10 so far "
                f"is < {EXTEND_BELOW}",
                "nlist_rule": "2^round(log2(4*sqrt(N)))",
                "coarse": f"spherical k-means, {KMEANS_ITERS} iterations, sample min(64*nlist, 262144), "
                "shared by every code",
                "rerank": "sorted top-S ids gathered from np.memmap float16 file (warm page cache), "
                "astype(float32), einsum with the query",
                "timing": "faiss.omp_set_num_threads(1), one query per search call, whole call incl. re-rank",
                "build_threads": BUILD_THREADS,
                "ram": "serialized_B_per_picture = len(faiss.serialize_index)/N (codes + 8 B ids + "
                "centroids + list overhead); code_plus_label_B = code_size + 8",
                "ground_truth": "faiss.IndexFlatIP exact top-10 over the same float32 vectors",
            },
            "machine": {
                "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_before": list(os.getloadavg()),
            },
            "faiss_version": faiss.__version__,
            "faiss_compile_options": faiss.get_compile_options(),
            "numpy_version": np.__version__,
            "git_head": git_head(),
            "runs": [],
            "failures": [],
        }

    def save(self) -> None:
        self.doc["machine"]["loadavg_after"] = list(os.getloadavg())
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1) + "\n")
        tmp.replace(self.out)

    def run_n(self, n: int, plan: list[tuple[str, int]], tmpdir: Path) -> None:
        par = parents()
        t0 = time.perf_counter()
        x, cos = database(par, n)
        xq, qcos = draw(np.random.default_rng([SEED, 2]), par, N_QUERIES)
        gen_s = time.perf_counter() - t0
        faiss.omp_set_num_threads(BUILD_THREADS)
        t0 = time.perf_counter()
        flat = faiss.IndexFlatIP(D)
        flat.add(x)
        gt_scores, gt = flat.search(xq, K)
        gt_s = time.perf_counter() - t0
        del flat
        path = tmpdir / f"x16_{n}.f16"
        x16w = np.memmap(path, dtype=np.float16, mode="w+", shape=(n, D))
        x16w[:] = x
        x16w.flush()
        del x16w
        x16: np.memmap[Any, np.dtype[np.float16]] = np.memmap(path, dtype=np.float16, mode="r", shape=(n, D))
        print(f"\n== N = {n:,}: data {gen_s:.0f}s (cos to parent min/mean/max "
              f"{cos[0]:.3f}/{cos[1]:.3f}/{cos[2]:.3f}), ground truth {gt_s:.1f}s, "
              f"true 10th-NN score mean {gt_scores[:, -1].mean():.3f}", flush=True)
        coarse_by_nlist: dict[int, Coarse] = {}
        for code, nlist in plan:
            if nlist not in coarse_by_nlist:
                coarse_by_nlist.clear()
                coarse_by_nlist[nlist] = Coarse(x, nlist)
            coarse = coarse_by_nlist[nlist]
            try:
                index, info = build(code, coarse, x)
            except Exception as e:  # report a code this faiss build cannot make, keep going
                self.doc["failures"].append({"n": n, "code": code, "nlist": nlist, "error": repr(e)})
                print(f"{code} nlist={nlist}: FAILED {e!r}", flush=True)
                continue
            run: dict[str, Any] = {
                "n": n, "code": code, "nlist": nlist, "coarse_train_s": coarse.train_s,
                "coarse_sample": len(coarse.sample), "coarse_assign_s": coarse.assign_s,
                "list_sizes": coarse.list_sizes, "data_cos_to_parent_min_mean_max": cos,
                "query_cos_to_parent_mean": float(qcos.mean()), **info, "settings": [],
            }
            self.doc["runs"].append(run)
            print(f"\n{code}  N={n:,} nlist={nlist}  code {info['code_size_B']} B, faiss RAM "
                  f"{info['serialized_B_per_picture']:.1f} B/picture (serialized), train "
                  f"{info['train_s_incl_coarse']:.1f}s (code part {info['code_train_s']:.1f}s), add "
                  f"{info['add_vectors_per_s']:,.0f} vec/s", flush=True)
            print(f"  {'nprobe':>6} {'S':>4} {'recall@10':>9} {'p50 ms':>7} {'p99 ms':>7}")
            for nprobe in NPROBES + EXTRA_NPROBES:
                best = max(m["recall_at_10"] for m in run["settings"]) if run["settings"] else 0.0
                if nprobe in EXTRA_NPROBES and best >= EXTEND_BELOW:
                    break
                for s in SHORTLISTS:
                    m = measure(index, x16, xq, gt, nprobe, s)
                    run["settings"].append(m)
                    print(f"  {nprobe:>6} {s:>4} {m['recall_at_10']:>9.3f} {m['p50_ms']:>7.2f} "
                          f"{m['p99_ms']:>7.2f}", flush=True)
                self.save()
            del index
        del x16
        path.unlink()

    def ranked(self, n: int, ram_cap: float = 100.0, target: float = 0.95) -> list[str]:
        """Codes at N=n ranked by the p50 of their fastest setting reaching the target recall."""
        best: dict[str, float] = {}
        for r in self.doc["runs"]:
            if r["n"] != n or r["code_plus_label_B"] > ram_cap + 8:
                continue
            ok = [m["p50_ms"] for m in r["settings"] if m["recall_at_10"] >= target]
            if ok:
                best[r["code"]] = min(best.get(r["code"], math.inf), min(ok))
        return sorted(best, key=best.__getitem__)

    def pareto(self) -> list[dict[str, Any]]:
        pts = [
            {"n": r["n"], "code": r["code"], "nlist": r["nlist"], "ram_B": r["serialized_B_per_picture"], **m}
            for r in self.doc["runs"] for m in r["settings"]
        ]
        front = []
        for p in pts:
            dominated = any(
                o is not p and o["n"] == p["n"] and o["ram_B"] <= p["ram_B"] and o["p50_ms"] <= p["p50_ms"]
                and o["recall_at_10"] >= p["recall_at_10"]
                and (o["ram_B"], o["p50_ms"], o["recall_at_10"])
                != (p["ram_B"], p["p50_ms"], p["recall_at_10"])
                for o in pts
            )
            if not dominated:
                front.append(p)
        return sorted(front, key=lambda p: (p["n"], p["ram_B"], -p["recall_at_10"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--codes", default=",".join(CODES), help="comma-separated subset of " + ",".join(CODES))
    ap.add_argument("--also-n", type=int, default=0, help="extra N for the two best codes (e.g. 2000000)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    codes = [c for c in args.codes.split(",") if c]
    bench = Bench(args.out)
    print("Lookalike code choice: IVF codes + float16 re-rank, 256-d inner product")
    print("data:", json.dumps(bench.doc["data"], indent=1))
    print(f"machine: {bench.doc['machine']['processor']}, {os.cpu_count()} CPUs, load "
          f"{bench.doc['machine']['loadavg_before']}, faiss {faiss.__version__}, "
          f"git {bench.doc['git_head'][:12]}")
    with tempfile.TemporaryDirectory(prefix="code_choice_") as td:
        nl = nlist_rule(args.n)
        bench.run_n(args.n, [(c, nl) for c in codes], Path(td))
        ranked = bench.ranked(args.n) or bench.ranked(args.n, ram_cap=1e9, target=0.9)
        if ranked and nl != 1024:
            bench.doc["nlist_1024_for"] = ranked[0]
            bench.run_n(args.n, [(ranked[0], 1024)], Path(td))
        if args.also_n and ranked:
            top2 = ranked[:2]
            bench.doc["also_n_codes"] = top2
            bench.run_n(args.also_n, [(c, nlist_rule(args.also_n)) for c in top2], Path(td))
    bench.doc["ranked_codes_at_0.95_le_100B"] = bench.ranked(args.n)
    bench.doc["pareto"] = bench.pareto()
    bench.save()
    print("\nPareto front (faiss RAM B/picture, recall@10, p50 ms):")
    print(f"  {'N':>9} {'code':>9} {'nlist':>5} {'nprobe':>6} {'S':>4} {'B/pic':>6} {'recall':>6} "
          f"{'p50':>6} {'p99':>6}")
    for p in bench.doc["pareto"]:
        print(f"  {p['n']:>9,} {p['code']:>9} {p['nlist']:>5} {p['nprobe']:>6} {p['shortlist']:>4} "
              f"{p['ram_B']:>6.1f} {p['recall_at_10']:>6.3f} {p['p50_ms']:>6.2f} {p['p99_ms']:>6.2f}")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
