"""Duplicate report (issue 13) on a 100k-picture instance with planted duplicate groups.

Drives the service's own code: ``build_services`` (SQLite + the local faiss index in a temp data dir,
``background=False``), an instance granted by ``billing.grant``, rows written by the ``ImageRepository``
the service uses (``upsert`` with ``NewImage``, one call per picture as ``ImageService.add_image`` does, but
with vectors given instead of embedded), the index built by ``services.indexes.get`` (the bulk build from
the stored vectors, as ``bench/capacity_bench.py`` cold-starts), then ``services.duplicates.start`` +
``services.tasks.run_pending()`` (the worker runs the report to the end) and the report read back through
``services.duplicates.groups`` and the report's stored pairs.

Data (say which: REAL features for the planted groups and the distractors, SYNTHETIC background):

* Real pictures: the copy-detection corpus's cached features (``bench/copy_features.py``,
  ``features-200-5000-0.npz`` under /tmp/lookalike-copy-features; read directly when present, since
  ``load_or_build`` first decodes the whole picture corpus, ~3 min, only to check the names; built by it
  otherwise). 1280-d GeM features of the views the service stores, reduced by
  ``Reduction.load(reduction-pca256w-v2.npz).reduce`` to 256-d and stored as float16 by the repository:
  ``embedding`` = the subject crop, ``aux_embedding`` = the whole picture, or no aux where the subject
  crop is the whole picture (the two cached features are then identical: 26 % of the db pictures, 55 % of
  the copies), exactly as ``lookalike.vision.views.stored_views``.
* Planted groups: each of the 200 sources + its 17 edited copies (one per edit family of
  ``tests/copy_edits.py``, each uploaded as JPEG q90): 200 groups of 18, 3,400 copies. Recall is reported
  for (a) the "catalogue duplicates" families (jpeg, thumbnail, pad, mirror, colour, banner, frame, blur,
  text, crop, noise, logo, rotate) and (b) all 17 (adds scribble, pip, screenshot, combined). Both come
  from the same instance, which holds every family's copies (so an (a) copy may also join its group
  through a (b)-only copy; the report's chaining does that in a real catalogue too).
* Real background: the 5,000 distractors (photos and graphics of the corpus's packages, no planted copy).
* Synthetic background to reach ``--size`` pictures: drawn like ``bench/capacity_bench.py`` (Mixture): a
  synthetic picture = normalize(p + sigma * z), p a randomly chosen real reduced vector (the crop view of
  one of the 5,000 distractors), z ~ N(0, I_256), sigma = sqrt((1/cos^2 - 1) / 256) so the cosine to the
  parent is ~``--cos`` (0.5); siblings of one parent are then ~0.25 apart, far under any threshold. The
  same share of synthetic pictures as of real distractors gets a second (aux) view, drawn the same way
  around the parent's whole-picture view, so the scan searches about as many views per picture as on
  real data. Pairs the report finds among them are counted and are false positives.
* Order: every picture (real and synthetic) is written in one seeded random order, so copies and their
  sources are spread over the id range the scan walks.

Measured per threshold (0.75 = DEFAULT_THRESHOLD, and 0.82, a search's copy threshold): wall time of the
whole report (start -> run_pending returns: the scan + the grouping + writing the groups), pictures/second
scanned, resident set before the report and its peak during it (/proc/self/status VmRSS sampled every
20 ms in a thread), pair precision (found pairs inside a planted group / found pairs), group precision
(pure groups / found groups; pure = every member in one planted group), group recall per family (the share
of planted copies in their source's found group), whole-group recovery (planted groups whose source's
found group holds all their copies and nothing else), the pairs among the real distractors apart (the
packages carry near-identical icons and clip-art variants: the 10 best are listed by name to judge), and
the pairs that touch the synthetic background.

Usage: nice -n 10 .venv/bin/python bench/duplicates_bench.py [--size 100000] [--thresholds 0.75,0.82]
       [--cos 0.5] [--seed 0] [--profile-batches 8] [--derive] [--out bench/results/duplicates_bench.json]
(--derive: run the report at the first threshold only, derive the others from its pairs: ~half the time.)
Numbers in bench/results/duplicates_bench.json.

Measured (2026-12-06, 2 shared cores, load 2.1-2.8, git 6c05cb2: groups built around centres; the whole run
504 s: 23 s writing, 63 s building the index, 192 s and 217 s of reports).

| | threshold 0.75 | threshold 0.82 |
|---|---:|---:|
| wall time of the report (s) | 192.1 | 216.9 |
| pictures scanned / s | 520.5 | 461.0 |
| RSS before the report (MB) | 365.1 | 366.5 |
| peak RSS during the report (MB) | 366.5 | 366.5 |
| report's own increase (MB) | 1.4 | 0.0 |
| pairs found | 18069 | 11930 |
| pair precision | 0.8522 | 0.8775 |
| pair precision w/o distractor-distractor pairs | 0.9949 | 0.9972 |
| groups found | 646 | 545 |
| group precision (pure / found) | 0.3421 | 0.4459 |
| group precision w/o distractor-only groups | 0.9404 | 0.9838 |
| distractor-distractor pairs | 2591 | 1433 |
| real distractors in those pairs | 1361 | 898 |
| pairs touching the synthetic background | 0 | 0 |
| **recall (a) catalogue families** | 0.8785 | 0.7608 |
| **recall (b) all 17 families** | 0.7809 | 0.6435 |
| copies paired directly with their source (a) | 0.8658 | 0.745 |
| copies paired directly with their source (b) | 0.7409 | 0.6118 |
| planted groups recovered whole and pure (a) | 0.25 | 0.065 |
| planted groups recovered whole and pure (b) | 0.055 | 0.01 |
| recall banner (a) | 0.975 | 0.885 |
| recall blur (a) | 0.88 | 0.805 |
| recall colour (a) | 0.9 | 0.805 |
| recall combined (b) | 0.615 | 0.395 |
| recall crop (a) | 0.8 | 0.555 |
| recall frame (a) | 0.97 | 0.835 |
| recall jpeg (a) | 0.905 | 0.805 |
| recall logo (a) | 0.74 | 0.605 |
| recall mirror (a) | 0.94 | 0.925 |
| recall noise (a) | 0.755 | 0.6 |
| recall pad (a) | 1.0 | 0.97 |
| recall pip (b) | 0.33 | 0.195 |
| recall rotate (a) | 0.79 | 0.635 |
| recall screenshot (b) | 0.615 | 0.31 |
| recall scribble (b) | 0.295 | 0.15 |
| recall text (a) | 0.79 | 0.52 |
| recall thumbnail (a) | 0.975 | 0.945 |

The 10 best pairs between two real distractors (both thresholds): clipart menubar <-> showmenu icons 0.991,
star shapes with 29/31, 39/41, 23/25 points 0.99, emoji clock faces (three <-> nine o'clock 0.987): look-alike
variants, not copies. The other false pairs are mostly real look-alikes among the corpus: clipart pumpkin2 <->
stamp jackolantern_mean (the same drawing in two packages, 0.994, and its copies), stamp t_tshirt <->
t_poloshirt; sources fireman200b/fireman240a pair with each other. Largest groups at 0.75: the two fireman
sources with their copies (26), 24 star shapes that all pair with one centre star, 23 road signs. (Before
the centre grouping, connected components chained 101 distinct stars into one group; recall was 0.925 (a) /
0.844 (b) then, counting copies that joined only through another copy.)
Scan profile (8 steps of 256 pictures): the batched IVF probe ~45 %, the exact re-rank of each query's
500-candidate shortlist from the float16 mapped file (LocalIndex._score, once per query) ~30 %, the
neighbours' stored views from SQL (views_by_id) ~17 %.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from lookalike.clock import ManualClock  # noqa: E402
from lookalike.config import Settings  # noqa: E402
from lookalike.domain.duplicates import DEFAULT_THRESHOLD, Pair, group_pairs  # noqa: E402
from lookalike.domain.models import Attributes  # noqa: E402
from lookalike.domain.words import search_text  # noqa: E402
from lookalike.service.container import Services, build_services  # noqa: E402
from lookalike.storage.images_repo import ImageRepository, NewImage, vector_to_blob  # noqa: E402
from lookalike.storage.tables import changes, images  # noqa: E402
from lookalike.storage.tasks_repo import SUCCESS  # noqa: E402
from lookalike.vectors.reduction import DATA_DIR, Reduction  # noqa: E402

RESULTS = REPO / "bench" / "results"
FEATURES = Path("/tmp/lookalike-copy-features")
MODEL_CACHE = Path(os.environ.get("LOOKALIKE_MODEL_CACHE_DIR", "/tmp/lookalike-bench-cache"))
SOURCES, DISTRACTORS = 200, 5000
CATALOGUE = (
    "jpeg",
    "thumbnail",
    "pad",
    "mirror",
    "colour",
    "banner",
    "frame",
    "blur",
    "text",
    "crop",
    "noise",
    "logo",
    "rotate",
)
KIND_SOURCE, KIND_COPY, KIND_DISTRACTOR, KIND_BACKGROUND = 0, 1, 2, 3
KIND_NAMES = ("source", "copy", "distractor", "background")


# ----------------------------------------------------------------------------------- memory


def vm(key: str = "VmRSS") -> int:
    """A /proc/self/status counter, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0]) * 1024
    return 0


