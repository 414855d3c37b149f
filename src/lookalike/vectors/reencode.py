"""Re-encode stored pictures into the current vector space at start-up, from what is stored.

The reduction is part of the stored vectors' model id, so

* rows whose model id is the bare source model (written before the reduction existed: 1280-d float32)
  are reduced (``reencode_raw_features``); vector indexes of that format reopen empty and rebuild;
* rows of the reduction the current one replaces (``Reduction.previous``: same model, same dim) are
  carried over by its migration matrix (``migrate_previous_reduction``). The dim does not change, so
  the indexes are dropped first, before any row moves: a crash in between leaves rows to migrate, and
  the next start drops them again; an index never mixes the two spaces once rebuilt from SQL.

Both run in bounded chunks, are idempotent and safe with several replicas starting at once: a row is
rewritten only while it still carries the old id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

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


def migrate_previous_reduction(
    images: ImageRepository, reduction: Reduction, drop_indexes: Callable[[], None]
) -> int:
    """Carry rows of ``reduction.previous`` into ``reduction``; returns how many pictures moved.

    ``drop_indexes`` forgets every stored vector index (they rebuild from SQL when next opened); it is
    called once, before the first row changes, and only when there is something to migrate.
    """
    old_id = reduction.previous_model_id()
    if old_id is None or not images.embeddings_of_model(old_id, -1, 1):
        return 0
    drop_indexes()
    stored = vector_codec.STORED_DTYPE.itemsize * reduction.dim_out
    done = 0
    after = -1
    while True:
        rows = images.embeddings_of_model(old_id, after, CHUNK)
        if not rows:
            break
        after = rows[-1][0]
        usable = [(i, b) for i, b in rows if len(b) == stored]
        if len(usable) != len(rows):
            log.warning(
                "%d stored vectors of %s have an unexpected size; left as they are",
                len(rows) - len(usable),
                old_id,
            )
        if not usable:
            continue
        moved = reduction.migrate(vector_codec.decode_many([b for _, b in usable], reduction.dim_out))
        images.replace_embeddings(
            old_id,
            reduction.model_id(),
            [(i, vector_codec.encode(v)) for (i, _), v in zip(usable, moved, strict=True)],
        )
        done += len(usable)
    log.info("migrated %d stored vectors from %s into %s", done, old_id, reduction.model_id())
    return done
