"""The views of a picture that are embedded: one stored per picture (two when they differ), several searched.

A copy is often not the picture itself but the picture inside something (a frame, a banner, a screenshot,
another photo) or a part of it (a crop), and which part the subject detector picks can differ between a
picture and its copy. So a picture is described by more than one view, chosen by
``bench/copy_features.py`` + ``bench/copy_detection_bench.py`` on the tune part of the copy benchmark:

* stored: the *primary* view (the Region, else the subject crop, else the whole picture), which goes into
  the vector index, and the whole picture when the primary is a crop of it (kept in SQL, read when a
  search re-scores its shortlist: it costs no index memory);
* searched: the primary view, the whole picture, and the central 70 % and 50 % of the whole picture (per
  side): a picture pasted into another one, or shown in a screenshot, usually sits near the middle; then
  ``lookalike.vision.copy_views``: the inner rectangle of the picture when it has one (a picture pasted
  anywhere into another), and the picture with thin strokes painted over (scribbles). A Region given by
  the caller is searched alone: the caller said what to look for. The primary and whole views are
  searched first (``first_search_views``); the others (``more_search_views``) only when those found no
  verified copy (lookalike.service.images: ``COPY_FOUND_MATCHES``, ``bench/search_cascade_choice.py``).

A hit's score is the best cosine over (searched views x stored views), a central view's cosine counted at
``CENTRE_WEIGHTS`` (0.97, 0.94), a copy view's at its own weight (0.94, 0.97): a part of the query that
matches is weaker evidence than the whole of it, and without it a centre crop of a photo found the photo's
own left half first (tests/test_alibaba_actions).
The same picture scores 1.0.
"""

from __future__ import annotations

from typing import Final

from PIL import Image

from lookalike.vision.copy_views import copy_views

# Shares of each side kept by the central search views, and what their cosines count for (chosen on the
# tune part: recall@1 0.9847 unweighted, 0.9853 weighted; held-out 0.9767 -> 0.9779).
CENTRE_SHARES: Final = (0.7, 0.5)
CENTRE_WEIGHTS: Final = (0.97, 0.94)


def centre(image: Image.Image, share: float) -> Image.Image:
    """The central ``share`` of each side of ``image``."""
    width, height = image.size
    dx, dy = round(width * (1 - share) / 2), round(height * (1 - share) / 2)
    return image.crop((dx, dy, width - dx, height - dy))


def stored_views(image: Image.Image, primary: Image.Image) -> list[Image.Image]:
    """What an added picture stores: the primary view, then the whole picture if the primary is a part of
    it (lookalike.vision.prepare hands over the decoded image itself when the box is the whole picture)."""
    if primary is image:
        return [primary]
    return [primary, image]


def first_search_views(
    image: Image.Image, primary: Image.Image, *, region_given: bool
) -> list[tuple[Image.Image, float]]:
    """What a search by picture looks for first, with what each view's cosine counts for: the primary view
    and the whole picture (a given Region alone). A search that finds a verified copy with these stops
    (lookalike.service.images: ``COPY_FOUND_MATCHES``)."""
    if region_given:
        return [(primary, 1.0)]
    return [(view, 1.0) for view in stored_views(image, primary)]


def more_search_views(image: Image.Image, *, region_given: bool) -> list[tuple[Image.Image, float]]:
    """The views a search adds when the first ones found no verified copy: the central crops and the copy
    views (none for a given Region)."""
    if region_given:
        return []
    views = [
        (centre(image, share), weight) for share, weight in zip(CENTRE_SHARES, CENTRE_WEIGHTS, strict=True)
    ]
    views.extend(copy_views(image))
    return views


def search_views(
    image: Image.Image, primary: Image.Image, *, region_given: bool
) -> list[tuple[Image.Image, float]]:
    """Every view a search by picture may look for, with what each view's cosine counts for, the primary
    view first (see the module docstring)."""
    return first_search_views(image, primary, region_given=region_given) + more_search_views(
        image, region_given=region_given
    )
