"""The copy-detection benchmark in small, as a floor that fails when recall drops (issue 13).

The same corpus, edits and split as ``bench/copy_detection_bench.py`` (sources among distractors from
installed Debian packages: ``bench/picture_corpus.py``), through the image service with the real model,
index and SQL, at CI's size: 40 sources x 17 edit families among 400 distractors. The floors sit below what
this size measured when they were set (see ``FLOORS``), so noise does not fail it and a real regression
does. Skipped, saying why, where the picture packages are not installed (``scripts/test-servers``
installs them).
"""

from __future__ import annotations

import io
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from conftest import Tenant
from lookalike.service.container import Services
from lookalike.service.images import SearchOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import picture_corpus
from copy_features import query_seed

import copy_edits

SOURCES, DISTRACTORS = 40, 400
# Measured at this size when set (2026-12-07, with the local-feature check of the first hits): overall
# recall@1 0.999, every family >= 0.975 (scribble; 40 queries a family, so one miss is 0.025). Before the
# check it was 0.991 (pip 0.95); before the multi-view search and the whitened space ~0.92.
FLOORS = {"overall": 0.985, "family": 0.925}


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus() -> picture_corpus.Corpus:
    found = picture_corpus.load(sources=SOURCES, distractors=DISTRACTORS)
    if len(found.sources) < SOURCES or len(found.distractors) < DISTRACTORS:
        pytest.skip("the copy corpus's Debian picture packages are not installed (scripts/test-servers)")
    return found


@pytest.mark.slow
def test_edited_copies_find_their_source_first(
    services: Services, tenant: Tenant, corpus: picture_corpus.Corpus
) -> None:
    ids: dict[str, str] = {}
    for i, (name, image) in enumerate([*corpus.sources, *corpus.distractors]):
        ids[name] = f"pic-{i}"
        services.images.add_image(
            tenant.account, "shop", product_id=ids[name], pic_name="p", picture=jpeg(image)
        )
    hits: dict[str, list[bool]] = defaultdict(list)
    for name, image in corpus.sources:
        for family in copy_edits.FAMILIES:
            edited = copy_edits.edit(image, family, query_seed(name, 0), corpus.overlays)
            result = services.images.search_by_pic(tenant.account, "shop", jpeg(edited), SearchOptions(num=1))
            hits[family].append(bool(result.hits) and result.hits[0].record.product_id == ids[name])
    recall = {family: sum(h) / len(h) for family, h in hits.items()}
    overall = sum(sum(h) for h in hits.values()) / sum(len(h) for h in hits.values())
    print(f"copy detection floor: overall recall@1 {overall:.3f}; per family {recall}")
    assert overall >= FLOORS["overall"], recall
    weak = {f: r for f, r in recall.items() if r < FLOORS["family"]}
    assert not weak, f"families under {FLOORS['family']}: {weak}"
