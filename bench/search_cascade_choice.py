"""Whether a search by picture may stop after its first two views (issue 14), in-process.

A search by picture embeds up to six views of the query (``lookalike.vision.views``: the primary view, the
whole picture, two central crops, and the two copy views of ``lookalike.vision.copy_views``), searches the
index with each and checks its first hits' local features. The four extra views are there for copies whose
source the first two views miss (pasted, framed, scribbled); they cost about three quarters of a search's
CPU. When the first two views already found a *verified* copy (a first hit with many geometrically
consistent feature matches), the extra views can only confirm it. This script measures, on the copy
benchmark's queries, what stopping there costs in recall and how often a search stops:

* ``full``: the shipped search (six views, the first ``VERIFIED_HITS`` hits checked, ``verified_score``
  after ``peer_matches``);
* ``stage 1``: the same with the primary and whole views only;
* ``cascade M``: stage 1's answer when one of its checked hits has at least ``M`` matches (as
  ``lookalike.service.images.search_by_pic`` decides with ``COPY_FOUND_MATCHES``), else the full search's.

Each is reported as recall@1 on the tune and held-out parts, the share of queries that stop after stage 1,
and the agreement of the cascade's first hit with the full search's. The same queries are then run with
their source *removed* from the database (a search whose copy is not in the catalogue, as for most
product searches): the share that stop there is the share of searches answered by an unrelated picture
with ``M`` or more matches. Chosen: the smallest ``M`` for which stopping loses no tune query, where a query
answered by a near-identical picture of its source (cosine of their whole views >= ``SAME_PICTURE``: the
corpus holds the same picture in two packages, e.g. a jack-o'-lantern stamp and clip-art) counts as found
(held-out reported, not used). Every query that stopping loses is listed.

Over the caches of ``bench/copy_features.py``, ``bench/copy_rerank_choice.py`` and
``bench/copy_verification_choice.py`` (the 200-source / 5,000-distractor corpus, seed 0; built by those
scripts when missing). Stage 1's first hits are checked here (cached under ``/tmp/lf/cascade``).

Usage: nice .venv/bin/python bench/search_cascade_choice.py
(writes bench/results/search_cascade_choice.json)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import copy_features  # noqa: E402
import copy_rerank_choice  # noqa: E402
import copy_verification_choice as cvc  # noqa: E402
from copy_retrieval_choice import split_of  # noqa: E402
from run_info import machine_info  # noqa: E402

from lookalike.domain import copy_score  # noqa: E402
from lookalike.service.images import VERIFIED_HITS  # noqa: E402
from lookalike.vectors.reduction import DATA_DIR, Reduction  # noqa: E402

MS = (10, 15, 20, 25, 30, 40)
SAME_PICTURE = 0.95
PARTS = ("tune", "heldout")
OUT = REPO / "bench" / "results" / "search_cascade_choice.json"


def verified_order(
    candidates: np.ndarray, global_score: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(first hit, the most matches of a checked hit) of each query after the shipped check of its first
    VERIFIED_HITS (the service stops after its first views on the most matches of any checked hit)."""
    k = VERIFIED_HITS
    c, g = counts[:, :k], global_score[:, :k]
    best = c.max(1, keepdims=True)
    peers = np.where((c >= copy_score.PEER_MIN) & (c >= copy_score.PEER_SHARE * best), best, c)
    fused = cvc.toward_one(g, peers, copy_score.PULL, copy_score.INLIER_CAP)
    # Hits beyond the first k keep their global score; one of them may still come first.
    rest = global_score[:, k : k + 1]
    at = np.argmax(fused, 1)
    top = fused[np.arange(len(at)), at]
    first = np.where(top >= rest[:, 0], candidates[np.arange(len(at)), at], candidates[:, k])
    return first, c.max(1)


