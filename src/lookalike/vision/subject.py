"""Subject detection for Crop=true: where in the picture is the thing to search for.

v1 is classical and conservative, because a crop that cuts off part of the
subject hurts recall more than a loose crop hurts precision:

1. Trim a uniform background border (catalogue shots on white/grey). The
   background colour is estimated from the border pixels and compared with a
   tolerance that absorbs JPEG noise.
2. If there was no such border (gradient backdrops, scenes), look for a clearly
   concentrated mass of edge energy: the heaviest connected blob of strong edges,
   accepted only when little edge energy lies outside it, with a margin, and
   never below MIN_SALIENT_FRACTION of the side. Otherwise the whole picture
   stands. Saliency is not run inside a trimmed box: there the background already
   bounds the subject, and saliency would only pick out a detail of it.

Everything runs on a copy at most WORK_SIDE pixels on a side and is mapped back to
source pixels. It is deterministic: same pixels, same box.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.domain.region import MIN_REGION_SIDE, Box, whole_image

FloatArray = npt.NDArray[np.float32]

WORK_SIDE: Final = 256
# Per-channel difference from the background colour still counted as background
# (0-255 scale, after the box-filter downscale has averaged most JPEG noise away).
BACKGROUND_TOLERANCE: Final = 24.0
# Share of border pixels that must match the background colour to call it uniform.
UNIFORM_BORDER_SHARE: Final = 0.6
# A row/column holds content when more than this share of its pixels differ.
CONTENT_LINE_SHARE: Final = 0.008
# A trimmed box side is never below this share of the image side (a lone speck of
# dust on a blank picture must not become the subject).
MIN_TRIM_FRACTION: Final = 0.35
# The saliency step never shrinks a side below this share of the picture's side.
MIN_SALIENT_FRACTION: Final = 0.4
# Saliency pixels at or above this share of the peak form the candidate blob.
SALIENT_THRESHOLD: Final = 0.3
# Use the saliency box only if it covers at most MAX_SALIENT_AREA of the
# picture, holds at least MIN_SALIENT_MASS of all saliency, and what lies
# outside it is on average at most MAX_OUTSIDE_RATIO as salient as what is inside.
MAX_SALIENT_AREA: Final = 0.6
MIN_SALIENT_MASS: Final = 0.6
MAX_OUTSIDE_RATIO: Final = 0.15
SALIENT_MARGIN: Final = 0.08


def detect_subject(image: Image.Image) -> Box:
    """The main subject's box in source pixels (the whole image when unsure)."""
    return detect_subjects(image)[0]


def detect_subjects(image: Image.Image) -> list[Box]:
    """All detected subjects, most important first; v1 finds exactly one."""
    width, height = image.size
    if width < 2 or height < 2:
        return [whole_image(width, height)]
    small = _downscale(image)
    sx, sy = width / small.shape[1], height / small.shape[0]

    tx1, tx2, ty1, ty2 = _trim_uniform_border(small)
    trimmed = (tx1, tx2, ty1, ty2) != (0, small.shape[1], 0, small.shape[0])
    # After a trim the content is bounded by real background: that box is the
    # subject, and saliency inside it would only find a detail of the subject.
    box = None if trimmed else _salient_box(small)
    if box is not None:
        tx1, tx2, ty1, ty2 = box

    # Map back outwards (floor/ceil) so downscaling never cuts the subject.
    src = Box(
        max(0, math.floor(tx1 * sx)),
        min(width, math.ceil(tx2 * sx)),
        max(0, math.floor(ty1 * sy)),
        min(height, math.ceil(ty2 * sy)),
    )
    return [_ensure_min_side(src, width, height)]


def _downscale(image: Image.Image) -> FloatArray:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    factor = math.ceil(max(w, h) / WORK_SIDE)
    if factor > 1:
        # Integer block averaging: several times faster than resize(), and it smooths JPEG noise.
        rgb = rgb.reduce(factor)
    return np.asarray(rgb, dtype=np.float32)


