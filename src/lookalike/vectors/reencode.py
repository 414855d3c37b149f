"""Re-encode stored pictures made by the model's raw features into the reduced space, at start-up.

The reduction is part of the stored vectors' model id, so rows whose model id is the bare source model
(written before the reduction existed: 1280-d float32) are reduced from what is stored, in bounded
chunks. Idempotent and safe with several replicas starting at once: a row is rewritten only while it
still carries the old id. Vector indexes of the old format reopen empty and rebuild from these rows.
"""

from __future__ import annotations

import logging

import numpy as np

from lookalike.domain import vector_codec
from lookalike.storage.images_repo import ImageRepository
from lookalike.vectors.reduction import Reduction

log = logging.getLogger(__name__)

CHUNK = 2_000


def reencode_raw_features(images: ImageRepository, reduction: Reduction) -> int:
    """Reduce every stored raw-feature vector; returns how many pictures were re-encoded."""
    raw_bytes = reduction.dim_in * 4
    done = 0
    after = -1
    while True:
        rows = images.embeddings_of_model(reduction.source_model, after, CHUNK)
        if not rows:
            break
        after = rows[-1][0]
        usable = [(i, b) for i, b in rows if len(b) == raw_bytes]
        if len(usable) != len(rows):
            log.warning(
                "%d stored vectors of %s have an unexpected size; left as they are",
                len(rows) - len(usable),
                reduction.source_model,
            )
        if not usable:
            continue
        features = np.stack([np.frombuffer(b, dtype="<f4") for _, b in usable])
        reduced = reduction.reduce(features)
        images.replace_embeddings(
            reduction.source_model,
            reduction.model_id(),
            [(i, vector_codec.encode(v)) for (i, _), v in zip(usable, reduced, strict=True)],
        )
        done += len(usable)
    if done:
        log.info("re-encoded %d stored vectors into %s", done, reduction.model_id())
    return done
