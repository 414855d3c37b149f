"""Text -> image search (Alibaba's SearchImageByText), offline.

The query text is turned into a vector in the *stored* picture space (the reduced, whitened vectors the
index holds) by :class:`lookalike.vision.text_encoder.TextQueryModel`: the sentence model's embedding
(all-MiniLM-L6-v2) goes through two routes, fused half and half — the learned map shipped as
``lookalike/vision/data/text-map-v1.npz`` (a 384 x 256 matrix fitted LiT-style on captioned pictures from
Debian packages by ``bench/fit_text_mapping.py``) and the projection through the image network's 1000
ImageNet classes and classifier head. The vector is searched through
:meth:`ImageService.search_by_vector` (``reduced=True``): the same gate (ownership, instance state, search
QPS), paging, filter, ScoreThreshold and DistinctProductId handling as the picture searches.

The query's content words (lookalike.domain.words) are also matched against what the tenant wrote
about each picture — ProductId, PicName, CustomContent — through the database's full-text index
(SQLite FTS5, PostgreSQL tsvector/GIN): "red sneaker" finds ``red-sneaker_front.jpg``.

Score: the larger of (a) the cosine between the query vector and the picture's stored vectors (the best of
its two stored views), clipped to [0, 1] as for picture search — well below a copy's score even for a
relevant picture — and (b) the share of the query's content words that the picture's texts hold (1.0 when
all of them). So a picture named by every word of the query comes first, and a ScoreThreshold tuned for
picture search keeps only such pictures.

Measured by ``bench/text_search_eval.py`` on 1,488 pictures the map never saw: see ``bench/README.md``
("Text search — learned mapping") for top-1/top-5 of everyday prompts and of prompts that name PicName
words. The sentence model is English-only: Chinese queries run, but what they find is close to chance;
Chinese *words* in PicName/CustomContent match through the word match.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account, SearchResult
from lookalike.domain.words import query_words
from lookalike.service.images import ImageService, SearchOptions
from lookalike.vision.text_encoder import TEXT_MODEL_INSTALL, TextModelMissing, TextQueryModel
from lookalike.vision.text_mapping import TextMappingMissing

INVALID_TEXT: Final = "InvalidText"
INVALID_TEXT_LENGTH: Final = "InvalidTextLength"
MAX_TEXT_LENGTH: Final = 512


def validate_text(text: str | None) -> str:
    """Text is required, at most 512 characters, and must contain something besides whitespace."""
    if text is None or not text.strip():
        raise LookalikeError(INVALID_TEXT, "The specified parameter Text is not valid: it is empty.")
    if len(text) > MAX_TEXT_LENGTH:
        raise LookalikeError(
            INVALID_TEXT_LENGTH,
            f"Invalid text clause: Text has {len(text)} characters, the maximum is {MAX_TEXT_LENGTH}.",
        )
    return text.strip()


class TextSearchService:
    def __init__(self, images: ImageService, model: TextQueryModel) -> None:
        self._images = images
        self._model = model
        self._checked = False
        self._lock = threading.Lock()

    @property
    def model(self) -> TextQueryModel:
        return self._model

    def _ensure_compatible(self) -> None:
        if self._checked:
            return
        with self._lock:
            try:
                space = self._model.stored_model_id
            except TextMappingMissing as exc:
                raise LookalikeError(
                    e.INTERNAL_ERROR, f"Search by text is broken on this server: {exc}"
                ) from exc
            if self._images.model_id != space:
                raise LookalikeError(
                    e.INTERNAL_ERROR,
                    f"Text search maps text into {space} vectors, "
                    f"but this service stores {self._images.model_id}.",
                )
            self._checked = True

    def search(
        self, account: Account, instance_name: str, text: str | None, options: SearchOptions | None = None
    ) -> SearchResult:
        """Hits for ``text``; ``search_time_ms`` includes embedding the text. No PicInfo."""
        started = time.perf_counter()
        query = validate_text(text)
        self._ensure_compatible()
        try:
            vector = self._model.search_vector(query)
        except TextModelMissing as exc:
            # The operator's install, not the client's request: a 503 that says what to install.
            raise LookalikeError(
                e.TEXT_SEARCH_UNAVAILABLE,
                "Search by text is not available on this server: its operator must run "
                f"`{TEXT_MODEL_INSTALL}`.",
            ) from exc
        result = self._images.search_by_vector(
            account,
            instance_name,
            vector,
            options or SearchOptions(),
            words=query_words(query),
            reduced=True,
        )
        elapsed = round((time.perf_counter() - started) * 1000)
        return SearchResult(result.hits, result.matched, elapsed)
