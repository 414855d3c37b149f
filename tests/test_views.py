"""The views a picture is stored and searched by (lookalike.vision.views)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from lookalike.domain.region import Box, whole_image
from lookalike.vision.views import CENTRE_SHARES, CENTRE_WEIGHTS, centre, search_views, stored_views


@given(st.integers(2, 3000), st.integers(2, 3000), st.sampled_from(CENTRE_SHARES))
def test_centre_keeps_the_middle_share_of_each_side(width: int, height: int, share: float) -> None:
    image = Image.new("RGB", (width, height))
    middle = centre(image, share)
    assert abs(middle.width - width * share) <= 1.0 and abs(middle.height - height * share) <= 1.0
    assert middle.width >= 1 and middle.height >= 1


def test_a_picture_stores_its_whole_view_only_when_the_primary_is_a_part_of_it() -> None:
    image = Image.new("RGB", (300, 200), (200, 10, 10))
    assert stored_views(image, image, whole_image(300, 200)) == [image]
    part = image.crop((10, 20, 110, 120))
    assert stored_views(image, part, Box(10, 110, 20, 120)) == [part, image]


def test_a_search_looks_at_the_primary_the_whole_and_the_centre_unless_a_region_is_given() -> None:
    image = Image.new("RGB", (400, 300))
    part = image.crop((0, 0, 200, 150))
    box = Box(0, 200, 0, 150)
    views = search_views(image, part, box, region_given=False)
    assert views[0] == (part, 1.0) and views[1] == (image, 1.0)
    sizes = [(280, 210), (200, 150)]
    assert [(v.size, w) for v, w in views[2:]] == list(zip(sizes, CENTRE_WEIGHTS, strict=True))
    assert search_views(image, part, box, region_given=True) == [(part, 1.0)]
    whole = search_views(image, image, whole_image(400, 300), region_given=False)
    assert whole[0] == (image, 1.0) and len(whole) == 1 + len(CENTRE_SHARES)
