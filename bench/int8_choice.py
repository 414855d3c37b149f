"""Is an int8 EfficientNet-Lite0 worth serving? Speed and copy-detection recall against float (issue 14).

Rule (issue 14): int8 is used only if its recall@1 on the copy benchmark is within 0.005 of float's on both
the tune and the held-out part (overall) and it is faster; otherwise the float graph stays.

Variants, all built here from the shipped float graph (``lookalike.vision.efficientnet.ensure_onnx_model``)
after ``onnxruntime.quantization.quant_pre_process``:

* ``float``: the shipped graph as the service runs it;
* ``int8 dynamic``: ``quantize_dynamic``, int8 weights, activations quantized at run time (ConvInteger);
* ``int8 static QDQ``: ``quantize_static``, QDQ format, per-channel int8 weights, uint8 activations,
  MinMax calibration over ``CALIBRATION`` pictures of ``picture_corpus.training()`` (the training quarter of
  the stamps, clip-art, icons and emoji, which the copy benchmark never uses as source, distractor or
  overlay; a seeded sample, names in the JSON), preprocessed by ``lookalike.vision.embedder.preprocess``
  exactly as the embedder does.

Speed: the network alone (``EfficientNetEmbedder.forward`` on a preprocessed batch, both outputs), each
variant in a session with the service's options (``EfficientNetEmbedder._load``'s: 2 intra-op threads,
spinning off, sequential) read back from an embedder's own session; images/s at batch 1 and 16, median of
``REPS`` repetitions, the variants interleaved within each repetition so that the other jobs on the shared
machine weigh on all alike; also the process's CPU ms per image and, per repetition, the ratio of a
variant's images/s to float's in the same repetition ("faster" in the rule: its median above 1 at both batch
sizes).

Quality: the copy benchmark's corpus (``picture_corpus.load(200, 5000)``: 200 sources, 5,000 distractors,
17 edit families, the tune / held-out split of ``copy_retrieval_choice.split_of``), views made by the
benchmark's own functions (``copy_features.views_of`` / ``jpeg_roundtrip`` / ``query_seed``, the copy views
``copy_rerank_choice.VIEWS`` "inner" and "strokes"), every view embedded by every variant in one pass (each
batch preprocessed once), then scored by ``copy_rerank_choice.shipped_scores`` plus the two copy views at
their shipped weights, as ``copy_verification_choice.base_scores`` does: the shipped search's global score.
The embedder's own ``pool`` (GeM p=3, L2-normalized: what the service reduces) gives the features.
``copy_features.load_or_build`` is not used: it embeds with the float network only and its cache is keyed by
the corpus alone. This script's caches are keyed by the variant's graph file (sha256) and the source of the
code that makes the views, so float and int8 never share an entry.

The ORB geometric check of the first hits is left out: it does not depend on the network, so it is the same
for both; the recall here is of the global score only (the served search's is higher).

The dynamic variant is measured for speed and for the cosine of its vectors with float's on a sample, but
not over the corpus when it is slower than float (it cannot pass the rule then, and it would take an hour).

Usage: nice -n 10 .venv/bin/python bench/int8_choice.py   (~30 min on the shared 2 cores the first time;
caches under /tmp/lookalike-int8-choice; ``--speed-only`` skips the corpus)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import copy_features  # noqa: E402
import copy_rerank_choice  # noqa: E402
import picture_corpus  # noqa: E402
from copy_retrieval_choice import split_of  # noqa: E402

import copy_edits  # noqa: E402
from lookalike.vectors.reduction import DATA_DIR, Reduction  # noqa: E402
from lookalike.vision import copy_views, subject, views  # noqa: E402
from lookalike.vision import efficientnet as enet  # noqa: E402
from lookalike.vision import embedder as embedder_module  # noqa: E402
from lookalike.vision.embedder import EfficientNetEmbedder, gem_pool, preprocess  # noqa: E402

CACHE = Path("/tmp/lookalike-int8-choice")
MODEL_CACHE = Path(os.environ.get("LOOKALIKE_MODEL_CACHE_DIR", "/tmp/lookalike-bench-cache"))
CALIBRATION = 200
THREADS = 2
BATCHES = (1, 16)
REPS = 3 if "--quick" in sys.argv else 9
IMAGES_PER_REP = 32  # images per timed repetition at every batch size
QUICK = "--quick" in sys.argv  # smoke run: a small corpus, results to /tmp
SOURCES, DISTRACTORS, SEED = (12, 200, 0) if QUICK else (200, 5000, 0)
PARTS = ("tune", "heldout")
TOLERANCE = 0.005
SHIPPED_REDUCTION = "reduction-pca256w-v2.npz"
FLOAT, DYNAMIC, STATIC = "float", "int8 dynamic", "int8 static QDQ"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False).stdout


# --------------------------------------------------------------------------------------------
# The graphs
# --------------------------------------------------------------------------------------------


def calibration_pictures() -> list[tuple[str, Image.Image]]:
    """A seeded sample of the training quarter (never source, distractor or overlay of the benchmark)."""
    pool = picture_corpus.training()
    return sorted(random.Random(14).sample(pool, min(CALIBRATION, len(pool))), key=lambda p: p[0])


class Calibration(CalibrationDataReader):
    def __init__(self, pictures: list[tuple[str, Image.Image]], batch: int = 16) -> None:
        images = [im for _, im in pictures]
        self.batches = iter([preprocess(images[i : i + batch]) for i in range(0, len(images), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {enet.INPUT_NAME: batch}


def build_graphs(pictures: list[tuple[str, Image.Image]]) -> dict[str, Path]:
    """variant -> ONNX file, built once per float graph and calibration set."""
    CACHE.mkdir(parents=True, exist_ok=True)
    shipped = enet.ensure_onnx_model(MODEL_CACHE)
    key = sha(shipped)
    prepared = CACHE / f"prepared-{key}.onnx"
    if not prepared.exists():
        quant_pre_process(str(shipped), str(prepared), skip_symbolic_shape=True)
    dynamic = CACHE / f"int8-dynamic-{key}.onnx"
    if not dynamic.exists():
        quantize_dynamic(str(prepared), str(dynamic), weight_type=QuantType.QInt8, per_channel=False)
    names = hashlib.sha256("\n".join(n for n, _ in pictures).encode()).hexdigest()[:8]
    static = CACHE / f"int8-qdq-{key}-{names}.onnx"
    if not static.exists():
        quantize_static(
            str(prepared),
            str(static),
            Calibration(pictures),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return {FLOAT: shipped, DYNAMIC: dynamic, STATIC: static}


class VariantEmbedder(EfficientNetEmbedder):
    """The shipped embedder with another graph, in a session with exactly the shipped session options."""

    def __init__(self, graph: Path, intra_op_threads: int = THREADS) -> None:
        super().__init__(MODEL_CACHE, intra_op_threads)
        self.graph = graph

    def _load(self) -> None:
        super()._load()  # the shipped graph and options
        assert self._session is not None and self.model_path is not None
        if self.graph != self.model_path:
            opts = self._session.get_session_options()
            self._session = ort.InferenceSession(
                str(self.graph), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            self.model_path = self.graph

    def options(self) -> dict[str, object]:
        self.load()
        assert self._session is not None
        o = self._session.get_session_options()
        return {
            "intra_op_num_threads": o.intra_op_num_threads,
            "inter_op_num_threads": o.inter_op_num_threads,
            "allow_spinning": o.get_session_config_entry("session.intra_op.allow_spinning"),
            "execution_mode": str(o.execution_mode),
            "graph_optimization_level": str(o.graph_optimization_level),
        }


def runnable(graphs: dict[str, Path], probe: np.ndarray) -> tuple[dict[str, VariantEmbedder], dict[str, str]]:
    """The variants ORT runs on this CPU (and the errors of those it does not)."""
    ok: dict[str, VariantEmbedder] = {}
    failed: dict[str, str] = {}
    for name, graph in graphs.items():
        try:
            e = VariantEmbedder(graph)
            e.forward(probe)
            ok[name] = e
        except Exception as error:
            failed[name] = repr(error)[:300]
    return ok, failed


# --------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------


def speed(embedders: dict[str, VariantEmbedder], inputs: np.ndarray) -> dict[str, dict[str, object]]:
    """variant -> batch -> images/s of the network alone (median and every repetition), the CPU time of
    the process per image (median; ORT's threads included: less sensitive to other jobs than wall time), and
    the median over repetitions of the ratio to float's images/s in the same repetition."""
    wall: dict[tuple[str, int], list[float]] = {(v, b): [] for v in embedders for b in BATCHES}
    cpu: dict[tuple[str, int], list[float]] = {(v, b): [] for v in embedders for b in BATCHES}
    for e in embedders.values():
        for b in BATCHES:
            e.forward(inputs[:b])  # warm-up
    for _ in range(REPS):
        for b in BATCHES:
            for v, e in embedders.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                for at in range(0, IMAGES_PER_REP, b):
                    e.forward(inputs[at % len(inputs) : at % len(inputs) + b])
                wall[v, b].append(IMAGES_PER_REP / (time.perf_counter() - start))
                cpu[v, b].append(1000 * (time.process_time() - start_cpu) / IMAGES_PER_REP)
    return {
        v: {
            f"batch {b}": {
                "images_per_s_median": round(float(np.median(wall[v, b])), 1),
                "cpu_ms_per_image_median": round(float(np.median(cpu[v, b])), 2),
                "images_per_s_ratio_to_float_median": round(
                    float(np.median(np.array(wall[v, b]) / np.array(wall[FLOAT, b]))), 2
                ),
                "images_per_s_reps": [round(x, 1) for x in wall[v, b]],
            }
            for b in BATCHES
        }
        for v in embedders
    }


# --------------------------------------------------------------------------------------------
# Copy benchmark
# --------------------------------------------------------------------------------------------

DB_VIEWS = copy_features.DB_VIEWS
QUERY_VIEWS = (*copy_features.QUERY_VIEWS, "inner", "strokes")
# The code whose output the feature caches hold (besides the graph, keyed by its own hash).
CODE = hashlib.sha256(
    "".join(
        inspect.getsource(m)
        for m in (copy_features, copy_edits, picture_corpus, subject, views, copy_views, embedder_module)
    ).encode()
    + inspect.getsource(copy_rerank_choice.inner).encode()
).hexdigest()[:10]


def embed_views(embedders: dict[str, VariantEmbedder], images: list[Image.Image]) -> dict[str, np.ndarray]:
    """variant -> (n, 1280) GeM features (not normalized) of the images; each batch preprocessed once."""
    out: dict[str, list[np.ndarray]] = {v: [] for v in embedders}
    for at in range(0, len(images), 32):
        batch = preprocess(images[at : at + 32])
        for v, e in embedders.items():
            maps, _ = e.forward(batch)
            out[v].append(gem_pool(maps, EfficientNetEmbedder.GEM_P))
    return {
        v: np.concatenate(f) if f else np.zeros((0, enet.FEATURE_CHANNELS), np.float32)
        for v, f in out.items()
    }


def cache_path(part: str, graph: Path) -> Path:
    return CACHE / f"{part}-{SOURCES}-{DISTRACTORS}-{SEED}-{sha(graph)}-{CODE}.npz"


def db_features(
    corpus: picture_corpus.Corpus, embedders: dict[str, VariantEmbedder]
) -> dict[str, dict[str, np.ndarray]]:
    """variant -> view -> (n_db, 1280): every indexed picture as uploaded, its stored views."""
    out: dict[str, dict[str, np.ndarray]] = {}
    todo = {}
    for v, e in embedders.items():
        path = cache_path("db", e.graph)
        if path.exists():
            z = np.load(path)
            out[v] = {view: z[view] for view in DB_VIEWS}
        else:
            todo[v] = e
    if todo:
        parts: dict[str, dict[str, list[np.ndarray]]] = {v: {w: [] for w in DB_VIEWS} for v in todo}
        pictures = [*corpus.sources, *corpus.distractors]
        for at in range(0, len(pictures), 64):
            made = [
                copy_features.views_of(copy_features.jpeg_roundtrip(im)) for _, im in pictures[at : at + 64]
            ]
            for view in DB_VIEWS:
                for v, f in embed_views(todo, [m[view] for m in made]).items():
                    parts[v][view].append(f)
            if at % 640 == 0:
                print(f"db {at}/{len(pictures)}", file=sys.stderr, flush=True)
        for v in todo:
            out[v] = {w: np.concatenate(parts[v][w]) for w in DB_VIEWS}
            np.savez(cache_path("db", todo[v].graph), **out[v])
    return out


def query_features(
    corpus: picture_corpus.Corpus, embedders: dict[str, VariantEmbedder]
) -> dict[str, dict[str, np.ndarray]]:
    """variant -> view -> (n_q, 1280), queries in source x family order; a copy view that does not fire
    (the inner rectangle) is a row of NaN."""
    out: dict[str, dict[str, np.ndarray]] = {}
    todo = {}
    for v, e in embedders.items():
        path = cache_path("queries", e.graph)
        if path.exists():
            z = np.load(path)
            out[v] = {view: z[view] for view in QUERY_VIEWS}
        else:
            todo[v] = e
    if todo:
        parts: dict[str, dict[str, list[np.ndarray]]] = {v: {w: [] for w in QUERY_VIEWS} for v in todo}
        for j, (name, image) in enumerate(corpus.sources):
            made = []
            for family in copy_edits.FAMILIES:
                # = copy_rerank_choice.query_images, one source at a time
                edited = copy_edits.edit(image, family, copy_features.query_seed(name, SEED), corpus.overlays)
                query = copy_features.jpeg_roundtrip(edited)
                made.append(
                    copy_features.views_of(query, copy_features.QUERY_VIEWS)
                    | {"inner": copy_rerank_choice.VIEWS["inner"](query)}
                    | {"strokes": copy_rerank_choice.VIEWS["strokes"](query)}
                )
            for view in QUERY_VIEWS:
                fired = [i for i, m in enumerate(made) if m[view] is not None]
                for v, f in embed_views(todo, [made[i][view] for i in fired]).items():
                    block = np.full((len(made), enet.FEATURE_CHANNELS), np.nan, np.float32)
                    block[fired] = f
                    parts[v][view].append(block)
            if j % 20 == 0:
                print(f"queries of source {j}/{len(corpus.sources)}", file=sys.stderr, flush=True)
        for v in todo:
            out[v] = {w: np.concatenate(parts[v][w]) for w in QUERY_VIEWS}
            np.savez(cache_path("queries", todo[v].graph), **out[v])
    return out


def global_scores(db: dict[str, np.ndarray], q: dict[str, np.ndarray], normalize: bool = True) -> np.ndarray:
    """(n_q, n_db): the shipped search's global score (copy_verification_choice.base_scores' recipe)."""
    reduction = Reduction.load(DATA_DIR / SHIPPED_REDUCTION)

    def prep(f: np.ndarray) -> np.ndarray:
        if not normalize:
            return f
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)

    names = [f"x{i}" for i in range(len(db["crop"]))]  # shipped_scores reads only db and queries
    features = copy_features.Features(
        names,
        {v: prep(db[v]) for v in DB_VIEWS},
        [],
        [],
        {v: prep(q[v]) for v in copy_features.QUERY_VIEWS},
    )
    s, scores = copy_rerank_choice.shipped_scores(features, reduction)
    for view, weight in (("inner", copy_views.INNER_WEIGHT), ("strokes", copy_views.STROKE_WEIGHT)):
        fired = ~np.isnan(q[view][:, 0])
        f = np.where(fired[:, None], q[view], 1.0)
        v = scores(prep(f), weight)
        v[~fired] = -np.inf
        s = np.maximum(s, v)
    return s


