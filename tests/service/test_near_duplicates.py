"""Near-duplicates through the whole service: decode, subject crop, embed, index, hydrate.

Every edited copy (crop to 70%, JPEG quality 20, resize to 50%, grayscale, rotate 10°, border with
text) of every real photo must find its original at rank 1 among all the originals.
"""

from __future__ import annotations

import pytest

from conftest import Tenant
from lookalike.service.container import Services
from lookalike.service.images import SearchOptions
from photos import EDITS, encode, sample_photos


@pytest.mark.slow
def test_every_edit_finds_its_original_first(services: Services, tenant: Tenant) -> None:
    photos = sample_photos()
    assert len(photos) >= 15
    for name, image in photos.items():
        services.images.add_image(
            tenant.account,
            tenant.instance.name,
            product_id=name,
            pic_name=f"{name}.jpg",
            picture=encode(image),
        )
    misses: list[str] = []
    margins: list[float] = []
    for name, image in photos.items():
        for edit_name, edit in EDITS.items():
            query = encode(edit(image), "PNG")
            hits = services.images.search_by_pic(
                tenant.account, tenant.instance.name, query, SearchOptions(num=2)
            ).hits
            if hits[0].record.product_id != name:
                misses.append(f"{name}/{edit_name} -> {hits[0].record.product_id} ({hits[0].score:.3f})")
            else:
                margins.append(hits[0].score - hits[1].score)
    assert not misses, misses
    assert min(margins) > 0.0
