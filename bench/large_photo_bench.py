"""What a reduced decode saves on large photos (issue 14), in-process, one thread.

An add or a search by picture without a Region lets libjpeg decode a large JPEG scaled by 1/2, 1/4 or 1/8
(``lookalike.vision.decode``: the long side stays >= 960 px, the short side >= 224 px). This script runs the
per-picture work of an add (decode, subject crop, stored views, ORB features, preprocess + network,
thumbnail) and of a search's first step (decode, subject crop, query ORB features, preprocess + network)
on the same pictures with the full decode and with the reduced one, in the same run, and reports the
median ms per stage and the cosine between the stored vectors the two give (a picture stored from a full
decode and searched with a reduced one).

Pictures (synthetic sizes, real content): the 22 scikit-image photos of ``tests/photos.py`` scaled
(bicubic) to 4032 x 3024, a 12-megapixel phone photo's size, and encoded as JPEG quality 90 with 4:2:0
chroma, as phones write them; 2016 x 1512 (3 MP) for a second row.

Usage: nice .venv/bin/python bench/large_photo_bench.py  (writes bench/results/large_photo_bench.json)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from run_info import machine_info  # noqa: E402

from lookalike.vision.decode import decode_image  # noqa: E402
from lookalike.vision.embedder import EfficientNetEmbedder, limit_blas_threads, preprocess  # noqa: E402
from lookalike.vision.keypoints import query_keypoints, stored_keypoints  # noqa: E402
from lookalike.vision.prepare import prepare_for_embedding  # noqa: E402
from lookalike.vision.thumbnail import make_thumbnail  # noqa: E402
from lookalike.vision.views import stored_views  # noqa: E402
from photos import encode, sample_photos  # noqa: E402

SIZES = ((4032, 3024), (2016, 1512))
OUT = REPO / "bench" / "results" / "large_photo_bench.json"


def run(
    bodies: list[bytes], embedder: EfficientNetEmbedder, reduced: bool
) -> tuple[dict[str, float], list[np.ndarray]]:
    laps: dict[str, list[float]] = {}
    vectors = []

    def lap(stage: str, started: float) -> float:
        now = time.process_time()
        laps.setdefault(stage, []).append((now - started) * 1000)
        return now

    for body in bodies:
        t = time.process_time()
        decoded = decode_image(body, reduced=reduced)
        t = lap("decode", t)
        picture, _, _ = prepare_for_embedding(decoded, None, True)
        views = stored_views(decoded.image, picture)
        t = lap("subject crop + views", t)
        stored_keypoints(decoded.image)
        t = lap("stored ORB features (add)", t)
        query_keypoints(decoded.image)
        t = lap("query ORB features (search)", t)
        batch = preprocess(views)
        t = lap("preprocess", t)
        features, _ = embedder.forward(batch)
        vectors.append(embedder.pool(features))
        t = lap("network", t)
        make_thumbnail(decoded.image, 256)
        lap("thumbnail (add)", t)
    return {stage: statistics.median(ms) for stage, ms in laps.items()}, vectors


def main() -> None:
    limit_blas_threads()
    machine = machine_info()
    embedder = EfficientNetEmbedder(Path("/tmp/lookalike-bench-cache"), intra_op_threads=1)
    embedder.load()
    photos = [im.convert("RGB") for im in sample_photos().values()]
    rows: list[dict[str, Any]] = []
    for size in SIZES:
        bodies = [encode(p.resize(size, Image.Resampling.BICUBIC), "JPEG", quality=90) for p in photos]
        run(bodies[:2], embedder, True)  # warm-up
        full, full_vectors = run(bodies, embedder, False)
        reduced, reduced_vectors = run(bodies, embedder, True)
        # The primary views' cosine, and the search score (best cosine over the views' pairs) of a picture
        # stored from a full decode and searched with a reduced one.
        cosines = [float(a[0] @ b[0]) for a, b in zip(full_vectors, reduced_vectors, strict=True)]
        scores = [float((a @ b.T).max()) for a, b in zip(full_vectors, reduced_vectors, strict=True)]
        add = (
            "decode",
            "subject crop + views",
            "stored ORB features (add)",
            "preprocess",
            "network",
            "thumbnail (add)",
        )
        search = ("decode", "subject crop + views", "query ORB features (search)", "preprocess", "network")
        rows.append(
            {
                "size": list(size),
                "pictures": len(bodies),
                "mean_bytes": int(np.mean([len(b) for b in bodies])),
                "median_cpu_ms": {"full decode": full, "reduced decode": reduced},
                "add_ms": {"full": sum(full[s] for s in add), "reduced": sum(reduced[s] for s in add)},
                "search_step_1_ms": {
                    "full": sum(full[s] for s in search),
                    "reduced": sum(reduced[s] for s in search),
                },
                "cosine_full_vs_reduced": {"min": min(cosines), "median": statistics.median(cosines)},
                "score_full_vs_reduced": {"min": min(scores), "median": statistics.median(scores)},
            }
        )
    for row in rows:
        print(
            f"\n{row['size'][0]} x {row['size'][1]} ({row['pictures']} JPEGs, {row['mean_bytes']:,} B mean)"
        )
        print("| stage (median CPU ms, one thread) | full decode | reduced decode |\n|---|---|---|")
        for stage, ms in row["median_cpu_ms"]["full decode"].items():
            print(f"| {stage} | {ms:.1f} | {row['median_cpu_ms']['reduced decode'][stage]:.1f} |")
        for what in ("add_ms", "search_step_1_ms"):
            full_ms, reduced_ms = row[what]["full"], row[what]["reduced"]
            print(f"| **{what}** | {full_ms:.1f} | {reduced_ms:.1f} ({full_ms / reduced_ms:.1f}x less) |")
        cos, score = row["cosine_full_vs_reduced"], row["score_full_vs_reduced"]
        print(
            f"primary view's cosine, full vs reduced decode: min {cos['min']:.4f}, "
            f"median {cos['median']:.4f}; search score (best over the views' pairs): "
            f"min {score['min']:.4f}, median {score['median']:.4f}"
        )
    OUT.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine | {"load_avg_at_end": list(os.getloadavg())},
                "pictures": "the 22 scikit-image photos of tests/photos.py, bicubic to each size, JPEG q90",
                "cpu": "time.process_time, one ONNX Runtime thread",
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
