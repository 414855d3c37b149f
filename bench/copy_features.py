"""Cached in-process features of the copy-detection corpus, for choosing the retrieval (issue 13).

The HTTP benchmark (``bench/copy_detection_bench.py``) says how the served product does; choosing among
retrieval variants needs many evaluations of the same pictures, so this module embeds the corpus once with
the service's own vision code (the same decode, subject crop, network and pooling) and caches, per picture:

* ``db``: every indexed picture (sources + distractors) as uploaded (JPEG q90), its views' 1280-d GeM
  features (``crop``: the subject crop the service stores; ``whole``: the whole picture);
* ``queries``: every source x edit family, the edited copy as uploaded (JPEG q90), the same views and
  ``c70`` / ``c50``: the central 70 % / 50 % of the whole picture (per side).

Everything is keyed by the corpus parameters and the seed; ``load_or_build`` rebuilds when they change.
"""

from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import picture_corpus  # noqa: E402

import copy_edits  # noqa: E402
from lookalike.vision.embedder import EfficientNetEmbedder, gem_pool, preprocess  # noqa: E402
from lookalike.vision.subject import detect_subjects  # noqa: E402
from lookalike.vision.views import centre  # noqa: E402

CACHE = Path("/tmp/lookalike-copy-features")


def jpeg_roundtrip(image: Image.Image, quality: int = 90) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def query_seed(name: str, seed: int) -> int:
    return seed * 1_000_003 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


@dataclass
class Features:
    db_names: list[str]
    db: dict[str, np.ndarray]  # view -> (n_db, 1280)
    q_source: list[str]
    q_family: list[str]
    queries: dict[str, np.ndarray]  # view -> (n_q, 1280)


def _embed(embedder: EfficientNetEmbedder, images: list[Image.Image]) -> np.ndarray:
    out = []
    for start in range(0, len(images), 32):
        maps, _ = embedder.forward(preprocess(images[start : start + 32]))
        out.append(gem_pool(maps, EfficientNetEmbedder.GEM_P))
    return np.concatenate(out) if out else np.zeros((0, 1280), np.float32)


DB_VIEWS = ("crop", "whole")
QUERY_VIEWS = ("crop", "whole", "c70", "c50")


def views_of(image: Image.Image, names: tuple[str, ...] = DB_VIEWS) -> dict[str, Image.Image]:
    box = detect_subjects(image)[0]
    every = {
        "crop": lambda: image.crop(box.as_pil_box()),
        "whole": lambda: image,
        "c70": lambda: centre(image, 0.7),
        "c50": lambda: centre(image, 0.5),
    }
    return {name: every[name]() for name in names}


def load_or_build(sources: int, distractors: int, seed: int = 0) -> tuple[Features, picture_corpus.Corpus]:
    corpus = picture_corpus.load(sources=sources, distractors=distractors, seed=seed)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"features-{sources}-{distractors}-{seed}.npz"
    embedder = EfficientNetEmbedder(Path("/tmp/lookalike-bench-cache"))
    if path.exists():
        z = np.load(path, allow_pickle=False)
        db_names = [str(n) for n in z["db_names"]]
        want = [n for n, _ in [*corpus.sources, *corpus.distractors]]
        if db_names == want:
            return (
                Features(
                    db_names,
                    {v: z[f"db_{v}"] for v in DB_VIEWS},
                    [str(s) for s in z["q_source"]],
                    [str(f) for f in z["q_family"]],
                    {v: z[f"q_{v}"] for v in QUERY_VIEWS},
                ),
                corpus,
            )
    db_names: list[str] = []
    db_views: dict[str, list[Image.Image]] = {v: [] for v in DB_VIEWS}
    db_feats: dict[str, list[np.ndarray]] = {v: [] for v in DB_VIEWS}

    def flush(views: dict[str, list[Image.Image]], feats: dict[str, list[np.ndarray]]) -> None:
        for view, images in views.items():
            if images:
                feats[view].append(_embed(embedder, images))
                images.clear()

    for i, (name, image) in enumerate([*corpus.sources, *corpus.distractors]):
        db_names.append(name)
        for view, im in views_of(jpeg_roundtrip(image)).items():
            db_views[view].append(im)
        if len(db_views["crop"]) >= 64:
            flush(db_views, db_feats)
        if i % 500 == 0:
            print(f"db {i}", file=sys.stderr)
    flush(db_views, db_feats)
    q_source: list[str] = []
    q_family: list[str] = []
    q_views: dict[str, list[Image.Image]] = {v: [] for v in QUERY_VIEWS}
    q_feats: dict[str, list[np.ndarray]] = {v: [] for v in QUERY_VIEWS}
    for j, (name, image) in enumerate(corpus.sources):
        for family in copy_edits.FAMILIES:
            edited = copy_edits.edit(image, family, query_seed(name, seed), corpus.overlays)
            q_source.append(name)
            q_family.append(family)
            for view, im in views_of(jpeg_roundtrip(edited), QUERY_VIEWS).items():
                q_views[view].append(im)
        if len(q_views["crop"]) >= 64:
            flush(q_views, q_feats)
        if j % 20 == 0:
            print(f"queries of source {j}", file=sys.stderr)
    flush(q_views, q_feats)
    feats = Features(
        db_names,
        {v: np.concatenate(db_feats[v]) for v in db_feats},
        q_source,
        q_family,
        {v: np.concatenate(q_feats[v]) for v in q_feats},
    )
    np.savez(
        path,
        db_names=np.array(db_names),
        q_source=np.array(q_source),
        q_family=np.array(q_family),
        **{f"db_{v}": a for v, a in feats.db.items()},
        **{f"q_{v}": a for v, a in feats.queries.items()},
    )
    return feats, corpus
