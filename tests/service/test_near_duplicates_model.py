"""Model-level near-duplicate retrieval: every edited copy of a shipped photo finds its original.

The same photos and edits as the service-level test (tests/photos.py), embedded directly, so a
regression in the model or the pooled feature shows up apart from cropping, storage and the index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.domain.vector_codec import to_stored
from lookalike.vectors.reduction import packaged
from lookalike.vision.embedder import EfficientNetEmbedder
from photos import EDITS, PHOTO_NAMES, sample_photos


@pytest.fixture(scope="module")
def originals() -> list[Image.Image]:
    return list(sample_photos().values())


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> EfficientNetEmbedder:
    return EfficientNetEmbedder(Path(tmp_path_factory.mktemp("models")), intra_op_threads=2)


@pytest.fixture(scope="module")
def original_vectors(embedder: EfficientNetEmbedder, originals: list[Image.Image]) -> np.ndarray:
    return embedder.embed(originals).vectors


def test_enough_originals(originals: list[Image.Image]) -> None:
    assert len(originals) >= 15


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_copy_finds_its_original(
    edit: str,
    embedder: EfficientNetEmbedder,
    originals: list[Image.Image],
    original_vectors: np.ndarray,
) -> None:
    queries = embedder.embed([EDITS[edit](im) for im in originals]).vectors
    sims = queries @ original_vectors.T
    ranks = sims.argmax(axis=1)
    names = list(PHOTO_NAMES)
    misses = [names[i] for i in np.flatnonzero(ranks != np.arange(len(originals)))]
    assert not misses, f"{edit}: wrong top-1 for {misses}"
    # The true match should also be clearly similar, not merely the least dissimilar.
    assert float(np.diag(sims).min()) > 0.4


def _stored(features: np.ndarray) -> np.ndarray:
    """What the service searches with: the packaged reduction, stored as float16."""
    return to_stored(packaged().reduce(features)).astype(np.float32)


def _recall_at_1(queries: np.ndarray, database: np.ndarray) -> float:
    return float(np.mean((queries @ database.T).argmax(axis=1) == np.arange(len(queries))))


def test_compact_vectors_keep_copy_recall(
    embedder: EfficientNetEmbedder, originals: list[Image.Image], original_vectors: np.ndarray
) -> None:
    """Over every edit, recall@1 of the stored (reduced, float16) vectors is within 0.005 of float32."""
    per_edit = [embedder.embed([EDITS[e](im) for im in originals]).vectors for e in EDITS]
    raw = float(np.mean([_recall_at_1(q, original_vectors) for q in per_edit]))
    compact_db = _stored(original_vectors)
    compact = float(np.mean([_recall_at_1(_stored(q), compact_db) for q in per_edit]))
    assert compact >= raw - 0.005, f"compact recall@1 {compact:.4f} vs float32 {raw:.4f}"
