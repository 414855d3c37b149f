"""The learned text -> picture mapping of search by words: a shipped, versioned linear map.

``data/text-map-v1.npz`` holds ``A`` (384 x 256, float16): a sentence embedding ``t`` of all-MiniLM-L6-v2
becomes ``normalize(t @ A)``, a vector in the *stored* picture space (EfficientNet-Lite0 GeM features reduced
by the whitened PCA named in the file's ``image_space``), so a picture's text score is the cosine between that
vector and what the index already holds. Both encoders stay frozen; only ``A`` was fitted, LiT-style, by
``bench/fit_text_mapping.py`` on captioned pictures that Debian packages ship (the training quarter of
``bench/picture_corpus.py``): see that script and ``bench/results/text_mapping_fit.json`` for the data, the
method and its validation scores. The file also says how much the ImageNet class projection counts in the
fused query (``imagenet_weight``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

MAP_VERSION: Final = "text-map-v1"
MAP_FILE: Final = f"{MAP_VERSION}.npz"
DATA_DIR: Final = Path(__file__).parent / "data"
TEXT_DIM: Final = 384


class TextMappingMissing(RuntimeError):
    """The shipped mapping file is absent or is not the version this code reads."""


@dataclass(frozen=True, eq=False)
class TextMapping:
    matrix: F32  # (TEXT_DIM, stored dim)
    info: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.info["version"])

    @property
    def image_space(self) -> str:
        """The model id of the stored vectors the map points into (``VectorIndexes.model_id``)."""
        return str(self.info["image_space"])

    @property
    def imagenet_weight(self) -> float:
        """How much the ImageNet class projection counts in the fused query (0: the learned map alone)."""
        return float(self.info.get("imagenet_weight", 0.0))

    def apply(self, text_vectors: npt.ArrayLike) -> F32:
        """(n, 384) or (384,) sentence embeddings -> L2-normalized query vectors in the stored space."""
        t = np.asarray(text_vectors, dtype=np.float32)
        q = t @ self.matrix
        norm = np.linalg.norm(q, axis=-1, keepdims=True)
        return np.asarray(q / np.maximum(norm, 1e-12), dtype=np.float32)

    @classmethod
    def load(cls, path: Path | None = None) -> TextMapping:
        """The shipped map (``data/text-map-v1.npz``), or ``path``; raises TextMappingMissing when the file
        is absent or of another version."""
        path = path or DATA_DIR / MAP_FILE
        if not path.is_file():
            raise TextMappingMissing(
                f"the text mapping {path} is missing: it ships in the lookalike package "
                f"(lookalike/vision/data/{MAP_FILE}); reinstall the package or run bench/fit_text_mapping.py"
            )
        with np.load(path) as data:
            info = json.loads(str(data["info"]))
            matrix = np.asarray(data["matrix"], dtype=np.float32)
        if info.get("version") != MAP_VERSION:
            raise TextMappingMissing(f"{path} holds text mapping {info.get('version')!r}, not {MAP_VERSION}")
        if matrix.ndim != 2 or matrix.shape[0] != TEXT_DIM:
            raise TextMappingMissing(f"{path}: the matrix has shape {matrix.shape}, not ({TEXT_DIM}, n)")
        return cls(matrix, info)

    @staticmethod
    def save(path: Path, matrix: npt.ArrayLike, info: dict[str, Any]) -> None:
        np.savez_compressed(
            path, matrix=np.asarray(matrix, dtype=np.float16), info=np.array(json.dumps(info, sort_keys=True))
        )
