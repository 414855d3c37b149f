"""Two more search views for edited copies (issue 13): the picture pasted into another one, and the picture
under scribbles.

The four views of ``lookalike.vision.views`` find most copies; what they missed most on the tune part of the
copy benchmark (``bench/copy_rerank_choice.py``) were a picture pasted as a rectangle into another picture
(picture-in-picture: it sits anywhere, at 45-75 % of the width, so the central views cut it) and a picture
scribbled over with thick coloured strokes. Each gets one view:

* ``inner_rectangle``: the strongest axis-aligned rectangle of straight edges inside the picture, searched
  when all four of its sides are edges along at least ``INNER_MIN_EDGE_SHARE`` of their length (sides on
  the picture's border count as edges, at most two of them);
* ``without_strokes``: the picture at the network's input size with thin high-contrast strokes painted
  over: a pixel is a stroke (or next to one) where it differs by more than ``STROKE_STEP`` from a separable
  median filter ``STROKE_WIDTH`` pixels wide (which removes lines up to about 4 px wide at 224 px, and
  keeps broader shapes), and it takes the mean colour of the unmarked pixels around it.

Measured by ``bench/copy_rerank_choice.py`` (recall@1 among 5,000 distractors, tune / held-out part): the
rectangle lifts picture-in-picture 0.885 -> 0.952 / 0.917 -> 0.948, the painted-over view scribble
0.923 -> 0.962 / 0.896 -> 0.927; both together overall 0.982 -> 0.988 / 0.977 -> 0.982, and no family
loses a query. Finding them cost ~28 ms of CPU per query on one thread, ~8 ms since the median runs through
a selection network, the box sums through OpenCV and channel maxima pairwise (same pixels, issue 14); the
rectangle's embedding is added only where one is found, about a quarter of the queries. The weights
(``INNER_WEIGHT``, ``STROKE_WEIGHT``) and the rectangle's gate were chosen on the tune part: a view of part
of the query, or of a repainted query, is weaker evidence than the query itself.

Both are numpy and Pillow, with OpenCV's box filter for the window sums, and deterministic (OpenCV's own
median filter and inpainting did as well: one held-out scribble more).
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.domain.region import Box
from lookalike.vision.efficientnet import IMAGE_SIZE

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

# inner_rectangle: found on a copy INNER_WORK_SIDE pixels on its long side, where an edge is a change of at
# least INNER_EDGE_STEP (0-255, any channel) across two pixels.
INNER_WORK_SIDE: Final = 320
INNER_EDGE_STEP: Final = 40
INNER_CANDIDATES: Final = 8  # edge lines tried per direction, besides the picture's borders
INNER_MIN_SIDE_SHARE: Final = 0.25
INNER_AREA: Final = (0.08, 0.85)
INNER_MIN_EDGE_SHARE: Final = 0.7
INNER_WEIGHT: Final = 0.94
# without_strokes: on the network's input (the embedder squashes every view to IMAGE_SIZE square).
STROKE_WIDTH: Final = 9
STROKE_STEP: Final = 40
STROKE_WEIGHT: Final = 0.97


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _channel_max(a: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """The largest of the last axis's three channels (numpy's max over a 3-long last axis is ~10x slower)."""
    return np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])


def _edge_lines(edges: npt.NDArray[np.bool_], axis: int) -> list[int]:
    """Positions (along the other axis) of the lines holding the most edge pixels, at least 5 apart."""
    profile = edges.sum(axis).astype(np.float64)
    profile[0] = profile[-1] = 0.0
    lines: list[int] = []
    for _ in range(INNER_CANDIDATES):
        at = int(profile.argmax())
        if profile[at] <= 0:
            break
        lines.append(at)
        profile[max(0, at - 4) : at + 5] = 0.0
    return sorted({*lines, 0, len(profile) - 1})


def inner_rectangle(image: Image.Image) -> tuple[Box, float] | None:
    """The best inner rectangle of ``image`` in source pixels and the share of its sides that are edges
    (the smallest of the four), or None where no rectangle of the allowed size has edges on any side."""
    width, height = image.size
    scale = INNER_WORK_SIDE / max(width, height)
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    a = np.asarray(_rgb(image).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0), np.int16)
    vertical = np.zeros((h, w), bool)
    vertical[:, 1:-1] = _channel_max(np.abs(a[:, 2:] - a[:, :-2])) > INNER_EDGE_STEP
    horizontal = np.zeros((h, w), bool)
    horizontal[1:-1] = _channel_max(np.abs(a[2:] - a[:-2])) > INNER_EDGE_STEP
    # One pixel of slack across each line: a pasted border after resampling spans two.
    vertical[:, 1:] |= vertical[:, :-1].copy()
    vertical[:, :-1] |= vertical[:, 1:].copy()
    horizontal[1:] |= horizontal[:-1].copy()
    horizontal[:-1] |= horizontal[1:].copy()
    down = np.zeros((h + 1, w), np.int32)
    down[1:] = np.cumsum(vertical, 0)
    across = np.zeros((h, w + 1), np.int32)
    across[:, 1:] = np.cumsum(horizontal, 1)

    def spans(lines: list[int], side: int) -> npt.NDArray[np.int64]:
        pos = np.array(lines)
        lo, hi = np.meshgrid(pos, pos, indexing="ij")
        keep = (hi - lo) >= INNER_MIN_SIDE_SHARE * side
        return np.stack([lo[keep], hi[keep]], 1)

    xs = spans(_edge_lines(vertical, 0), w)
    ys = spans(_edge_lines(horizontal, 1), h)
    if not len(xs) or not len(ys):
        return None
    x0, x1 = xs[:, None, 0], xs[:, None, 1]
    y0, y1 = ys[None, :, 0], ys[None, :, 1]
    tall, wide = (y1 - y0).astype(np.float64), (x1 - x0).astype(np.float64)
    sides = [
        (x0 == 0, (down[y1, x0] - down[y0, x0]) / tall),
        (x1 == w - 1, (down[y1, x1] - down[y0, x1]) / tall),
        (y0 == 0, (across[y0, x1] - across[y0, x0]) / wide),
        (y1 == h - 1, (across[y1, x1] - across[y1, x0]) / wide),
    ]
    shape = (len(xs), len(ys))
    on_border = np.sum([np.broadcast_to(border, shape) for border, _ in sides], 0)
    share = np.min([np.where(border, 1.0, edge) for border, edge in sides], 0)
    area = wide * tall / (w * h)
    share = np.where((on_border <= 2) & (area >= INNER_AREA[0]) & (area <= INNER_AREA[1]), share, 0.0)
    i, j = np.unravel_index(int(np.argmax(share)), share.shape)
    best = float(share[i, j])
    if best <= 0:
        return None
    box = Box(
        round(int(xs[i, 0]) / scale),
        min(width, round((int(xs[i, 1]) + 1) / scale)),
        round(int(ys[j, 0]) / scale),
        min(height, round((int(ys[j, 1]) + 1) / scale)),
    )
    return box, best


def _grow(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``mask`` grown by one pixel each way (a 3 x 3 dilation)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    wide = out.copy()
    out[:, 1:] |= wide[:, :-1]
    out[:, :-1] |= wide[:, 1:]
    return out


# Paeth's median-of-9 selection network: 19 compare-exchanges of whole arrays, exact for any values (checked
# against numpy's median in tests/test_copy_views.py) and ~10x faster than partitioning a stacked window.
_MEDIAN_OF_9: Final = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip


def _median(a: UInt8Array, size: int, axis: int) -> UInt8Array:
    """The median over a centred window of ``size`` (odd) along ``axis`` (0 or 1; edges replicated)."""
    half = size // 2
    pad = [(0, 0)] * a.ndim
    pad[axis] = (half, half)
    padded = np.pad(a, pad, mode="edge")
    n = a.shape[axis]
    shifted = [padded[s : s + n] if axis == 0 else padded[:, s : s + n] for s in range(size)]
    if size == 9:
        for i, j in _MEDIAN_OF_9:
            shifted[i], shifted[j] = np.minimum(shifted[i], shifted[j]), np.maximum(shifted[i], shifted[j])
        return shifted[4]
    out: UInt8Array = np.partition(np.stack(shifted, -1), half, -1)[..., half]
    return out


def _box_sum(a: FloatArray, radius: int) -> FloatArray:
    """The sum over a (2 radius + 1) square window around each pixel (cut at the edges). Exact here: the
    inputs are whole numbers whose sums stay below float32's 2**24."""
    side = 2 * radius + 1
    out = cv2.boxFilter(a, cv2.CV_32F, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return np.asarray(out, np.float32)


def without_strokes(image: Image.Image) -> Image.Image:
    """``image`` at the network's input size with thin high-contrast strokes painted over (see the module
    docstring); unchanged pixels where there are none."""
    a = np.asarray(_rgb(image).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR, reducing_gap=3.0))
    smooth = _median(_median(a, STROKE_WIDTH, 1), STROKE_WIDTH, 0)
    marked = _channel_max(np.abs(a.astype(np.int16) - smooth)) > STROKE_STEP
    stroke = _grow(marked)
    if not stroke.any():
        return Image.fromarray(a)
    keep = (~stroke).astype(np.float32)
    f = a.astype(np.float32)
    filled = f.copy()
    todo = stroke.copy()
    for radius in (3, 6, 12, 24):
        weight = _box_sum(keep, radius)
        total = _box_sum(f * keep[..., None], radius)
        ready = todo & (weight > 0.5)
        filled[ready] = total[ready] / weight[ready][:, None]
        todo &= ~ready
        if not todo.any():
            break
    filled[todo] = smooth[todo]
    return Image.fromarray(np.clip(filled + 0.5, 0, 255).astype(np.uint8))


def copy_views(image: Image.Image) -> list[tuple[Image.Image, float]]:
    """The extra search views of ``image`` with what each one's cosine counts for."""
    views: list[tuple[Image.Image, float]] = []
    found = inner_rectangle(image)
    if found is not None and found[1] >= INNER_MIN_EDGE_SHARE:
        views.append((image.crop(found[0].as_pil_box()), INNER_WEIGHT))
    views.append((without_strokes(image), STROKE_WEIGHT))
    return views
