"""What keeping thumbnails (setting `thumbnails`, on by default for the web console) costs an add.

Adds the same real pictures (the 22 photos shipped with scikit-image, each under several product ids)
through ImageService, in process, with thumbnails on and off, in alternating rounds on fresh data
directories, so both configurations see the same machine load. Reports adds/s, add latency percentiles,
SQL bytes per picture and the thumbnails' own size. Searches never read thumbnails, so only adds are timed.

Usage: .venv/bin/python bench/thumbnail_bench.py [--pictures 220] [--rounds 3]
Writes bench/results/thumbnail_bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the shipped photos: tests/photos.py

from sqlalchemy import func, select  # noqa: E402

from lookalike.clock import ManualClock  # noqa: E402
from lookalike.config import Settings  # noqa: E402
from lookalike.service.container import build_services  # noqa: E402
from lookalike.storage.tables import thumbnails  # noqa: E402
from photos import PHOTO_NAMES, encode, load_photo  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def run_once(pictures: list[bytes], with_thumbnails: bool, model_cache: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), model_cache_dir=model_cache, thumbnails=with_thumbnails)
        clock = ManualClock()
        services = build_services(settings, clock=clock, background=False)
        try:
            account, _key = services.accounts.create_account("bench")
            instance = services.billing.orders.grant(account.id, "bench", capacity=10**6, qps=100)
            services.instances_repo.set_operation_limits(
                instance.id, add_qps=10**6, delete_qps=None, update_qps=None
            )
            latencies = []
            started = time.perf_counter()
            for n, data in enumerate(pictures):
                t0 = time.perf_counter()
                services.images.add_image(
                    account, "bench", product_id=f"p{n}", pic_name="a.jpg", picture=data
                )
                latencies.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - started
            with services.engine.connect() as conn:
                total = func.coalesce(func.sum(func.length(thumbnails.c.data)), 0)
                thumb_bytes = conn.execute(select(total)).scalar_one()
            services.close()
            db_bytes = (Path(tmp) / "lookalike.db").stat().st_size
        except BaseException:
            services.close()
            raise
    ms = np.array(latencies) * 1000
    return {
        "thumbnails": with_thumbnails,
        "adds_per_s": len(pictures) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "thumbnail_bytes_per_picture": int(thumb_bytes) / len(pictures),
        "sqlite_bytes_per_picture": db_bytes / len(pictures),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pictures", type=int, default=220, help="adds per run (the 22 photos, repeated)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating on/off rounds")
    ap.add_argument("--out", type=Path, default=RESULTS / "thumbnail_bench.json")
    args = ap.parse_args()
    photos = [encode(load_photo(name)) for name in PHOTO_NAMES]
    pictures = [photos[i % len(photos)] for i in range(args.pictures)]
    model_cache = Path(tempfile.gettempdir()) / "lookalike-bench-models"  # the ONNX graph, built once
    runs = []
    for _round in range(args.rounds):
        for with_thumbnails in (False, True):
            runs.append(run_once(pictures, with_thumbnails, model_cache))
    summary = {}
    for flag in (False, True):
        mine = [r for r in runs if r["thumbnails"] is flag]
        summary["on" if flag else "off"] = {
            key: float(np.median([r[key] for r in mine])) for key in mine[0] if key != "thumbnails"
        }
    ratio = summary["on"]["adds_per_s"] / summary["off"]["adds_per_s"]
    heads = ("adds/s", "p50 ms", "p95 ms", "p99 ms", "thumb B")
    print(f"{'thumbnails':<11}" + "".join(f"{h:>9}" for h in heads) + f"{'SQL B/pic':>11}")
    for name, row in summary.items():
        timing = "".join(f"{row[k]:>9.1f}" for k in ("adds_per_s", "p50_ms", "p95_ms", "p99_ms"))
        sizes = f"{row['thumbnail_bytes_per_picture']:>9.0f}{row['sqlite_bytes_per_picture']:>11.0f}"
        print(f"{name:<11}{timing}{sizes}")
    print(f"adds/s with thumbnails = {ratio:.3f} x without (medians of {args.rounds} alternating rounds)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "pictures_per_run": args.pictures,
                "rounds": args.rounds,
                "median": summary,
                "ratio_on_over_off": ratio,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
