"""The operator's limits on an uploaded picture: a setting read by configuration and enforced by decoding."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageLimits:
    """Operator-configurable limits on uploaded pictures (Alibaba defaults)."""

    max_bytes: int = 4 * 1024 * 1024  # largest accepted upload, in bytes
    min_side: int = 100  # shortest accepted side, in pixels
    max_side: int = 4096  # longest accepted side, in pixels
    max_pixels: int = 4096 * 4096  # most pixels (width x height) a picture may decode to