def recall(
    s: np.ndarray, truth: np.ndarray, split: np.ndarray, family: np.ndarray
) -> dict[str, dict[str, dict[str, float]]]:
    rank = (s > s[np.arange(len(s)), truth][:, None]).sum(1)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for part in PARTS:
        out[part] = {}
        for k in (1, 10):
            sel = split == part
            out[part][f"recall@{k}"] = {"overall": round(float((rank[sel] < k).mean()), 4)} | {
                f: round(float((rank[sel & (family == f)] < k).mean()), 4) for f in copy_edits.FAMILIES
            }
    return out


def cosines(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Cosine of the embedder's vectors (L2-normalized GeM) of the same pictures, over every view."""
    x = np.concatenate([a[v] for v in a])
    y = np.concatenate([b[v] for v in a])
    keep = ~np.isnan(x[:, 0])
    x, y = x[keep], y[keep]
    c = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return {"n": len(c), "mean": round(float(c.mean()), 5), "min": round(float(c.min()), 5)}


# --------------------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        platform.processor(),
    )
    flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
    }


def main() -> None:
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()
    commit = git("rev-parse", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", "src", "bench", "tests").split("\n")
    pictures = calibration_pictures()
    graphs = build_graphs(pictures)
    probe = preprocess([im for _, im in pictures[:IMAGES_PER_REP]])
    embedders, failed = runnable(graphs, probe[:2])
    for name, error in failed.items():
        print(f"{name}: ORT cannot run it here: {error}")
    options = embedders[FLOAT].options()
    print(f"session options (as served): {options}")

    rates = speed(embedders, probe)
    print(
        "\n| variant | batch | images/s (median) | CPU ms/image (median) | images/s ratio to float "
        "(median of repetitions) |\n|---|---|---|---|---|"
    )
    for v, r in rates.items():
        for b in BATCHES:
            x = r[f"batch {b}"]
            print(
                f"| {v} | {b} | {x['images_per_s_median']:.1f} | {x['cpu_ms_per_image_median']:.2f} "
                f"| {x['images_per_s_ratio_to_float_median']:.2f} |"
            )

    def faster(v: str) -> bool:
        """More images/s than float in most repetitions (paired: the same repetition) at batch 1 and 16."""
        return all(rates[v][f"batch {b}"]["images_per_s_ratio_to_float_median"] > 1.0 for b in BATCHES)  # type: ignore[operator]

    # The cosine to float's vectors on a sample: the benchmark's first 96 distractors, whole, as uploaded.
    corpus = picture_corpus.load(sources=SOURCES, distractors=DISTRACTORS, seed=SEED)
    sample = [copy_features.jpeg_roundtrip(im) for _, im in corpus.distractors[:96]]
    sample_f = embed_views(embedders, sample)
    sample_cos = {
        v: cosines({"whole": sample_f[FLOAT]}, {"whole": sample_f[v]}) for v in embedders if v != FLOAT
    }
    print(f"\ncosine to float on 96 distractors (whole picture): {sample_cos}")

    results: dict[str, dict[str, object]] = {v: {"speed": rates[v]} for v in embedders}
    for v in sample_cos:
        results[v]["cosine_to_float_sample"] = sample_cos[v]
    in_corpus = {v: e for v, e in embedders.items() if v == FLOAT or faster(v)}
    skipped = sorted(set(embedders) - set(in_corpus))
    for v in skipped:
        print(f"{v}: slower than float at batch 1 or 16, so not run over the corpus (it fails the rule)")

    queries_per_part: dict[str, int] = {}
    if "--speed-only" not in sys.argv:
        db = db_features(corpus, in_corpus)
        q = query_features(corpus, in_corpus)
        names = [n for n, _ in [*corpus.sources, *corpus.distractors]]
        index = {n: i for i, n in enumerate(names)}
        q_source = [n for n, _ in corpus.sources for _ in copy_edits.FAMILIES]
        family = np.array([f for _ in corpus.sources for f in copy_edits.FAMILIES])
        truth = np.array([index[s] for s in q_source])
        split = np.array([split_of(s) for s in q_source])
        queries_per_part = {p: int((split == p).sum()) for p in PARTS}
        for v in in_corpus:
            results[v]["copy"] = recall(global_scores(db[v], q[v]), truth, split, family)
            if v != FLOAT:
                results[v]["cosine_to_float"] = {
                    "db views": cosines(db[FLOAT], db[v]),
                    "query views": cosines(q[FLOAT], q[v]),
                }
        # Cross-checks of the float pass: the features as copy_features feeds them (GeM not normalized).
        unnormalized = recall(global_scores(db[FLOAT], q[FLOAT], normalize=False), truth, split, family)
        results[FLOAT]["copy_gem_not_normalized"] = unnormalized
        old = copy_features.CACHE / f"features-{SOURCES}-{DISTRACTORS}-{SEED}.npz"
        if old.exists():
            z = np.load(old)
            results[FLOAT]["max_abs_diff_to_copy_features_cache"] = {
                f"db_{w}": float(np.abs(z[f"db_{w}"] - db[FLOAT][w]).max()) for w in DB_VIEWS
            } | {f"q_{w}": float(np.abs(z[f"q_{w}"] - q[FLOAT][w]).max()) for w in copy_features.QUERY_VIEWS}

        print(
            "\n| variant | part | R@1 | R@10 | weakest 3 families R@1 | batch 1 img/s | batch 16 img/s "
            "| cosine to float mean / min |\n|---" + "|---" * 7 + "|"
        )
        for v in in_corpus:
            for part in PARTS:
                r1 = results[v]["copy"][part]["recall@1"]  # type: ignore[index]
                r10 = results[v]["copy"][part]["recall@10"]  # type: ignore[index]
                worst = sorted(copy_edits.FAMILIES, key=lambda f: (r1[f], f))[:3]
                c = results[v].get("cosine_to_float", {}).get("query views")  # type: ignore[union-attr]
                cos = f"{c['mean']:.4f} / {c['min']:.4f}" if c else "-"
                print(
                    f"| {v} | {part} | {r1['overall']:.4f} | {r10['overall']:.4f} | "
                    + ", ".join(f"{f} {r1[f]:.3f}" for f in worst)
                    + " | "
                    + " | ".join(f"{rates[v][f'batch {b}']['images_per_s_median']:.1f}" for b in BATCHES)
                    + f" | {cos} |"
                )
        print("\nrecall@1 by family (tune / held-out):")
        print("| family | " + " | ".join(in_corpus) + " |\n|---" + "|---" * len(in_corpus) + "|")
        for f in ["overall", *copy_edits.FAMILIES]:
            cells = [
                " / ".join(f"{results[v]['copy'][p]['recall@1'][f]:.3f}" for p in PARTS)  # type: ignore[index]
                for v in in_corpus
            ]
            print(f"| {f} | " + " | ".join(cells) + " |")

    decision: dict[str, object] = {}
    for v in embedders:
        if v == FLOAT:
            continue
        reasons = []
        if not faster(v):
            reasons.append("not faster than float at batch 1 and 16 (median paired images/s ratio)")
        if "copy" in results[v]:
            for part in PARTS:
                drop = (
                    results[FLOAT]["copy"][part]["recall@1"]["overall"]  # type: ignore[index]
                    - results[v]["copy"][part]["recall@1"]["overall"]  # type: ignore[index]
                )
                if drop > TOLERANCE:
                    reasons.append(f"{part} recall@1 {drop:.4f} below float (tolerance {TOLERANCE})")
        elif "--speed-only" in sys.argv:
            reasons.append("recall not measured (--speed-only)")
        decision[v] = {"worth_using": not reasons, "why_not": reasons}
    passing = [v for v, d in decision.items() if d["worth_using"]]  # type: ignore[index]
    verdict = (
        f"use {passing[0]}" if passing else "keep float: no int8 variant is within the tolerance and faster"
    )
    print(f"\ndecision: {verdict}")
    for v, d in decision.items():
        print(f"  {v}: {d}")

    out = Path("/tmp/int8_choice-quick.json") if QUICK else REPO / "bench" / "results" / "int8_choice.json"
    out.write_text(
        json.dumps(
            {
                "date": started,
                "issue": 14,
                "machine": machine(),
                "commit": commit,
                "uncommitted_changes_at_run": [ln for ln in dirty if ln],
                "load_average_1_5_15": {"start": load_start, "end": os.getloadavg()},
                "params": {
                    "session_options": options,
                    "batches": BATCHES,
                    "repetitions": REPS,
                    "images_per_repetition": IMAGES_PER_REP,
                    "speed_input": "the first 32 calibration pictures, preprocessed (network alone)",
                    "graphs": {v: {"file": p.name, "sha256_12": sha(p)} for v, p in graphs.items()},
                    "not_runnable": failed,
                    "quantization": {
                        DYNAMIC: "quantize_dynamic(weight_type=QInt8, per_channel=False) "
                        "after quant_pre_process",
                        STATIC: "quantize_static(QDQ, per_channel=True, activations QUInt8, weights QInt8, "
                        "MinMax) after quant_pre_process",
                    },
                    "calibration_pictures": {
                        "source": "picture_corpus.training(): the training quarter of Tux Paint stamps, Open "
                        "Clip Art, Oxygen icons and Noto emoji, never used by the copy benchmark; "
                        "random.Random(14).sample",
                        "n": len(pictures),
                        "by_kind": {
                            k: sum(1 for n, _ in pictures if n.startswith(k + ":"))
                            for k in ("stamp", "clipart", "icon", "emoji")
                        },
                        "names": [n for n, _ in pictures],
                    },
                    "corpus": corpus.description,
                    "queries_per_part": queries_per_part,
                    "scores": "global score only (shipped four views + inner rectangle + strokes copy views, "
                    f"{SHIPPED_REDUCTION}, stored views float16); no ORB check (identical for every variant)",
                    "not_over_the_corpus": skipped,
                    "tolerance_recall@1": TOLERANCE,
                    "feature_cache": str(CACHE),
                },
                "results": results,
                "decision": {"verdict": verdict, "variants": decision},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
