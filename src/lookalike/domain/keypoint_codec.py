"""How a picture's local features are stored (pure, no I/O).

A stored set is at most a few hundred ORB features of the picture scaled to a few hundred pixels: each a
position and a 256-bit binary descriptor. The position is kept to 1/16 pixel in two little-endian uint16,
so a feature costs 36 bytes (4 + 32) and 64 of them ~2.3 KB. Layout: the magic ``K1``, the count as
uint16, the positions (n, 2), then the descriptors (n, 32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAGIC = b"K1"
DESCRIPTOR_BYTES = 32
SUBPIXEL = 16  # positions are stored in 1/16 pixel
MAX_COORDINATE = (2**16 - 1) / SUBPIXEL  # 4095.9 px: stored pictures are scaled far below this
MAX_FEATURES = 2**16 - 1
_HEADER = len(MAGIC) + 2


@dataclass(frozen=True)
class Keypoints:
    """Local features of one picture: positions (n, 2) float32 in pixels, descriptors (n, 32) uint8."""

    points: npt.NDArray[np.float32]
    descriptors: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.points.shape[0])


def empty() -> Keypoints:
    return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


def encode(keypoints: Keypoints) -> bytes:
    """One set as stored bytes. Refuses positions outside [0, MAX_COORDINATE] and mismatched shapes."""
    points = np.asarray(keypoints.points, np.float64).reshape(-1, 2)
    descriptors = np.asarray(keypoints.descriptors)
    n = len(points)
    if descriptors.dtype != np.uint8 or descriptors.shape != (n, DESCRIPTOR_BYTES):
        raise ValueError(f"descriptors must be ({n}, {DESCRIPTOR_BYTES}) uint8, not {descriptors.shape}")
    if n > MAX_FEATURES:
        raise ValueError(f"at most {MAX_FEATURES} features are stored, not {n}")
    if not np.isfinite(points).all() or (points < 0).any() or (points > MAX_COORDINATE).any():
        raise ValueError(f"feature positions must be within [0, {MAX_COORDINATE}] pixels")
    fixed = np.round(points * SUBPIXEL).astype("<u2")
    return MAGIC + struct.pack("<H", n) + fixed.tobytes() + descriptors.tobytes()


def decode(blob: bytes) -> Keypoints:
    """Stored bytes back to a set; a malformed blob raises ValueError."""
    if len(blob) < _HEADER or blob[: len(MAGIC)] != MAGIC:
        raise ValueError("not a stored keypoint set")
    (n,) = struct.unpack_from("<H", blob, len(MAGIC))
    if len(blob) != _HEADER + n * (4 + DESCRIPTOR_BYTES):
        raise ValueError(f"a stored set of {n} features has {_HEADER + n * 36} bytes, not {len(blob)}")
    fixed = np.frombuffer(blob, "<u2", n * 2, _HEADER).reshape(n, 2)
    descriptors = np.frombuffer(blob, np.uint8, n * DESCRIPTOR_BYTES, _HEADER + n * 4).reshape(
        n, DESCRIPTOR_BYTES
    )
    return Keypoints(np.divide(fixed, SUBPIXEL, dtype=np.float32), descriptors.copy())
