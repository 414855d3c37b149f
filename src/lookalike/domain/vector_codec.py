"""How a reduced vector is stored: little-endian float16, D values, no header (pure, no I/O).

float16 keeps ~3 significant digits: a unit vector's self inner product stays within ~1e-3 of 1.0,
and the exact re-rank of a shortlist over float16 copies orders neighbours as float32 does (measured in
bench/capacity_bench.py). 256-d costs 512 bytes a picture, a tenth of the 1280-d float32 it replaces.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F16 = npt.NDArray[np.float16]

STORED_DTYPE = np.dtype("<f2")
_F16_MAX = 65504.0


def encode(vector: npt.ArrayLike) -> bytes:
    """One vector as stored bytes. Refuses non-finite values and values float16 cannot hold."""
    arr = np.asarray(vector, dtype=np.float32).reshape(-1)
    if not np.isfinite(arr).all() or (np.abs(arr) > _F16_MAX).any():
        raise ValueError("a stored vector must be finite and within float16 range")
    return arr.astype(STORED_DTYPE).tobytes()


def decode(blob: bytes, dim: int) -> F32:
    """Stored bytes back to a float32 vector of length ``dim``."""
    if len(blob) != dim * STORED_DTYPE.itemsize:
        raise ValueError(f"a stored vector of {dim} dims has {dim * 2} bytes, not {len(blob)}")
    return np.frombuffer(blob, dtype=STORED_DTYPE).astype(np.float32)


def decode_many(blobs: list[bytes], dim: int) -> F32:
    """Several stored vectors as one (n, dim) float32 matrix."""
    out = np.empty((len(blobs), dim), np.float32)
    for i, blob in enumerate(blobs):
        out[i] = decode(blob, dim)
    return out


def to_stored(vectors: npt.ArrayLike) -> F16:
    """(n, dim) float32 -> the stored float16 form (for files that hold many vectors)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if not np.isfinite(arr).all() or (np.abs(arr) > _F16_MAX).any():
        raise ValueError("stored vectors must be finite and within float16 range")
    return arr.astype(STORED_DTYPE)
