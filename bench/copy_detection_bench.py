"""Copy-detection benchmark over the HTTP API, shaped like DISC21 / Copydays (issue 13).

A real `lookalike serve` on loopback gets an instance holding every source photo and every distractor
(pictures from installed packages: see ``bench/picture_corpus.py`` for where each comes from). Every source
photo is then searched with one edited copy per edit family (``tests/copy_edits.py``), sent as JPEG q90 to
``POST /v1/instances/NAME/search/picture`` (num=10). Reported per family and overall:

* recall@1 / recall@10: the edited copy's source is the first hit / among the ten hits;
* µAP (DISC21's micro average precision): every (query, hit, score) of every query pooled and ranked by
  score; precision-recall over that list, with recall counted against the number of queries;
* CPU cost per query and per add: the server process's user+system CPU seconds over the phase, divided by
  the requests (the load generator runs in this process, on the same 2 cores, and is not counted);
* the copy threshold: ``--negatives`` pictures indexed nowhere are edited the same ways and searched too
  (their best hit is never right). On the tune part the lowest score threshold whose precision (right top
  hits at or above it, over all top hits at or above it, copies' wrong ones and the negatives' included)
  is at least 0.99 is chosen; the held-out part reports the precision and recall it then gives.

Sources are split by a hash of their name into a ``tune`` part and a ``heldout`` part; choices of the
retrieval are made on ``tune`` only, and ``heldout`` is reported separately (``--split``).

Usage: .venv/bin/python bench/copy_detection_bench.py [--sources 200] [--distractors 5000] [--split both]
       [--families crop,rotate,...] [--out bench/results/copy_detection_bench.json] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import picture_corpus  # noqa: E402

import copy_edits  # noqa: E402
from server import ServerProcess, cli_json  # noqa: E402

CLIENTS = 2


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def split_of(name: str) -> str:
    """Half the sources are held out, by a hash of the name (stable across runs and corpus growth)."""
    return "heldout" if hashlib.sha256(name.encode()).digest()[0] % 2 else "tune"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def micro_ap(predictions: list[tuple[float, bool]], queries: int) -> float:
    """DISC21 µAP: predictions of all queries ranked by score; AP with recall over `queries` positives."""
    ranked = sorted(predictions, key=lambda p: -p[0])
    hits, ap, previous_recall = 0, 0.0, 0.0
    for rank, (_score, correct) in enumerate(ranked, 1):
        if correct:
            hits += 1
            recall = hits / queries
            ap += (hits / rank) * (recall - previous_recall)
            previous_recall = recall
    return ap


def run_parallel(items: Sequence[Any], work: Callable[[Any], Any], clients: int = CLIENTS) -> list[Any]:
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(work, items))


def start_server(root: Path) -> tuple[ServerProcess, dict[str, Any]]:
    model_cache = Path(os.environ.get("LOOKALIKE_MODEL_CACHE_DIR", "/tmp/lookalike-bench-cache"))
    data = root / "data"
    tenant = cli_json(data, "admin", "create-account", "bench")
    cli_json(
        data,
        "admin",
        "create-instance",
        "shop",
        "--account",
        tenant["account_id"],
        "--capacity",
        "100000",
        "--qps",
        "1000",
        "--add-qps",
        "1000",
    )
    server = ServerProcess(data, model_cache, root / "server.log")
    server.start()
    return server, tenant


def add_all(client: httpx.Client, pictures: Iterable[tuple[str, Image.Image]]) -> int:
    def add(item: tuple[str, Image.Image]) -> int:
        name, image = item
        response = client.post(
            "/v1/instances/shop/images",
            data={"product_id": name, "pic_name": name},
            files={"picture": ("p.jpg", jpeg_bytes(image), "image/jpeg")},
        )
        if response.status_code != 200:
            print(f"add {name}: {response.status_code} {response.text[:200]}", file=sys.stderr)
        return response.status_code

    statuses = run_parallel(list(pictures), add)
    return sum(1 for s in statuses if s == 200)


def search_negatives(
    client: httpx.Client, corpus: picture_corpus.Corpus, families: list[str], seed: int
) -> dict[str, list[float]]:
    """Best-hit scores of edited copies of pictures indexed nowhere, by split (one family each, in turn)."""
    jobs = [
        (name, image, families[i % len(families)]) for i, (name, image) in enumerate(corpus.negatives)
    ]

    def query(job: tuple[str, Image.Image, str]) -> tuple[str, float]:
        name, image, family = job
        seed_ = seed * 1_000_003 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        edited = copy_edits.edit(image, family, seed_, corpus.overlays)
        response = client.post(
            "/v1/instances/shop/search/picture",
            data={"num": "1"},
            files={"picture": ("q.jpg", jpeg_bytes(edited), "image/jpeg")},
        )
        hits = response.json().get("results", []) if response.status_code == 200 else []
        return split_of(name), float(hits[0]["score"]) if hits else 0.0

    out: dict[str, list[float]] = {"tune": [], "heldout": []}
    for split, score in run_parallel(jobs, query):
        out[split].append(score)
    return out


def evaluate(
    client: httpx.Client,
    sources: list[tuple[str, Image.Image]],
    families: list[str],
    overlays: Sequence[Image.Image],
    seed: int,
) -> list[dict[str, Any]]:
    jobs = [(name, image, family) for name, image in sources for family in families]

    def query(job: tuple[str, Image.Image, str]) -> dict[str, Any]:
        name, image, family = job
        edited = copy_edits.edit(
            image, family, seed * 1_000_003 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16), overlays
        )
        response = client.post(
            "/v1/instances/shop/search/picture",
            data={"num": "10"},
            files={"picture": ("q.jpg", jpeg_bytes(edited), "image/jpeg")},
        )
        if response.status_code != 200:
            return {
                "source": name,
                "family": family,
                "error": f"{response.status_code} {response.text[:200]}",
            }
        hits = [(hit["product_id"], float(hit["score"])) for hit in response.json()["results"]]
        return {"source": name, "family": family, "hits": hits}

    return run_parallel(jobs, query)


def calibrate(results: list[dict[str, Any]], negatives: list[float], target: float = 0.99) -> float | None:
    """The lowest threshold whose precision over top hits at or above it is >= target (None: none is)."""
    tops = [(r["hits"][0][1], r["hits"][0][0] == r["source"]) for r in results if r.get("hits")]
    tops += [(score, False) for score in negatives]
    tops.sort(key=lambda t: -t[0])
    best: float | None = None
    right = 0
    for n, (score, ok) in enumerate(tops, 1):
        right += ok
        if right / n >= target and (n == len(tops) or tops[n][0] < score):
            best = score
    return best


def at_threshold(results: list[dict[str, Any]], negatives: list[float], threshold: float) -> dict[str, Any]:
    above = [r for r in results if r.get("hits") and r["hits"][0][1] >= threshold]
    right = sum(1 for r in above if r["hits"][0][0] == r["source"])
    wrong = len(above) - right
    false = sum(1 for score in negatives if score >= threshold)
    kept = right + wrong + false
    return {
        "threshold": round(threshold, 4),
        "precision": round(right / kept, 4) if kept else None,
        "recall": round(right / len(results), 4) if results else None,
        "wrong_copies_above": wrong,
        "negatives_above": false,
        "negatives": len(negatives),
    }


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_family[result["family"]].append(result)
    table: dict[str, Any] = {}
    for family, rows in [*sorted(by_family.items()), ("overall", results)]:
        ok = [r for r in rows if "hits" in r]
        top1 = sum(1 for r in ok if r["hits"] and r["hits"][0][0] == r["source"])
        top10 = sum(1 for r in ok if any(pid == r["source"] for pid, _ in r["hits"]))
        predictions = [(score, pid == r["source"]) for r in ok for pid, score in r["hits"]]
        true_scores = sorted(s for r in ok for pid, s in r["hits"][:1] if pid == r["source"])
        table[family] = {
            "queries": len(rows),
            "errors": len(rows) - len(ok),
            "recall@1": round(top1 / len(rows), 4) if rows else None,
            "recall@10": round(top10 / len(rows), 4) if rows else None,
            "uAP": round(micro_ap(predictions, len(rows)), 4) if rows else None,
            "median_true_top1_score": round(true_scores[len(true_scores) // 2], 4) if true_scores else None,
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--distractors", type=int, default=5000)
    parser.add_argument("--families", default=",".join(copy_edits.FAMILIES))
    parser.add_argument("--split", choices=["tune", "heldout", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--negatives", type=int, default=250, help="pictures indexed nowhere, searched too")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "copy_detection_bench.json"))
    parser.add_argument("--quick", action="store_true", help="40 sources, 500 distractors, to /tmp")
    args = parser.parse_args()
    if args.quick:
        args.sources, args.distractors, args.negatives = 40, 500, 60
        args.out = "/tmp/copy_detection_bench.json"
    families = [f for f in args.families.split(",") if f]

    # The commit the server runs: read now, not when the run ends.
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    corpus = picture_corpus.load(
        sources=args.sources, distractors=args.distractors, seed=args.seed, negatives=args.negatives
    )
    sources = corpus.sources
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server, tenant = start_server(Path(tmp))
        assert server.process is not None
        pid = server.process.pid
        auth = (tenant["access_key_id"], tenant["access_key_secret"])
        try:
            with httpx.Client(base_url=server.url, auth=auth, timeout=120) as client:
                cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                added = add_all(client, [*sources, *corpus.distractors])
                add_cpu, add_wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
                report: dict[str, Any] = {}
                negative_scores = search_negatives(client, corpus, families, args.seed)
                threshold: float | None = None
                for split in ["tune", "heldout"] if args.split == "both" else [args.split]:
                    part = [(n, im) for n, im in sources if split_of(n) == split]
                    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
                    results = evaluate(client, part, families, corpus.overlays, args.seed)
                    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
                    negatives = negative_scores[split]
                    if split == "tune" or threshold is None:
                        threshold = calibrate(results, negatives)
                    report[split] = {
                        "copy_threshold": at_threshold(results, negatives, threshold)
                        if threshold is not None
                        else None,
                        "sources": len(part),
                        "queries": len(results),
                        "cpu_ms_per_query": round(1000 * cpu / max(1, len(results)), 1),
                        "wall_s": round(wall, 1),
                        "families": summarise(results),
                        "misses": [
                            {"source": r["source"], "family": r["family"], "top": r.get("hits", [])[:2]}
                            for r in results
                            if "hits" not in r or not r["hits"] or r["hits"][0][0] != r["source"]
                        ][:200],
                    }
        finally:
            server.stop()
    output = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": {
            "nproc": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_start": load_start,
            "load_avg_at_end": os.getloadavg(),
            "git_head": head.stdout.strip(),
        },
        "params": vars(args),
        "corpus": corpus.description,
        "indexed": {
            "pictures": added,
            "sources": len(sources),
            "distractors": len(corpus.distractors),
            "add_cpu_ms_per_picture": round(1000 * add_cpu / max(1, added), 1),
            "add_wall_s": round(add_wall, 1),
        },
        "results": report,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(output, indent=1, ensure_ascii=False))
    add_cpu_ms = output["indexed"]["add_cpu_ms_per_picture"]
    print(f"indexed {added} pictures ({len(sources)} sources); add CPU {add_cpu_ms} ms/picture")
    for split, part in report.items():
        head = f"{split}: {part['sources']} sources, {part['queries']} queries"
        print(f"\n{head}, CPU {part['cpu_ms_per_query']} ms/query; copy threshold {part['copy_threshold']}")
        print(f"{'family':<12} {'R@1':>6} {'R@10':>6} {'µAP':>6} {'err':>4} {'score':>6}")
        for family, row in part["families"].items():
            print(
                f"{family:<12} {row['recall@1']:>6} {row['recall@10']:>6} {row['uAP']:>6} {row['errors']:>4} "
                f"{row['median_true_top1_score']}"
            )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
