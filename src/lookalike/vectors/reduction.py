"""The fixed linear reduction from the model's features to the stored vector space.

``r = normalize(P @ (x - mean))``: PCA (optionally whitened) fitted once per model on a generic sample by
``bench/fit_reduction.py`` and shipped as ``data/reduction-*.npz``; the measured choice is recorded in
``bench/results/reduction_choice.json``. Its id is part of the stored vectors' model id, so a different
reduction never mixes with vectors made by this one. Pure arithmetic once loaded.

A reduction may say how vectors of the one before it are carried over without their pixels
(``previous`` and ``migration``): ``pca256w-v2`` is ``pca256-v1`` followed by a whitening ``W`` inside the
same 256-d space, so ``v2 = normalize(W @ v1)`` (``bench/fit_whitening.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_FILE = "reduction-pca256w-v2.npz"


@dataclass(frozen=True, eq=False)
class Reduction:
    id: str
    source_model: str
    mean: F32  # (dim_in,)
    projection: F32  # (dim_out, dim_in), whitening folded in
    previous: str | None = None  # the reduction whose stored vectors `migrate` carries over
    migration: F32 | None = None  # (dim_out, dim_out): previous space -> this one, before normalizing

    @property
    def dim_in(self) -> int:
        return int(self.projection.shape[1])

    @property
    def dim_out(self) -> int:
        return int(self.projection.shape[0])

    def model_id(self) -> str:
        """The id of vectors in the reduced space: the source model's id and this reduction's."""
        return f"{self.source_model}+{self.id}"

    def reduce(self, features: npt.ArrayLike) -> F32:
        """(n, dim_in) or (dim_in,) features -> L2-normalized (n, dim_out) or (dim_out,) vectors."""
        x = np.asarray(features, dtype=np.float32)
        single = x.ndim == 1
        x = x.reshape(1, -1) if single else x
        if x.shape[1] != self.dim_in:
            raise ValueError(f"features must have {self.dim_in} dims, not {x.shape[1]}")
        r = np.asarray((x - self.mean) @ self.projection.T, dtype=np.float32)
        norms = np.linalg.norm(r, axis=1, keepdims=True)
        out: F32 = np.asarray(r / np.maximum(norms, 1e-12), dtype=np.float32)
        return out[0] if single else out

    def previous_model_id(self) -> str | None:
        """The model id of vectors that ``migrate`` carries over (None: this reduction migrates nothing)."""
        return f"{self.source_model}+{self.previous}" if self.previous else None

    def migrate(self, previous_vectors: npt.ArrayLike) -> F32:
        """(n, dim_out) vectors of the previous reduction -> the same pictures' L2-normalized vectors here."""
        if self.migration is None:
            raise ValueError(f"reduction {self.id} migrates no earlier vectors")
        v = np.asarray(previous_vectors, dtype=np.float32).reshape(-1, self.dim_out)
        r = v @ self.migration.T
        norms = np.linalg.norm(r, axis=1, keepdims=True)
        return np.asarray(r / np.maximum(norms, 1e-12), dtype=np.float32)

    @classmethod
    def load(cls, path: Path) -> Reduction:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            mean = np.ascontiguousarray(z["mean"], dtype=np.float32)
            projection = np.ascontiguousarray(z["projection"], dtype=np.float32)
            migration = (
                np.ascontiguousarray(z["migration"], dtype=np.float32) if "migration" in z.files else None
            )
        if mean.shape != (projection.shape[1],):
            raise ValueError(f"{path}: mean and projection disagree")
        previous = info.get("migrates_from")
        if (previous is None) != (migration is None) or (
            migration is not None and migration.shape != (projection.shape[0], projection.shape[0])
        ):
            raise ValueError(f"{path}: migrates_from and the migration matrix disagree")
        return cls(
            str(info["id"]),
            str(info["source_model"]),
            mean,
            projection,
            str(previous) if previous else None,
            migration,
        )


@lru_cache(maxsize=4)
def packaged(name: str = DEFAULT_FILE) -> Reduction:
    """The reduction shipped in the package (loaded once per process)."""
    return Reduction.load(DATA_DIR / name)
