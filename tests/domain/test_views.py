"""The views a picture is stored and searched by (lookalike.vision.views)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from lookalike.vision.copy_views import (
    INNER_MIN_EDGE_SHARE,
    INNER_WEIGHT,
    STROKE_WEIGHT,
    copy_views,
    inner_rectangle,
    without_strokes,
)
from lookalike.vision.efficientnet import IMAGE_SIZE
from lookalike.vision.views import CENTRE_SHARES, CENTRE_WEIGHTS, centre, search_views, stored_views


@given(st.integers(2, 3000), st.integers(2, 3000), st.sampled_from(CENTRE_SHARES))
def test_centre_keeps_the_middle_share_of_each_side(width: int, height: int, share: float) -> None:
    image = Image.new("RGB", (width, height))
    middle = centre(image, share)
    assert abs(middle.width - width * share) <= 1.0 and abs(middle.height - height * share) <= 1.0
    assert middle.width >= 1 and middle.height >= 1


def test_a_picture_stores_its_whole_view_only_when_the_primary_is_a_part_of_it() -> None:
    image = Image.new("RGB", (300, 200), (200, 10, 10))
    assert stored_views(image, image) == [image]
    part = image.crop((10, 20, 110, 120))
    assert stored_views(image, part) == [part, image]


def test_a_search_looks_at_the_primary_the_whole_and_the_centre_unless_a_region_is_given() -> None:
    image = Image.new("RGB", (400, 300))
    part = image.crop((0, 0, 200, 150))
    views = search_views(image, part, region_given=False)
    assert views[0] == (part, 1.0) and views[1] == (image, 1.0)
    sizes = [(280, 210), (200, 150)]
    assert [(v.size, w) for v, w in views[2:4]] == list(zip(sizes, CENTRE_WEIGHTS, strict=True))
    # A blank picture has no inner rectangle: the copy views add only the painted-over one.
    assert [(v.size, w) for v, w in views[4:]] == [((IMAGE_SIZE, IMAGE_SIZE), STROKE_WEIGHT)]
    assert search_views(image, part, region_given=True) == [(part, 1.0)]
    whole = search_views(image, image, region_given=False)
    assert whole[0] == (image, 1.0) and len(whole) == 1 + len(CENTRE_SHARES) + 1


def test_a_picture_pasted_into_another_is_searched_by_its_rectangle() -> None:
    y, x = np.mgrid[0:120, 0:160]
    inner = Image.fromarray(np.stack([x * 1.5, y * 2.0, 255 - x], -1).clip(0, 255).astype(np.uint8))
    ImageDraw.Draw(inner).ellipse((40, 30, 100, 90), fill=(250, 240, 30))  # a smooth photo-like picture
    outer = Image.new("RGB", (400, 300), (255, 255, 255))
    outer.paste(inner, (200, 40))
    found = inner_rectangle(outer)
    assert found is not None and found[1] >= INNER_MIN_EDGE_SHARE
    box = found[0]
    assert (
        abs(box.x1 - 200) <= 3 and abs(box.x2 - 360) <= 3 and abs(box.y1 - 40) <= 3 and abs(box.y2 - 160) <= 3
    )
    views = copy_views(outer)
    assert views[0][1] == INNER_WEIGHT and abs(views[0][0].width - 160) <= 4


def test_thin_strokes_are_painted_over_and_broad_shapes_kept() -> None:
    image = Image.new("RGB", (224, 224), (90, 120, 150))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 120, 120), fill=(240, 200, 40))  # broad: part of the picture
    draw.line([(0, 200), (223, 150)], fill=(255, 0, 255), width=3)  # a scribble
    out = np.asarray(without_strokes(image)).astype(int)
    assert np.abs(out[70, 70] - (240, 200, 40)).max() <= 2
    assert np.abs(out[175, 112] - (90, 120, 150)).max() <= 30


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from([0, 1]),
    st.sampled_from([3, 9, 5]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([2, 256]),
)
@settings(deadline=None)  # numpy's median of a stacked window is slow on a loaded machine
def test_the_window_median_is_numpys_median(
    height: int, width: int, axis: int, size: int, seed: int, levels: int
) -> None:
    """The 9-wide median runs through a selection network (fast); it must equal the plain median."""
    from lookalike.vision.copy_views import _median

    a = np.random.default_rng(seed).integers(0, levels, (height, width, 3), dtype=np.uint8)
    half = size // 2
    pad = [(0, 0)] * 3
    pad[axis] = (half, half)
    padded = np.pad(a, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=axis)
    assert np.array_equal(_median(a, size, axis), np.median(windows, -1).astype(np.uint8))
