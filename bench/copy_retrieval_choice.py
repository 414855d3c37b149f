"""How the copy-detection retrieval was chosen, step by step, in-process (issue 13).

Over the cached features of ``bench/copy_features.py`` (the benchmark's corpus, edits and split, embedded by
the service's own vision code), every query is scored against every indexed picture exactly (no index, no
shortlist) as each variant would score it: the stored views are float16 as in SQL, a hit's score is the
best weighted cosine over (query views x stored views). Prints recall@1 / recall@10 on the tune and held-out
parts and writes ``bench/results/copy_retrieval_choice.json``. The served numbers come from
``bench/copy_detection_bench.py`` over HTTP.

Usage: .venv/bin/python bench/copy_retrieval_choice.py   (builds the feature cache first: ~5 min)
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import copy_features  # noqa: E402

from lookalike.vectors.reduction import DATA_DIR, Reduction  # noqa: E402
from lookalike.vision.views import CENTRE_WEIGHTS  # noqa: E402

Reduce = Callable[[np.ndarray], np.ndarray]


def split_of(name: str) -> str:
    return "heldout" if hashlib.sha256(name.encode()).digest()[0] % 2 else "tune"


def main() -> None:
    features, corpus = copy_features.load_or_build(200, 5000)
    shipped = Reduction.load(DATA_DIR / "reduction-pca256w-v2.npz")
    before = Reduction.load(DATA_DIR / "reduction-pca256-v1.npz")
    index = {name: i for i, name in enumerate(features.db_names)}
    truth = np.array([index[s] for s in features.q_source])
    split = np.array([split_of(s) for s in features.q_source])
    rows: dict[str, dict[str, list[float]]] = {}

    def run(reduce: Reduce, query_views: list[tuple[str, float]], stored: list[str], name: str) -> None:
        dbs = [reduce(features.db[v]).astype(np.float16).astype(np.float32) for v in stored]
        scores = np.maximum.reduce(
            [w * (reduce(features.queries[v]) @ d.T) for v, w in query_views for d in dbs]
        )
        rank = (scores > scores[np.arange(len(scores)), truth][:, None]).sum(1)
        rows[name] = {
            part: [round(float((rank[split == part] < k).mean()), 4) for k in (1, 10)]
            for part in ("tune", "heldout")
        }
        cells = " | ".join(f"{rows[name][p][0]:.3f} / {rows[name][p][1]:.3f}" for p in ("tune", "heldout"))
        print(f"| {name} | {cells} |")

    print("| variant | tune R@1 / R@10 | held-out R@1 / R@10 |\n|---|---|---|")
    run(before.reduce, [("crop", 1.0)], ["crop"], "before: pca256-v1, subject crop vs subject crop")
    run(shipped.reduce, [("crop", 1.0)], ["crop"], "pca256w-v2 (whitened, shrink 2)")
    both = ["crop", "whole"]
    run(shipped.reduce, [("crop", 1.0), ("whole", 1.0)], both, "+ whole picture, query and stored")
    centre = [("c70", CENTRE_WEIGHTS[0]), ("c50", CENTRE_WEIGHTS[1])]
    run(
        shipped.reduce,
        [("crop", 1.0), ("whole", 1.0), *centre],
        ["crop", "whole"],
        "+ central 70 % / 50 % query views (shipped)",
    )
    out = REPO / "bench" / "results" / "copy_retrieval_choice.json"
    out.write_text(json.dumps({"corpus": corpus.description, "recall@1,@10": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
