"""The geometric check of a search's first hits (issue 13): the stored local features' encoding, the score
it gives, the features themselves on real photos, and the service storing, using and deleting them."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from sqlalchemy import func, select

from conftest import Tenant, grant_instance, make_tenant
from lookalike.clock import ManualClock
from lookalike.domain import keypoint_codec as codec
from lookalike.domain.copy_score import INLIER_CAP, PEER_MIN, PEER_SHARE, peer_matches, verified_score
from lookalike.service.container import Services
from lookalike.service.images import SearchOptions
from lookalike.storage.images_repo import ImageRepository
from lookalike.storage.tables import keypoints
from lookalike.vision.keypoints import STORED_FEATURES, inliers, query_keypoints, stored_keypoints
from photos import encode, load_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, where copy_edits.py lives
import copy_edits

# --- the stored encoding (pure) ---

counts = st.integers(0, 300)


@st.composite
def keypoint_sets(draw: st.DrawFn) -> codec.Keypoints:
    n = draw(counts)
    points = draw(arrays(np.float32, (n, 2), elements=st.floats(0, 4000, width=32)))
    descriptors = draw(arrays(np.uint8, (n, codec.DESCRIPTOR_BYTES)))
    return codec.Keypoints(points, descriptors)


@given(keypoint_sets())
def test_a_stored_set_round_trips_to_a_sixteenth_of_a_pixel(kp: codec.Keypoints) -> None:
    blob = codec.encode(kp)
    assert len(blob) == 4 + 36 * len(kp)
    back = codec.decode(blob)
    assert np.array_equal(back.descriptors, kp.descriptors)
    assert np.abs(back.points - kp.points).max(initial=0) <= 1 / 32 + 1e-3


@given(keypoint_sets(), st.integers(0, 40))
def test_a_cut_or_padded_blob_is_refused(kp: codec.Keypoints, cut: int) -> None:
    blob = codec.encode(kp)
    for bad in (blob[: max(0, len(blob) - 1 - cut)], blob + b"\0" * (cut + 1), b"XX" + blob[2:]):
        with pytest.raises(ValueError):
            codec.decode(bad)


@pytest.mark.parametrize("x", [-0.5, 4096.0, float("nan"), float("inf")])
def test_a_position_outside_the_stored_range_is_refused(x: float) -> None:
    points = np.array([[x, 1.0]], np.float32)
    with pytest.raises(ValueError):
        codec.encode(codec.Keypoints(points, np.zeros((1, 32), np.uint8)))


def test_descriptors_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError):
        codec.encode(codec.Keypoints(np.zeros((2, 2), np.float32), np.zeros((2, 16), np.uint8)))


# --- the score (pure) ---


@given(st.floats(0, 1), st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_check_only_raises_a_score_monotonically_and_never_past_one(score: float, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert score <= verified_score(score, low) <= verified_score(score, high) <= 1.0
    assert verified_score(score, 0) == score
    assert verified_score(score, INLIER_CAP) == verified_score(score, INLIER_CAP + b)
    assert verified_score(1.0, a) == 1.0


@given(st.lists(st.integers(0, 500), max_size=30))
def test_hits_with_comparable_matches_count_alike_and_none_loses_any(counts: list[int]) -> None:
    peers = peer_matches(counts)
    assert len(peers) == len(counts)
    best = max(counts, default=0)
    for c, p in zip(counts, peers, strict=True):
        assert c <= p <= best
        assert (p == best) == (c == best or (c >= PEER_MIN and c >= PEER_SHARE * best))
    # More matches never count for less.
    for a_count, a_peer in zip(counts, peers, strict=True):
        for b_count, b_peer in zip(counts, peers, strict=True):
            if a_count > b_count:
                assert a_peer >= b_peer


def test_a_whole_photo_and_its_half_both_verified_are_peers() -> None:
    assert peer_matches([42, 30, 3]) == [42, 42, 3]
    assert peer_matches([20, 11, 9]) == [20, 20, 9]  # 9 is below PEER_MIN
    assert peer_matches([60, 25]) == [60, 25]  # below half of the best: not a peer


# --- the features on real photos ---


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_an_edited_copy_shares_more_features_than_any_unrelated_photo(name: str) -> None:
    source = load_photo(name)
    stored = stored_keypoints(source)
    assert 0 < len(stored) <= STORED_FEATURES
    for family in ("scribble", "rotate", "crop", "banner"):
        copy = query_keypoints(copy_edits.edit(source, family, 5))
        found = inliers(copy, stored)
        assert found >= 12, family
        assert found == inliers(copy, stored)  # the same request, the same count
    for other in ("coffee", "chelsea", "rocket", "brick", "camera", "horse"):
        if other != name:
            assert inliers(query_keypoints(load_photo(other)), stored) < 10, other


def test_blank_and_tiny_pictures_have_no_features_and_match_nothing() -> None:
    blank = Image.new("RGB", (300, 200), (120, 120, 120))
    assert len(stored_keypoints(blank)) == 0
    assert inliers(query_keypoints(blank), stored_keypoints(load_photo("coffee"))) == 0
    tiny = Image.new("RGB", (3, 2), (1, 2, 3))
    assert inliers(query_keypoints(tiny), stored_keypoints(tiny)) == 0


# --- the service ---


def stored_sets(services: Services, instance_id: str) -> int:
    with services.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(keypoints).where(keypoints.c.instance_id == instance_id)
            ).scalar_one()
        )


def add_photos(services: Services, tenant: Tenant, names: tuple[str, ...], instance: str = "shop") -> None:
    for name in names:
        services.images.add_image(
            tenant.account, instance, product_id=name, pic_name="p", picture=encode(load_photo(name))
        )


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "camera", "clock", "horse")


def scribbled_copy() -> bytes:
    return encode(copy_edits.edit(load_photo("astronaut"), "scribble", 11))


def test_a_scribbled_copy_is_verified_towards_one_and_unrelated_hits_are_not(
    services: Services, tenant: Tenant
) -> None:
    add_photos(services, tenant, PHOTOS)
    assert stored_sets(services, tenant.instance.id) == len(PHOTOS)
    hits = services.images.search_by_pic(tenant.account, "shop", scribbled_copy()).hits
    assert hits[0].record.product_id == "astronaut"
    assert hits[0].score >= 0.9
    assert all(hit.score < 0.8 for hit in hits[1:])
    # The picture itself still scores 1.0, and a stored-picture search (no query features) works as before.
    same = services.images.search_by_pic(tenant.account, "shop", encode(load_photo("coffee"))).hits
    assert (same[0].record.product_id, same[0].score) == ("coffee", 1.0)
    by_name = services.images.search_by_name(tenant.account, "shop", "coffee", "p").hits
    assert by_name[0].record.product_id == "coffee"


@pytest.mark.settings(copy_verification=False)
def test_with_the_check_off_nothing_is_stored_and_the_copy_scores_by_its_vectors(
    services: Services, tenant: Tenant
) -> None:
    add_photos(services, tenant, PHOTOS)
    assert stored_sets(services, tenant.instance.id) == 0
    hits = services.images.search_by_pic(tenant.account, "shop", scribbled_copy()).hits
    assert hits[0].record.product_id == "astronaut"
    assert hits[0].score < 0.9  # what the check lifts


def test_the_check_reads_only_its_own_instance_and_threshold_and_paging_apply(services: Services) -> None:
    mine = make_tenant(services, "acme", "shop")
    theirs = make_tenant(services, "other", "theirs")
    add_photos(services, theirs, PHOTOS, "theirs")
    add_photos(services, mine, ("coffee", "rocket"))
    hits = services.images.search_by_pic(mine.account, "shop", scribbled_copy()).hits
    assert {hit.record.product_id for hit in hits} == {"coffee", "rocket"}
    assert all(hit.score < 0.8 for hit in hits)
    their_ids = ImageRepository(services.engine).local_features(theirs.instance.id, list(range(1, 100)))
    assert len(their_ids) == len(PHOTOS)
    assert ImageRepository(services.engine).local_features(mine.instance.id, list(their_ids)) == {}
    # A copy threshold keeps the verified copy only; paging past it is empty, not an error.
    options = SearchOptions(score_threshold=0.9)
    found = services.images.search_by_pic(theirs.account, "theirs", scribbled_copy(), options).hits
    assert [hit.record.product_id for hit in found] == ["astronaut"]
    later = SearchOptions(score_threshold=0.9, start=1, num=5)
    assert services.images.search_by_pic(theirs.account, "theirs", scribbled_copy(), later).hits == []


def test_overwrite_delete_and_release_drop_the_features(services: Services, clock: ManualClock) -> None:
    tenant = make_tenant(services, "acme", "shop")
    images = services.images
    images.add_image(
        tenant.account, "shop", product_id="p", pic_name="x", picture=encode(load_photo("coffee"))
    )
    repo = ImageRepository(services.engine)
    first = repo.local_features(
        tenant.instance.id, [images.list_pictures(tenant.account, "shop").records[0].id]
    )
    images.add_image(
        tenant.account, "shop", product_id="p", pic_name="x", picture=encode(load_photo("astronaut"))
    )
    record = images.list_pictures(tenant.account, "shop").records[0]
    second = repo.local_features(tenant.instance.id, [record.id])
    assert stored_sets(services, tenant.instance.id) == 1 and second != first  # replaced, not added
    hits = images.search_by_pic(tenant.account, "shop", scribbled_copy()).hits
    assert hits[0].score >= 0.9  # checked against the new picture's features
    assert images.delete_images(tenant.account, "shop", product_id="p") == ["x"]
    assert stored_sets(services, tenant.instance.id) == 0

    short = grant_instance(services, tenant.account.id, "brief", capacity=100, qps=5)
    images.add_image(
        tenant.account, "brief", product_id="p", pic_name="x", picture=encode(load_photo("coffee"))
    )
    assert stored_sets(services, short.id) == 1
    clock.advance(timedelta(days=400))
    services.lifecycle.sweep()
    services.lifecycle.sweep()
    assert stored_sets(services, short.id) == 0


def test_a_search_that_found_a_verified_copy_stops_after_its_first_views(
    services: Services, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The central and copy views are embedded only when the first views found no verified copy
    (lookalike.service.images.COPY_FOUND_MATCHES), and stopping does not change the copy found."""
    import lookalike.service.images as images_module

    add_photos(services, tenant, PHOTOS)
    embedder = services.images._embedder
    calls: list[int] = []
    real = embedder.embed_several

    def counted(pictures: list[Image.Image]) -> object:
        calls.append(len(pictures))
        return real(pictures)

    monkeypatch.setattr(embedder, "embed_several", counted)
    copy = encode(copy_edits.edit(load_photo("coffee"), "jpeg", 3))
    stopped = services.images.search_by_pic(tenant.account, "shop", copy).hits
    assert len(calls) == 1 and calls[0] <= 2
    assert stopped[0].record.product_id == "coffee"

    calls.clear()
    services.images.search_by_pic(tenant.account, "shop", encode(load_photo("moon")))
    assert len(calls) == 2 and calls[1] >= 3  # no copy: the central and copy views too

    calls.clear()
    monkeypatch.setattr(images_module, "COPY_FOUND_MATCHES", 10**9)  # never stop
    full = services.images.search_by_pic(tenant.account, "shop", copy).hits
    assert len(calls) == 2
    assert (full[0].record.product_id, round(full[0].score, 4)) == ("coffee", round(stopped[0].score, 4))