def _border_pixels(arr: FloatArray, thickness: int) -> FloatArray:
    t = max(1, min(thickness, arr.shape[0] // 4, arr.shape[1] // 4))
    parts = [arr[:t].reshape(-1, 3), arr[-t:].reshape(-1, 3)]
    parts += [arr[t:-t, :t].reshape(-1, 3), arr[t:-t, -t:].reshape(-1, 3)]
    return np.concatenate(parts)


def _trim_uniform_border(arr: FloatArray) -> tuple[int, int, int, int]:
    """(x1, x2, y1, y2) in work pixels of the content inside a uniform border."""
    h, w = arr.shape[:2]
    full = (0, w, 0, h)
    if h < 8 or w < 8:
        return full
    border = _border_pixels(arr, 2)
    background = np.median(border, axis=0)
    border_dist = np.abs(border - background).max(axis=1)
    if float((border_dist <= BACKGROUND_TOLERANCE).mean()) < UNIFORM_BORDER_SHARE:
        return full  # textured or busy edges: a photo, not a catalogue shot
    # Widen the tolerance for noisy-but-uniform backgrounds (e.g. grainy paper), judged
    # on the border pixels that are background (the subject may touch the edge).
    background_noise = border_dist[border_dist <= BACKGROUND_TOLERANCE]
    tolerance = max(BACKGROUND_TOLERANCE, 3.0 * float(np.percentile(background_noise, 90)))
    content = np.abs(arr - background).max(axis=2) > tolerance
    rows = np.flatnonzero(content.sum(axis=1) > max(1.0, CONTENT_LINE_SHARE * w))
    cols = np.flatnonzero(content.sum(axis=0) > max(1.0, CONTENT_LINE_SHARE * h))
    if rows.size == 0 or cols.size == 0:
        return full  # nothing but background: keep the picture as it is
    # One work pixel of slack covers the box filter blending edge pixels into the background.
    x1, x2 = max(0, int(cols[0]) - 1), min(w, int(cols[-1]) + 2)
    y1, y2 = max(0, int(rows[0]) - 1), min(h, int(rows[-1]) + 2)
    x1, x2 = _widen(x1, x2, math.ceil(MIN_TRIM_FRACTION * w), w)
    y1, y2 = _widen(y1, y2, math.ceil(MIN_TRIM_FRACTION * h), h)
    return x1, x2, y1, y2


def _box_blur(img: FloatArray, radius: int) -> FloatArray:
    """Separable mean filter via cumulative sums (edge-padded), O(pixels)."""
    if radius < 1:
        return img
    k = 2 * radius + 1
    padded = np.pad(img, radius, mode="edge")
    c = np.cumsum(padded, axis=0, dtype=np.float64)
    c = np.concatenate([np.zeros((1, c.shape[1])), c])
    rows = (c[k:] - c[:-k]) / k
    c = np.cumsum(rows, axis=1)
    c = np.concatenate([np.zeros((c.shape[0], 1)), c], axis=1)
    return ((c[:, k:] - c[:, :-k]) / k).astype(np.float32)


def _normalise(x: FloatArray) -> FloatArray:
    """Subtract the median as a floor (the typical background level), scale to [0, 1]."""
    floor, top = (float(v) for v in np.percentile(x, [50, 99]))
    out: FloatArray = np.zeros(x.shape, dtype=np.float32)
    if top - floor > 1e-6:
        out = np.clip((x - floor) / (top - floor), 0.0, 1.0).astype(np.float32)
    return out


def _saliency(arr: FloatArray) -> FloatArray:
    """Local edge energy above the picture's typical level.

    Colour contrast against the border adds nothing here: where the border is
    uniform the trim step already did that job, and where it is not (gradients,
    scenes) contrast against it only lights up the background.
    """
    lum = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lum = _box_blur(lum, 1)
    gy, gx = np.gradient(lum)
    return _normalise(_box_blur(np.hypot(gx, gy).astype(np.float32), 3))


def _largest_blob(mask: npt.NDArray[np.bool_], weight: npt.NDArray[np.float64]) -> tuple[int, int, int, int]:
    """(x1, x2, y1, y2) of the 8-connected component of mask with the most weight.

    Labels spread by repeated neighbourhood minimum, vectorised; on a map of at
    most 128 x 128 that converges in a few milliseconds without needing SciPy.
    """
    h, w = mask.shape
    big = h * w
    labels = np.where(mask, np.arange(big, dtype=np.int64).reshape(h, w), big)
    while True:
        padded = np.pad(labels, 1, constant_values=big)
        best = labels
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                best = np.minimum(best, padded[dy : dy + h, dx : dx + w])
        best = np.where(mask, best, big)
        # Pointer jumping: adopt the label of the pixel your label names, halving chains.
        flat = best.ravel()
        inside = flat < big
        flat[inside] = np.minimum(flat[inside], flat[flat[inside]])
        if np.array_equal(best, labels):
            break
        labels = best
    ids = labels[mask]
    uniq, inverse = np.unique(ids, return_inverse=True)
    masses = np.bincount(inverse, weights=weight[mask])
    ys, xs = np.nonzero(labels == uniq[int(np.argmax(masses))])
    return int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1


def _salient_box(arr: FloatArray) -> tuple[int, int, int, int] | None:
    """A tighter (x1, x2, y1, y2) inside arr, or None when the saliency is not clearly concentrated."""
    h, w = arr.shape[:2]
    if h < 32 or w < 32:
        return None
    full_h, full_w = h, w
    # Saliency is coarse by nature: half resolution is plenty and four times cheaper.
    step = 2 if min(h, w) >= 64 else 1
    if step == 2:
        hh, ww = h // 2 * 2, w // 2 * 2
        a = arr[:hh, :ww]
        arr = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) * np.float32(0.25)
    sal = _saliency(arr).astype(np.float64)
    h, w = sal.shape
    total = float(sal.sum())
    if total <= 1e-6:
        return None
    # The salient blob: the heaviest connected group of strong pixels.
    strong = sal >= SALIENT_THRESHOLD * float(sal.max())
    x1, x2, y1, y2 = _largest_blob(strong, sal)
    mx = max(1, round(SALIENT_MARGIN * (x2 - x1)))
    my = max(1, round(SALIENT_MARGIN * (y2 - y1)))
    x1, x2 = _widen(max(0, x1 - mx), min(w, x2 + mx), math.ceil(MIN_SALIENT_FRACTION * w), w)
    y1, y2 = _widen(max(0, y1 - my), min(h, y2 + my), math.ceil(MIN_SALIENT_FRACTION * h), h)
    area = (x2 - x1) * (y2 - y1)
    if area > MAX_SALIENT_AREA * w * h:
        return None  # hardly smaller: cropping would only risk cutting the subject
    inside = float(sal[y1:y2, x1:x2].sum())
    inside_mean = inside / area
    outside_mean = (total - inside) / max(1, w * h - area)
    if inside / total < MIN_SALIENT_MASS or outside_mean > MAX_OUTSIDE_RATIO * inside_mean:
        return None  # salient things elsewhere too: not sure which is the subject
    # An edge of the half-size map is the edge of the full one (odd sizes drop a line).
    x2 = full_w if x2 == w else x2 * step
    y2 = full_h if y2 == h else y2 * step
    return x1 * step, x2, y1 * step, y2


def _widen(lo: int, hi: int, min_len: int, limit: int) -> tuple[int, int]:
    """Grow [lo, hi) symmetrically to at least min_len, shifted to stay inside [0, limit)."""
    min_len = min(min_len, limit)
    if hi - lo >= min_len:
        return lo, hi
    extra = min_len - (hi - lo)
    lo -= extra // 2
    hi += extra - extra // 2
    if lo < 0:
        hi, lo = hi - lo, 0
    if hi > limit:
        lo, hi = lo - (hi - limit), limit
    return max(0, lo), hi


def _ensure_min_side(box: Box, width: int, height: int) -> Box:
    """Keep the box a valid Region (sides of at least MIN_REGION_SIDE where the image allows)."""
    x1, x2 = _widen(box.x1, box.x2, MIN_REGION_SIDE, width)
    y1, y2 = _widen(box.y1, box.y2, MIN_REGION_SIDE, height)
    return Box(x1, x2, y1, y2)
