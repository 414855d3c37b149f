"""Choose the part of a decoded picture that gets embedded (Region / Crop semantics)."""

from __future__ import annotations

import math
from typing import TypeGuard

from PIL import Image

from lookalike.domain.image_limits import ImageLimits
from lookalike.domain.region import Box, parse_region, whole_image
from lookalike.vision.decode import DecodedImage, decode_image
from lookalike.vision.subject import detect_subjects


def region_given(region: str | None) -> TypeGuard[str]:
    """Whether a Region was given: a blank one counts as none (form clients may send "Region=")."""
    return region is not None and bool(region.strip())


def decode_and_prepare(
    data: bytes, limits: ImageLimits, region: str | None, crop: bool
) -> tuple[DecodedImage, Image.Image, Box, list[Box]]:
    """``decode_image`` then ``prepare_for_embedding``, as adds and searches do: the decode is reduced
    unless a Region is given (it is in the picture's own pixels and may be small, so it is cut from the
    full decode)."""
    decoded = decode_image(data, limits, reduced=not region_given(region))
    return (decoded, *prepare_for_embedding(decoded, region, crop))


def prepare_for_embedding(
    decoded: DecodedImage, region: str | None, crop: bool
) -> tuple[Image.Image, Box, list[Box]]:
    """Return (image to embed, box actually used, MultiRegion boxes).

    A Region (in oriented source pixels) overrides Crop; it is validated here and
    raises InvalidRegion. A blank Region counts as none (form clients may send
    "Region="). With Crop the main detected subject is used; otherwise the whole
    picture. Subjects are still detected when a Region is given, so the
    response can list MultiRegion; with neither, no detection runs and MultiRegion
    is just the whole picture. Boxes are in the picture's pixels also when a reduced
    decode scaled its image down; the returned image is the decoded one itself when
    the box is the whole picture.
    """
    width, height = decoded.width, decoded.height
    if region_given(region):
        box = parse_region(region, width, height)
        subjects = _in_picture_pixels(decoded, detect_subjects(decoded.image))
    elif crop:
        subjects = _in_picture_pixels(decoded, detect_subjects(decoded.image))
        box = subjects[0]
    else:
        box = whole_image(width, height)
        subjects = [box]
    if box == whole_image(width, height):
        return decoded.image, box, subjects
    return decoded.image.crop(_in_image_pixels(decoded, box).as_pil_box()), box, subjects


def _in_picture_pixels(decoded: DecodedImage, boxes: list[Box]) -> list[Box]:
    """Boxes found on a (possibly reduced) decoded image, in the picture's own pixels."""
    sx, sy = decoded.scale_x, decoded.scale_y
    if sx == 1.0 and sy == 1.0:
        return boxes
    return [
        Box(
            min(decoded.width, round(b.x1 / sx)),
            min(decoded.width, round(b.x2 / sx)),
            min(decoded.height, round(b.y1 / sy)),
            min(decoded.height, round(b.y2 / sy)),
        )
        for b in boxes
    ]


def _in_image_pixels(decoded: DecodedImage, box: Box) -> Box:
    """A box in the picture's pixels, on the (possibly reduced) decoded image (never empty)."""
    sx, sy = decoded.scale_x, decoded.scale_y
    if sx == 1.0 and sy == 1.0:
        return box
    image_w, image_h = decoded.image.size
    x1, y1 = min(image_w - 1, int(box.x1 * sx)), min(image_h - 1, int(box.y1 * sy))
    x2 = max(x1 + 1, min(image_w, math.ceil(box.x2 * sx)))
    y2 = max(y1 + 1, min(image_h, math.ceil(box.y2 * sy)))
    return Box(x1, x2, y1, y2)
