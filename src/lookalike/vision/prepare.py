"""Choose the part of a decoded picture that gets embedded (Region / Crop semantics)."""

from __future__ import annotations

from PIL import Image

from lookalike.domain.region import Box, parse_region, whole_image
from lookalike.vision.decode import DecodedImage
from lookalike.vision.subject import detect_subjects


def prepare_for_embedding(
    decoded: DecodedImage, region: str | None, crop: bool
) -> tuple[Image.Image, Box, list[Box]]:
    """Return (image to embed, box actually used, MultiRegion boxes).

    A Region (in oriented source pixels) overrides Crop; it is validated here and
    raises InvalidRegion. A blank Region counts as none (form clients may send
    "Region="). With Crop the main detected subject is used; otherwise the whole
    picture. Subjects are still detected when a Region is given, so the
    response can list MultiRegion; with neither, no detection runs and MultiRegion
    is just the whole picture.
    """
    width, height = decoded.width, decoded.height
    if region is not None and region.strip():
        box = parse_region(region, width, height)
        subjects = detect_subjects(decoded.image)
    elif crop:
        subjects = detect_subjects(decoded.image)
        box = subjects[0]
    else:
        box = whole_image(width, height)
        subjects = [box]
    if box == whole_image(width, height):
        return decoded.image, box, subjects
    return decoded.image.crop(box.as_pil_box()), box, subjects
