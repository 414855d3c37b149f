"""Model-level near-duplicate retrieval: every edited copy of a shipped photo finds its original.

The same photos and edits as the service-level test (tests/photos.py), embedded directly, so a
regression in the model or the pooled feature shows up apart from cropping, storage and the index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
