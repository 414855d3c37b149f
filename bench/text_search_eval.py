"""Measure search by words (SearchImageByText) on pictures the learned text mapping never saw (issue 13).

Pictures (``bench/text_corpus.py`` ``evaluation``): every scene photo (the scikit-image photos and the
desktop wallpapers of the Debian packages), every Tux Paint stamp and Oxygen icon *outside* the training
quarter of ``bench/picture_corpus.py``, a seeded 9 % of the Open Clip Art and 30 % of the Noto emoji outside
it; near-duplicates dropped (of each other and of the training pictures). None was used to fit the map
(``bench/fit_text_mapping.py`` fits on the training quarter and the Adwaita icons). Each picture is sent as
JPEG q92 through the real service path (``ImageService.add_image``: decode, subject crop, EfficientNet-Lite0,
GeM, the whitened reduction, the index) twice, into two instances:

* ``visual``: opaque names (ProductId ``p01234``, PicName ``pic01234.jpg``, no CustomContent), so the
  full-text word match cannot help; the visual prompts are searched here;
* ``named``: PicName = the picture's words as a file name, CustomContent = its words (``text_corpus.label``);
  the name prompts are searched here.

Prompts: ``bench/text_prompts.json``, written and committed before any evaluation of the learned map and not
edited after. Visual prompts are everyday phrases ("a cat", "a snowy mountain", "a city at night"); a
picture is relevant when its label matches the prompt's regex (also fixed beforehand). Name prompts name
words of some pictures' PicName/CustomContent; relevant = the pictures whose words hold every word of the
prompt. Labels are what the packages say, so relevance is approximate: a wallpaper counts only when its name
says what it shows (most, like "Altai" or "Kokkini", do not); such misses count against every route alike.
A prompt with no relevant picture left after the near-duplicate filter cannot be answered and is left out
(listed in the JSON as ``unanswerable_prompts``).

Metrics per route (over the same stored pictures, in one run): top-1 and top-5 (a relevant picture first /
among the first five, counting pictures), MRR (rank capped at 100, the most one page returns), and the latency
of a text query through ``TextSearchService.search`` (encode + search; median, p95). ``chance@1`` is the
mean share of relevant pictures, what a random order gets at top-1. Routes:

* ``imagenet``: the projection through the 1000 ImageNet classes (the route before the map);
* ``learned``: the learned map alone;
* ``fused (shipped)``: what the service runs (the map fused with the projection at the file's weight).
* with ``--extra-map FILE``, another map (not shipped) alone and fused at its own weight: the README's run
  measured the map *trained alone* (``fit_text_mapping.py --alone``), since the shipped one was trained as
  the projection's complement and says little by itself.

Run: ``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/text_search_eval.py`` (about 10 minutes on 2
shared cores). Prints a table and writes ``bench/results/text_search_eval.json`` (commit, machine load,
every prompt's ranks).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

import text_corpus  # noqa: E402

from lookalike.clock import ManualClock  # noqa: E402
from lookalike.config import Settings  # noqa: E402
from lookalike.domain.models import Account  # noqa: E402
from lookalike.service.container import Services, build_services  # noqa: E402
from lookalike.service.images import SearchOptions  # noqa: E402
from lookalike.service.text_search import TextSearchService  # noqa: E402
from lookalike.vision.text_encoder import OnnxMiniLMEncoder, QueryRoute, TextQueryModel  # noqa: E402
from lookalike.vision.text_mapping import TextMapping  # noqa: E402

PROMPTS = ROOT / "bench" / "text_prompts.json"
ROUTES: list[tuple[str, QueryRoute]] = [
    ("imagenet projection (before)", "imagenet"),
    ("learned map", "learned"),
    ("fused (shipped)", "shipped"),
]
DEPTH = 100


def words_of(text: str) -> set[str]:
    return {w for w in re.split(r"[^a-z]+", text.lower()) if w}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:120] or "picture"


def jpeg(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def add_all(services: Services, account: Account, pictures: list[text_corpus.Captioned]) -> dict[str, float]:
    started = time.perf_counter()
    for i, item in enumerate(pictures):
        data = jpeg(item.image)
        services.images.add_image(
            account, "visual", product_id=f"p{i:05d}", pic_name=f"pic{i:05d}.jpg", picture=data
        )
        services.images.add_image(
            account,
            "named",
            product_id=f"p{i:05d}",
            pic_name=f"{slug(item.label)}.jpg",
            picture=data,
            custom_content=item.label[:4000],
        )
        if i % 200 == 0:
            print(f"  added {i}/{len(pictures)}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "adds_per_second": round(2 * len(pictures) / seconds, 1)}


def rank(hits: list[int], relevant: set[int]) -> int:
    return next((r for r, i in enumerate(hits) if i in relevant), DEPTH)


def summary(ranks: list[int]) -> dict[str, float]:
    n = len(ranks)
    return {
        "top1": round(sum(r < 1 for r in ranks) / n, 3),
        "top5": round(sum(r < 5 for r in ranks) / n, 3),
        "mrr": round(sum(1 / (r + 1) for r in ranks if r < DEPTH) / n, 3),
        "prompts": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--extra-map",
        type=Path,
        help="also measure this map file (not shipped; e.g. from fit_text_mapping.py --alone): alone and "
        "fused at its own ImageNet weight",
    )
    args = parser.parse_args()
    routes: list[tuple[str, QueryRoute, Path | None]] = [(label, route, None) for label, route in ROUTES]
    if args.extra_map:
        routes += [
            ("other map alone", "learned", args.extra_map),
            ("other map fused", "shipped", args.extra_map),
        ]
    os.environ.setdefault("SKIMAGE_DATADIR", tempfile.mkdtemp())  # never reuse a download cache
    started = time.perf_counter()
    load_before = os.getloadavg()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    prompts = json.loads(PROMPTS.read_text())
    pictures = text_corpus.evaluation()
    kinds: dict[str, int] = {}
    for item in pictures:
        kinds[item.name.split(":")[0]] = kinds.get(item.name.split(":")[0], 0) + 1
    print(f"{len(pictures)} evaluation pictures {kinds}", flush=True)

    visual = []
    for p in prompts["visual"]:
        relevant = {
            i for i, item in enumerate(pictures) if re.search(p["relevant"], item.label, re.IGNORECASE)
        }
        visual.append((p["prompt"], relevant))
    named = []
    for p in prompts["name"]:
        want = words_of(p["prompt"])
        named.append((p["prompt"], {i for i, item in enumerate(pictures) if want <= words_of(item.label)}))
    # A prompt whose relevant pictures were all dropped as near-duplicates cannot be answered: left out.
    unanswerable = [text for text, relevant in visual + named if not relevant]
    visual = [(text, relevant) for text, relevant in visual if relevant]
    named = [(text, relevant) for text, relevant in named if relevant]

    work = Path(tempfile.mkdtemp(prefix="lookalike-texteval-"))
    settings = Settings(data_dir=work / "data", model_cache_dir=work / "models")
    services = build_services(settings, clock=ManualClock(), background=False)
    try:
        account, _key = services.accounts.create_account("bench")
        for name in ("visual", "named"):
            instance = services.billing.orders.grant(account.id, name, capacity=100_000, qps=100_000)
            services.instances_repo.set_operation_limits(
                instance.id, add_qps=100_000, delete_qps=100_000, update_qps=100_000
            )
        adding = add_all(services, account, pictures)
        encoder = OnnxMiniLMEncoder()
        results: dict[str, Any] = {"routes": {}, "prompts": {"visual": {}, "name": {}}}
        for label, route, map_path in routes:
            model = TextQueryModel(settings.models_dir, encoder, route=route, mapping_path=map_path)
            search = TextSearchService(services.images, model)
            search.search(account, "visual", "warm up")  # loading is not a query's latency
            latencies: list[float] = []
            by_kind: dict[str, list[int]] = {"visual": [], "name": []}
            for kind, instance, items in (("visual", "visual", visual), ("name", "named", named)):
                for text, relevant in items:
                    t0 = time.perf_counter()
                    result = search.search(account, instance, text, SearchOptions(num=DEPTH))
                    latencies.append((time.perf_counter() - t0) * 1000)
                    hits = [int(h.record.product_id[1:]) for h in result.hits]
                    r = rank(hits, relevant)
                    by_kind[kind].append(r)
                    entry = results["prompts"][kind].setdefault(
                        text, {"relevant": len(relevant), "ranks": {}, "top3": {}, "best_relevant_score": {}}
                    )
                    key = route if map_path is None else label
                    entry["ranks"][key] = r
                    entry["best_relevant_score"][key] = max(
                        (round(h.score, 3) for h in result.hits if int(h.record.product_id[1:]) in relevant),
                        default=None,
                    )
                    entry["top3"][key] = [pictures[i].label[:60] for i in hits[:3]]
            ordered = sorted(latencies)
            results["routes"][label] = {
                "route": route,
                "visual": summary(by_kind["visual"]),
                "name": summary(by_kind["name"]),
                "latency_ms_median": round(statistics.median(latencies), 1),
                "latency_ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            }
            print(label, json.dumps(results["routes"][label]), flush=True)
        mapping = TextQueryModel(settings.models_dir, encoder).mapping
    finally:
        services.close()

    out = {
        "task": "text -> picture on pictures the learned map never saw; rank among pictures",
        "commit": commit,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "pictures": len(pictures),
        "pictures_by_kind": kinds,
        "adding": adding,
        "mapping": mapping.info,
        "extra_map": None if args.extra_map is None else TextMapping.load(args.extra_map).info,
        "visual_prompts": len(visual),
        "name_prompts": len(named),
        "unanswerable_prompts": unanswerable,
        "chance_top1_visual": round(statistics.mean(len(r) / len(pictures) for _, r in visual), 3),
        "targets": {"visual_top1": 0.7, "visual_top5": 0.9, "name_top1": 0.95},
        **results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    target = ROOT / "bench" / "results" / "text_search_eval.json"
    target.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(
        f"\n{len(pictures)} pictures, {len(visual)} visual + {len(named)} name prompts; "
        f"chance top-1 (visual) {out['chance_top1_visual']}"
    )
    print(
        f"{'route':30} {'vis top1':>8} {'top5':>6} {'MRR':>6}   {'name top1':>9} {'top5':>6}"
        f"   {'ms p50':>6} {'p95':>6}"
    )
    for label, row in results["routes"].items():
        v, n = row["visual"], row["name"]
        print(
            f"{label:30} {v['top1']:8.3f} {v['top5']:6.3f} {v['mrr']:6.3f}"
            f"   {n['top1']:9.3f} {n['top5']:6.3f}"
            f"   {row['latency_ms_median']:6.1f} {row['latency_ms_p95']:6.1f}"
        )
    print("targets: visual top-1 >= 0.7, top-5 >= 0.9; name top-1 >= 0.95")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
