"""Picture regions in the Alibaba order "x1,x2,y1,y2" (both x values first)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lookalike.domain.errors import INVALID_REGION, LookalikeError

_REGION_RE = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")

# A region smaller than this on a side carries too little for an embedding.
MIN_REGION_SIDE = 10


@dataclass(frozen=True)
class Box:
    """Pixel box; x2/y2 are exclusive, so width = x2 - x1."""

    x1: int
    x2: int
    y1: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def to_str(self) -> str:
        return f"{self.x1},{self.x2},{self.y1},{self.y2}"

    def as_pil_box(self) -> tuple[int, int, int, int]:
        return (self.x1, self.y1, self.x2, self.y2)


def whole_image(width: int, height: int) -> Box:
    return Box(0, width, 0, height)


def parse_region(text: str, width: int, height: int) -> Box:
    """Parse and validate a Region against the (oriented) source image size."""
    match = _REGION_RE.match(text)
    if not match:
        raise LookalikeError(INVALID_REGION, f'Region must be "x1,x2,y1,y2" in pixels, got {text[:64]!r}.')
    x1, x2, y1, y2 = (int(g) for g in match.groups())
    if not (x1 < x2 and y1 < y2):
        raise LookalikeError(INVALID_REGION, "Region needs x1 < x2 and y1 < y2.")
    if x2 > width or y2 > height:
        raise LookalikeError(
            INVALID_REGION, f"Region {text.strip()} lies outside the {width}x{height} image."
        )
    if x2 - x1 < MIN_REGION_SIDE or y2 - y1 < MIN_REGION_SIDE:
        raise LookalikeError(INVALID_REGION, f"Region sides must be at least {MIN_REGION_SIDE} pixels.")
    return Box(x1, x2, y1, y2)