def main() -> None:
    started = time.time()
    machine = machine_info()
    features, corpus = copy_features.load_or_build(200, 5000, 0)
    key = "200-5000-0"
    index = {name: i for i, name in enumerate(features.db_names)}
    truth = np.array([index[s] for s in features.q_source])
    split = np.array([split_of(s) for s in features.q_source])
    n = len(truth)
    rows_q = np.arange(n)

    full_s = cvc.base_scores(features, corpus, key)
    reduction = Reduction.load(DATA_DIR / "reduction-pca256w-v2.npz")
    _, scorer = copy_rerank_choice.shipped_scores(features, reduction)
    stage1_s = np.maximum(scorer(features.queries["crop"], 1.0), scorer(features.queries["whole"], 1.0))

    pictures = [im for _, im in [*corpus.sources, *corpus.distractors]]
    blobs = cvc.stored_features(pictures, [cvc.SHIPPED_CONFIG])[cvc.SHIPPED_CONFIG][0]
    del pictures
    images: list = []

    def query_images() -> list:
        if not images:
            images.extend(copy_rerank_choice.query_images(corpus, 0))
        return images

    queries, _ = cvc._cached(f"queries-{key}-plain", lambda: cvc.query_features(query_images(), False))

    def checked(scores: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
        candidates = np.argsort(-scores, 1, kind="stable")[:, : VERIFIED_HITS + 1]
        digest = hashlib.sha256(candidates.tobytes()).hexdigest()[:10]
        counts, _ = cvc._cached(
            f"cascade-{label}-{key}-{digest}",
            lambda: cvc.check(queries, blobs, candidates[:, :VERIFIED_HITS]),
        )
        counts = np.concatenate([counts, np.zeros((n, 1), counts.dtype)], 1)
        return verified_order(candidates, np.take_along_axis(scores, candidates, 1), counts)

    whole = reduction.reduce(features.db["whole"])
    results: dict[str, dict] = {}
    lost: dict[int, list[dict]] = {}
    for setting in ("copy in the catalogue", "copy removed"):
        s_full, s_1 = full_s.copy(), stage1_s.copy()
        if setting == "copy removed":
            s_full[rows_q, truth] = -np.inf
            s_1[rows_q, truth] = -np.inf
        full_first, _ = checked(s_full, f"full-{setting[:4]}")
        first1, matches1 = checked(s_1, f"stage1-{setting[:4]}")
        rows = {}

        def row(pick: np.ndarray, stop: np.ndarray, full_first: np.ndarray = full_first) -> dict:
            hit = pick == truth
            return {
                "recall@1": {p: float(hit[split == p].mean()) for p in PARTS},
                "stops_after_stage_1": {p: float(stop[split == p].mean()) for p in PARTS},
                "same_first_hit_as_full": float((pick == full_first).mean()),
            }

        rows["full"] = row(full_first, np.zeros(n, bool))
        rows["stage 1"] = row(first1, np.ones(n, bool))
        for m in MS:
            stop = matches1 >= m
            rows[f"cascade M={m}"] = row(np.where(stop, first1, full_first), stop)
            if setting == "copy in the catalogue":
                lost[m] = [
                    {
                        "query": int(q),
                        "part": str(split[q]),
                        "source": features.q_source[q],
                        "family": features.q_family[q],
                        "stage_1_answer": features.db_names[first1[q]],
                        "matches": int(matches1[q]),
                        "answer_is_the_same_picture": bool(
                            whole[first1[q]] @ whole[truth[q]] >= SAME_PICTURE
                        ),
                    }
                    for q in np.flatnonzero(stop & (first1 != truth) & (full_first == truth))
                ]
        results[setting] = rows

    chosen = next(
        (
            m
            for m in MS
            if not [x for x in lost[m] if x["part"] == "tune" and not x["answer_is_the_same_picture"]]
        ),
        None,
    )
    print(f"queries: {n} ({', '.join(f'{p} {int((split == p).sum())}' for p in PARTS)})")
    for setting, rows in results.items():
        print(f"\n### {setting}\n")
        print(
            "| variant | tune R@1 | held-out R@1 | stop after stage 1 (tune / held-out) "
            "| same first hit as full |"
        )
        print("|---|---|---|---|---|")
        for name, r in rows.items():
            mark = " (chosen)" if name == f"cascade M={chosen}" else ""
            print(
                f"| {name}{mark} | {r['recall@1']['tune']:.4f} | {r['recall@1']['heldout']:.4f} "
                f"| {r['stops_after_stage_1']['tune']:.3f} / {r['stops_after_stage_1']['heldout']:.3f} "
                f"| {r['same_first_hit_as_full']:.4f} |"
            )
    print("\nqueries the full search finds and stopping loses:")
    for m in MS:
        for x in lost[m]:
            print(f"  M={m}: {x}")
    print(f"\nchosen M: {chosen}")
    OUT.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine | {"load_avg_at_end": list(os.getloadavg())},
                "queries": n,
                "results": results,
                "lost_by_stopping": {str(m): v for m, v in lost.items()},
                "chosen_M": chosen,
                "wall_s": round(time.time() - started, 1),
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