class PeakRss:
    """The highest VmRSS seen by a sampling thread (VmHWM is the process's lifetime high-water mark)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.peak = vm()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, vm())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, vm())
        return self.peak


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


MB = 1024 * 1024


# ----------------------------------------------------------------------------------- data


def real_features() -> tuple[list[str], dict[str, np.ndarray], list[str], list[str], dict[str, np.ndarray]]:
    path = FEATURES / f"features-{SOURCES}-{DISTRACTORS}-0.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return (
                [str(n) for n in z["db_names"]],
                {v: z[f"db_{v}"] for v in ("crop", "whole")},
                [str(s) for s in z["q_source"]],
                [str(f) for f in z["q_family"]],
                {v: z[f"q_{v}"] for v in ("crop", "whole")},
            )
    from copy_features import load_or_build

    feats, _ = load_or_build(SOURCES, DISTRACTORS)
    return feats.db_names, feats.db, feats.q_source, feats.q_family, feats.queries


class Catalogue:
    """Every picture of the instance, by position in the write order: kind, planted group (-1: none),
    family (copies), name, primary vector, aux vector (or None)."""

    def __init__(self, size: int, cos: float, seed: int, reduction: Reduction) -> None:
        db_names, db, q_source, q_family, q = real_features()
        self.families = sorted(set(q_family))
        crop, whole = reduction.reduce(db["crop"]), reduction.reduce(db["whole"])
        db_single = np.all(db["crop"] == db["whole"], axis=1)
        qcrop, qwhole = reduction.reduce(q["crop"]), reduction.reduce(q["whole"])
        q_single = np.all(q["crop"] == q["whole"], axis=1)
        source_no = {name: i for i, name in enumerate(db_names[:SOURCES])}
        n_real = len(db_names) + len(q_source)
        if size < n_real:
            raise SystemExit(f"--size must be at least {n_real} (the real pictures)")
        n_bg = size - n_real
        rng = np.random.default_rng([seed, 1])
        parents = rng.integers(SOURCES, len(db_names), n_bg)  # a distractor each
        sigma = math.sqrt((1.0 / cos**2 - 1.0) / crop.shape[1])
        bg = crop[parents] + sigma * rng.standard_normal((n_bg, crop.shape[1]), dtype=np.float32)
        bg /= np.linalg.norm(bg, axis=1, keepdims=True)
        two_view_share = float(1.0 - db_single[SOURCES:].mean())
        bg_two = rng.random(n_bg) < two_view_share
        bg_aux = whole[parents] + sigma * rng.standard_normal((n_bg, crop.shape[1]), dtype=np.float32)
        bg_aux /= np.linalg.norm(bg_aux, axis=1, keepdims=True)
        self.draw = {
            "background": n_bg,
            "cos_to_parent_mean": round(float(np.einsum("ij,ij->i", bg, crop[parents]).mean()), 4),
            "sigma": round(sigma, 5),
            "two_view_share": round(two_view_share, 4),
            "real_copies_single_view_share": round(float(q_single.mean()), 4),
            "real_db_single_view_share": round(float(db_single.mean()), 4),
        }
        kind: list[int] = []
        group: list[int] = []
        family: list[str] = []
        names: list[str] = []
        primary: list[np.ndarray] = []
        aux: list[np.ndarray | None] = []
        for i, name in enumerate(db_names):
            kind.append(KIND_SOURCE if i < SOURCES else KIND_DISTRACTOR)
            group.append(i if i < SOURCES else -1)
            family.append("")
            names.append(name)
            primary.append(crop[i])
            aux.append(None if db_single[i] else whole[i])
        for j, (src, fam) in enumerate(zip(q_source, q_family, strict=True)):
            kind.append(KIND_COPY)
            group.append(source_no[src])
            family.append(fam)
            names.append(f"{src}~{fam}")
            primary.append(qcrop[j])
            aux.append(None if q_single[j] else qwhole[j])
        for b in range(n_bg):
            kind.append(KIND_BACKGROUND)
            group.append(-1)
            family.append("")
            names.append(f"syn{b}")
            primary.append(bg[b])
            aux.append(bg_aux[b] if bg_two[b] else None)
        order = np.random.default_rng([seed, 2]).permutation(size)
        self.kind = np.array(kind, np.int8)[order]
        self.group = np.array(group, np.int64)[order]
        self.family = [family[i] for i in order]
        self.names = [names[i] for i in order]
        self.primary = [primary[i] for i in order]
        self.aux = [aux[i] for i in order]
        self.size = size


# ----------------------------------------------------------------------------------- the instance


def write_catalogue(services: Services, instance_id: str, cat: Catalogue) -> dict[str, Any]:
    """Every picture in write order: the real ones through ``ImageRepository.upsert`` (NewImage, as
    ``ImageService.add_image`` writes it), each run of synthetic ones between them as one bulk insert of the
    same row and change-log values (``bench/capacity_bench.py``'s way); then the index is built."""
    repo = ImageRepository(services.engine)
    model_id = services.indexes.model_id
    now = services.clock.now()
    ids = np.zeros(cat.size, np.int64)
    with services.engine.connect() as conn:
        next_id = int(conn.execute(select(func.coalesce(func.max(images.c.id), 0))).scalar_one()) + 1
        next_seq = int(conn.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one()) + 1
    run: list[int] = []
    upserts = bulk_rows = 0
    t_upsert = t_bulk = 0.0

    def flush() -> None:
        nonlocal next_id, next_seq, bulk_rows, t_bulk
        if not run:
            return
        t = time.perf_counter()
        rows, log = [], []
        for n in run:
            product_id = f"p{n}"
            rows.append(
                {
                    "id": next_id,
                    "instance_id": instance_id,
                    "product_id": product_id,
                    "pic_name": cat.names[n],
                    "category_id": 0,
                    "custom_content": "",
                    "search_text": search_text([product_id, cat.names[n], ""]),
                    "region": "0,640,0,480",
                    "embedding": vector_to_blob(cat.primary[n]),
                    "aux_embedding": None if cat.aux[n] is None else vector_to_blob(cat.aux[n]),
                    "model_id": model_id,
                    "seq": next_seq,
                    "created_at": now,
                    "updated_at": now,
                    **Attributes().as_filter_fields(),
                }
            )
            log.append({"seq": next_seq, "instance_id": instance_id, "image_id": next_id, "op": "upsert"})
            ids[n] = next_id
            next_id, next_seq = next_id + 1, next_seq + 1
        with services.engine.begin() as conn:
            conn.execute(insert(images), rows)
            conn.execute(insert(changes), log)
        bulk_rows += len(run)
        run.clear()
        t_bulk += time.perf_counter() - t

    t0 = time.perf_counter()
    for n in range(cat.size):
        if cat.kind[n] == KIND_BACKGROUND:
            run.append(n)
            if len(run) >= 2_000:
                flush()
        else:
            flush()
            t = time.perf_counter()
            written = repo.upsert(
                instance_id,
                NewImage(
                    product_id=f"p{n}",
                    pic_name=cat.names[n],
                    category_id=0,
                    attributes=Attributes(),
                    custom_content="",
                    region="0,640,0,480",
                    embedding=cat.primary[n],
                    model_id=model_id,
                    aux_embedding=cat.aux[n],
                ),
                capacity=10**9,
                now=now,
            )
            t_upsert += time.perf_counter() - t
            if written.image_id != next_id:
                raise RuntimeError(f"upsert gave id {written.image_id}, expected {next_id}")
            ids[n] = written.image_id
            next_id, next_seq = written.image_id + 1, written.seq + 1
            upserts += 1
        if (n + 1) % 20_000 == 0:
            el = time.perf_counter() - t0
            print(f"  written {n + 1:,}/{cat.size:,}  {(n + 1) / el:,.0f}/s  load {load()}", flush=True)
    flush()
    count = repo.recount(instance_id)  # the bulk rows bypassed upsert's counter
    write_s = time.perf_counter() - t0
    assert count == cat.size, count
    t = time.perf_counter()
    index = services.indexes.get(instance_id)
    index_s = time.perf_counter() - t
    return {
        "write_s": round(write_s, 1),
        "upserts": upserts,
        "upsert_s": round(t_upsert, 1),
        "upserts_per_s": round(upserts / t_upsert) if t_upsert else None,
        "bulk_rows": bulk_rows,
        "bulk_s": round(t_bulk, 1),
        "index_build_s": round(index_s, 1),
        "index_live": len(index),
        "index_stats": _jsonable(getattr(index, "stats", lambda: {})()),
        "ids": ids,
    }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def run_report(services: Services, account: Any, instance_name: str, threshold: float) -> dict[str, Any]:
    services.clock.advance(60)  # type: ignore[attr-defined]  # the console's 1/s limit on starting one
    gc.collect()
    load_before = load()
    before = vm()
    sampler = PeakRss()
    t0 = time.perf_counter()
    started = services.duplicates.start(account, instance_name, threshold)
    finished = services.tasks.run_pending()
    wall = time.perf_counter() - t0
    peak = sampler.stop()
    report = services.duplicates.report(account, instance_name, started.task.id, rate_limited=False)
    assert report is not None and finished == 1 and report.status == SUCCESS, report
    pairs = [(p.first, p.second, p.score) for p in services.duplicates._repo.iter_pairs(report.task.id)]
    groups: list[list[int]] = []
    page = 1
    while True:
        got = services.duplicates.groups(
            account, instance_name, report.task.id, page_number=page, page_size=100
        )
        groups.extend([m.record.id for m in g.members] for g in got.groups)
        if len(got.groups) < 100:
            break
        page += 1
    return {
        "task_id": report.task.id,
        "wall_s": wall,
        "scanned": report.scanned,
        "rss_before": before,
        "rss_peak": peak,
        "pairs": pairs,
        "groups": groups,
        "load_before": load_before,
        "load_after": load(),
    }


def derived(first: dict[str, Any], threshold: float) -> dict[str, Any]:
    """A higher threshold's report from the first one's pairs (--derive): the scan's neighbour searches do
    not depend on the threshold, so its pairs are the first report's pairs that reach it; grouped by the
    report's own group_pairs. No time or memory: the scan is not rerun."""
    pairs = [p for p in first["pairs"] if p[2] >= threshold]
    groups = [[m.image_id for m in g.members] for g in group_pairs(Pair(a, b, s) for a, b, s in pairs)]
    return {
        "threshold": threshold,
        "derived": True,
        "wall_s": float("nan"),
        "scanned": first["scanned"],
        "rss_before": 0,
        "rss_peak": 0,
        "pairs": pairs,
        "groups": groups,
    }


def consistent(first: dict[str, Any], run: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Does this report equal the first one's pairs at or above its threshold, grouped the same way? (It
    should: same index, same searches; a difference means the scan is not deterministic.)"""
    want = {(a, b): s for a, b, s in first["pairs"] if s >= threshold}
    got = {(a, b): s for a, b, s in run["pairs"]}
    # Pairs only: the report's grouping also scores each linked set in full from SQL (densify), which
    # the first report's pairs alone cannot reproduce.
    return {
        "pairs_equal": want.keys() == got.keys(),
        "only_in_this_report": len(got.keys() - want.keys()),
        "only_in_first_filtered": len(want.keys() - got.keys()),
    }


# ----------------------------------------------------------------------------------- scoring


def score(cat: Catalogue, ids: np.ndarray, run: dict[str, Any]) -> dict[str, Any]:
    pos = {int(i): n for n, i in enumerate(ids)}  # image id -> write position

    def planted(image_id: int) -> int:
        return int(cat.group[pos[image_id]])

    def kind(image_id: int) -> int:
        return int(cat.kind[pos[image_id]])

    pair_kinds: Counter[str] = Counter()
    within = 0
    distractor_pairs: list[tuple[float, str, str]] = []
    cross_pairs: list[tuple[float, str, str]] = []  # the other false pairs (not two distractors)
    direct: set[tuple[int, int]] = set()  # (source position, copy position) paired directly
    for a, b, s in run["pairs"]:
        ga, gb = planted(a), planted(b)
        if ga >= 0 and ga == gb:
            within += 1
            pair_kinds["within planted group"] += 1
            if {kind(a), kind(b)} == {KIND_SOURCE, KIND_COPY}:
                direct.add((pos[a], pos[b]) if kind(a) == KIND_SOURCE else (pos[b], pos[a]))
            continue
        ka, kb = sorted((KIND_NAMES[kind(a)], KIND_NAMES[kind(b)]))
        pair_kinds[f"{ka}-{kb}"] += 1
        named = (s, cat.names[pos[a]], cat.names[pos[b]])
        (distractor_pairs if ka == kb == "distractor" else cross_pairs).append(named)
    n_pairs = len(run["pairs"])
    distractor_pairs.sort(reverse=True)
    cross_pairs.sort(reverse=True)
    in_distractor_pairs = {n for _, a, b in distractor_pairs for n in (a, b)}
    package = Counter(
        name.split(":")[0] for n, name in enumerate(cat.names) if cat.kind[n] == KIND_DISTRACTOR
    )
    package_paired = Counter(name.split(":")[0] for name in in_distractor_pairs)

    # groups
    group_of: dict[int, int] = {}
    pure = only_distractors = touches_background = 0
    for g_no, members in enumerate(run["groups"]):
        labels = {planted(i) for i in members}
        if len(labels) == 1 and next(iter(labels)) >= 0:
            pure += 1
        if all(kind(i) == KIND_DISTRACTOR for i in members):
            only_distractors += 1
        if any(kind(i) == KIND_BACKGROUND for i in members):
            touches_background += 1
        for i in members:
            group_of[pos[i]] = g_no
    n_groups = len(run["groups"])
    sizes = [len(g) for g in run["groups"]]

    # recall per family: the copy is in its source's found group
    source_pos = {int(cat.group[n]): n for n in range(cat.size) if cat.kind[n] == KIND_SOURCE}
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    paired: Counter[str] = Counter()
    by_group: dict[int, list[int]] = defaultdict(list)
    for n in range(cat.size):
        if cat.kind[n] != KIND_COPY:
            continue
        g = int(cat.group[n])
        by_group[g].append(n)
        src_group = group_of.get(source_pos[g])
        hit = src_group is not None and group_of.get(n) == src_group
        hits[cat.family[n]][0] += int(hit)
        hits[cat.family[n]][1] += 1
        paired[cat.family[n]] += int((source_pos[g], n) in direct)
    per_family = {f: round(h / t, 4) for f, (h, t) in sorted(hits.items())}
    pair_per_family = {f: round(paired[f] / t, 4) for f, (_, t) in sorted(hits.items())}

    def overall_pairs(families: list[str] | tuple[str, ...]) -> float:
        return round(sum(paired[f] for f in families) / sum(hits[f][1] for f in families), 4)

    largest = []
    for members in sorted(run["groups"], key=len, reverse=True)[:3]:
        kinds = Counter(KIND_NAMES[kind(i)] for i in members)
        largest.append(
            {
                "size": len(members),
                "kinds": dict(kinds),
                "planted_groups": len({planted(i) for i in members if planted(i) >= 0}),
                "sample": [cat.names[pos[i]] for i in members[:8]],
            }
        )

    def overall(families: list[str] | tuple[str, ...]) -> float:
        h = sum(hits[f][0] for f in families)
        t = sum(hits[f][1] for f in families)
        return round(h / t, 4)

    def recovered(families: list[str] | tuple[str, ...]) -> float:
        """Planted groups (source + copies of these families) whose source's found group holds all of them
        and nothing outside the planted group."""
        good = 0
        for g, src in source_pos.items():
            found = group_of.get(src)
            want = [n for n in by_group[g] if cat.family[n] in families]
            if found is None:
                continue
            members = run["groups"][found]
            if all(group_of.get(n) == found for n in want) and all(planted(i) == g for i in members):
                good += 1
        return round(good / len(source_pos), 4)

    wall = run["wall_s"]
    timing: dict[str, Any] = {
        "threshold": run["threshold"],
        "scanned": run["scanned"],
        **{k: None for k in ("wall_s", "pictures_per_s", "rss_before_mb", "rss_peak_mb", "rss_increase_mb")},
    }
    if not run.get("derived"):
        timing.update(
            wall_s=round(wall, 1),
            pictures_per_s=round(run["scanned"] / wall, 1),
            rss_before_mb=round(run["rss_before"] / MB, 1),
            rss_peak_mb=round(run["rss_peak"] / MB, 1),
            rss_increase_mb=round((run["rss_peak"] - run["rss_before"]) / MB, 1),
        )
    return {
        **timing,
        "pairs": n_pairs,
        "pair_precision": round(within / n_pairs, 4) if n_pairs else None,
        "pair_precision_without_distractor_pairs": (
            round(within / (n_pairs - pair_kinds["distractor-distractor"]), 4)
            if n_pairs - pair_kinds["distractor-distractor"]
            else None
        ),
        "pair_kinds": dict(pair_kinds.most_common()),
        "groups": n_groups,
        "group_sizes": dict(sorted(Counter(sizes).items())),
        "pure_groups": pure,
        "group_precision": round(pure / n_groups, 4) if n_groups else None,
        "group_precision_without_distractor_groups": (
            round(pure / (n_groups - only_distractors), 4) if n_groups - only_distractors else None
        ),
        "groups_of_distractors_only": only_distractors,
        "groups_touching_background": touches_background,
        "background_pairs": sum(v for k, v in pair_kinds.items() if "background" in k),
        "recall_catalogue": overall(CATALOGUE),
        "recall_all": overall(cat.families),
        "recall_per_family": per_family,
        "pair_recall_catalogue": overall_pairs(CATALOGUE),
        "pair_recall_all": overall_pairs(cat.families),
        "pair_recall_per_family": pair_per_family,
        "groups_recovered_catalogue": recovered(CATALOGUE),
        "groups_recovered_all": recovered(cat.families),
        "distractors_in_pairs": len(in_distractor_pairs),
        "distractors_in_pairs_by_package": {k: f"{package_paired[k]}/{v}" for k, v in package.most_common()},
        "top_distractor_pairs": [{"score": round(s, 4), "a": a, "b": b} for s, a, b in distractor_pairs[:10]],
        "lowest_distractor_pairs": [
            {"score": round(s, 4), "a": a, "b": b} for s, a, b in distractor_pairs[-10:]
        ],
        "top_other_false_pairs": [{"score": round(s, 4), "a": a, "b": b} for s, a, b in cross_pairs[:10]],
        "largest_groups": largest,
    }


def profile_scan(services: Services, instance_id: str, threshold: float, batches: int) -> dict[str, Any]:
    """cProfile of ``batches`` scan steps (ImageService.scan_pairs, 256 pictures each) from the start."""
    prof = cProfile.Profile()
    cursor, scanned = 0, 0
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(batches):
        scan = services.images.scan_pairs(
            instance_id, after_id=cursor, limit=256, neighbours=10, threshold=threshold
        )
        if scan.scanned == 0:
            break
        cursor, scanned = scan.last_id, scanned + scan.scanned
    prof.disable()
    wall = time.perf_counter() - t0
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    text = out.getvalue()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
    return {
        "pictures": scanned,
        "wall_s": round(wall, 2),
        "pictures_per_s": round(scanned / wall, 1),
        "by_cumulative": text,
        "by_tottime": out.getvalue(),
    }


# ----------------------------------------------------------------------------------- table


def table(results: list[dict[str, Any]], families: list[str]) -> str:
    head = (
        "| | "
        + " | ".join(
            f"threshold {r['threshold']}" + (" (derived)" if r.get("derived") else "") for r in results
        )
        + " |"
    )
    sep = "|---|" + "---:|" * len(results)
    rows = [
        ("wall time of the report (s)", "wall_s"),
        ("pictures scanned / s", "pictures_per_s"),
        ("RSS before the report (MB)", "rss_before_mb"),
        ("peak RSS during the report (MB)", "rss_peak_mb"),
        ("report's own increase (MB)", "rss_increase_mb"),
        ("pairs found", "pairs"),
        ("pair precision", "pair_precision"),
        ("pair precision w/o distractor-distractor pairs", "pair_precision_without_distractor_pairs"),
        ("groups found", "groups"),
        ("group precision (pure / found)", "group_precision"),
        ("group precision w/o distractor-only groups", "group_precision_without_distractor_groups"),
        ("distractor-distractor pairs", None),
        ("real distractors in those pairs", "distractors_in_pairs"),
        ("pairs touching the synthetic background", "background_pairs"),
        ("**recall (a) catalogue families**", "recall_catalogue"),
        ("**recall (b) all 17 families**", "recall_all"),
        ("copies paired directly with their source (a)", "pair_recall_catalogue"),
        ("copies paired directly with their source (b)", "pair_recall_all"),
        ("planted groups recovered whole and pure (a)", "groups_recovered_catalogue"),
        ("planted groups recovered whole and pure (b)", "groups_recovered_all"),
    ]
    lines = [head, sep]
    for label, key in rows:
        if key is None:
            vals = [r["pair_kinds"].get("distractor-distractor", 0) for r in results]
        else:
            vals = [r[key] for r in results]
        lines.append(f"| {label} | " + " | ".join("—" if v is None else str(v) for v in vals) + " |")
    for fam in families:
        mark = "(a)" if fam in CATALOGUE else "(b)"
        lines.append(
            f"| recall {fam} {mark} | " + " | ".join(str(r["recall_per_family"][fam]) for r in results) + " |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--thresholds", default=f"{DEFAULT_THRESHOLD},0.82")
    ap.add_argument("--cos", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile-batches", type=int, default=8, help="scan steps to profile (0: none)")
    ap.add_argument(
        "--derive",
        action="store_true",
        help="run the report at the first threshold only; derive the others from its pairs (half the time)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "duplicates_bench.json")
    args = ap.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    load_start = load()
    t_all = time.perf_counter()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    reduction = Reduction.load(DATA_DIR / "reduction-pca256w-v2.npz")
    t = time.perf_counter()
    cat = Catalogue(args.size, args.cos, args.seed, reduction)
    data_s = time.perf_counter() - t
    print(f"catalogue drawn in {data_s:.1f}s: {cat.draw}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lookalike-dupbench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", model_cache_dir=MODEL_CACHE)
        services = build_services(settings, clock=ManualClock(), background=False)
        try:
            if services.indexes.model_id != reduction.model_id():
                raise SystemExit(
                    f"the service stores {services.indexes.model_id}, not {reduction.model_id()}"
                )
            account, _ = services.accounts.create_account("dupbench")
            instance = services.billing.orders.grant(account.id, "dupbench", capacity=10**6, qps=1000)
            build = write_catalogue(services, instance.id, cat)
            ids = build.pop("ids")
            print(f"instance built: {build}", flush=True)
            cat.primary = cat.aux = []  # the vectors live in SQL and the index now
            gc.collect()
            results = []
            first: dict[str, Any] | None = None
            for threshold in thresholds:
                if first is not None and args.derive:
                    run = derived(first, threshold)
                else:
                    print(f"report at {threshold} ...", flush=True)
                    run = run_report(services, account, instance.name, threshold)
                    run["threshold"] = threshold
                res = score(cat, ids, run)
                res["load_before"], res["load_after"] = run.get("load_before"), run.get("load_after")
                if first is None:
                    first = run
                else:
                    res["same_as_first_report_filtered"] = consistent(first, run, threshold)
                res["derived"] = bool(run.get("derived"))
                results.append(res)
                print(json.dumps({k: v for k, v in res.items() if not k.startswith(("top_", "lowest_"))}))
            profile = None
            if args.profile_batches:
                profile = profile_scan(services, instance.id, thresholds[0], args.profile_batches)
                print(f"profile of {profile['pictures']} pictures: {profile['pictures_per_s']}/s")
                print(profile["by_cumulative"])
                print(profile["by_tottime"])
            vm_hwm = vm("VmHWM")
        finally:
            services.close()
    md = table(results, cat.families)
    print()
    print(md)
    for r in results:
        print(f"\nthreshold {r['threshold']}: the 10 best pairs between two real distractors")
        for p in r["top_distractor_pairs"]:
            print(f"  {p['score']:.4f}  {p['a']}  <->  {p['b']}")
    out = {
        "bench": "duplicates_bench",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_start": load_start,
            "load_end": load(),
        },
        "params": {
            "size": args.size,
            "thresholds": thresholds,
            "cos": args.cos,
            "seed": args.seed,
            "sources": SOURCES,
            "distractors": DISTRACTORS,
            "families": cat.families,
            "catalogue_families": list(CATALOGUE),
        },
        "data": cat.draw,
        "build": build,
        "results": results,
        "profile": profile,
        "process_vm_hwm_mb": round(vm_hwm / MB, 1),
        "total_s": round(time.perf_counter() - t_all, 1),
        "table": md,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out} in {out['total_s']}s total")


if __name__ == "__main__":
    main()
