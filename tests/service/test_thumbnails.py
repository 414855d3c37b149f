"""Thumbnails: made from the whole decoded picture on add, stored with it, replaced and deleted with it."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from conftest import grant_instance, make_tenant
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.service.container import Services, build_services
from lookalike.storage.images_repo import ImageRepository
from lookalike.storage.tables import thumbnails
from lookalike.vision.thumbnail import make_thumbnail
from photos import encode, load_photo

SIZE = 160


def stored_thumbnails(services: Services, instance_id: str) -> int:
    with services.engine.connect() as conn:
        found = conn.execute(
            select(func.count()).select_from(thumbnails).where(thumbnails.c.instance_id == instance_id)
        ).scalar_one()
    return int(found)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    return encode(image, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("width", "height"), [(4096, 100), (100, 4096), (1000, 750), (120, 150), (160, 160), (161, 100)]
)
def test_a_thumbnail_is_never_bigger_than_its_size_and_keeps_the_shape(width: int, height: int) -> None:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    thumb = opened(make_thumbnail(image, SIZE))
    assert max(thumb.size) <= SIZE and min(thumb.size) >= 1
    assert thumb.mode == "RGB"
    if max(width, height) <= SIZE:
        assert thumb.size == (width, height)  # small pictures are not enlarged
    else:
        assert max(thumb.size) == SIZE
        assert abs(thumb.width / thumb.height - width / height) < 0.05 * max(1, width / height)


def test_add_stores_a_thumbnail_of_the_whole_oriented_picture(services: Services) -> None:
    tenant = make_tenant(services, "acme", "shop")
    astronaut = load_photo("astronaut")  # 512 x 512
    coffee = load_photo("coffee")  # 600 x 400, wide
    images = services.images
    images.add_image(tenant.account, "shop", product_id="p1", pic_name="a", picture=encode(astronaut))
    # EXIF orientation 6 (rotate 90°): decode turns the wide photo upright, so the thumbnail is tall.
    images.add_image(
        tenant.account, "shop", product_id="p2", pic_name="c", picture=with_orientation(coffee, 6)
    )
    # A small region does not shrink the thumbnail to it: the console shows the whole picture.
    images.add_image(
        tenant.account, "shop", product_id="p3", pic_name="r", picture=encode(coffee), region="0,100,0,100"
    )
    listed = images.list_pictures(tenant.account, "shop")
    assert [r.pic_name for r in listed.records] == ["a", "c", "r"]
    assert listed.with_thumbnail == {r.id for r in listed.records}
    sizes = {}
    for record in listed.records:
        data = images.thumbnail(tenant.account, "shop", record.id)
        assert data is not None
        sizes[record.pic_name] = opened(data).size
    assert sizes == {"a": (160, 160), "c": (107, 160), "r": (160, 107)}
    assert stored_thumbnails(services, tenant.instance.id) == 3


def test_overwrite_replaces_the_thumbnail_and_delete_removes_it(services: Services) -> None:
    tenant = make_tenant(services, "acme", "shop")
    images = services.images
    images.add_image(
        tenant.account, "shop", product_id="p", pic_name="x", picture=encode(load_photo("coffee"))
    )
    first = images.list_pictures(tenant.account, "shop").records[0]
    before = images.thumbnail(tenant.account, "shop", first.id)
    images.add_image(
        tenant.account, "shop", product_id="p", pic_name="x", picture=encode(load_photo("astronaut"))
    )
    again = images.list_pictures(tenant.account, "shop").records
    assert [r.id for r in again] == [first.id]  # same picture row, overwritten
    after = images.thumbnail(tenant.account, "shop", first.id)
    assert before is not None and after is not None and after != before
    assert opened(after).size == (160, 160)  # the astronaut's square, not the coffee's 3:2
    assert stored_thumbnails(services, tenant.instance.id) == 1

    images.add_image(tenant.account, "shop", product_id="q", pic_name="y", picture=encode(load_photo("moon")))
    assert images.delete_images(tenant.account, "shop", product_id="p") == ["x"]
    assert images.thumbnail(tenant.account, "shop", first.id) is None
    assert stored_thumbnails(services, tenant.instance.id) == 1  # q/y's stays
    assert images.delete_images(tenant.account, "shop", filter="int_attr = 0", by_filter=True) == ["y"]
    assert stored_thumbnails(services, tenant.instance.id) == 0


def test_a_thumbnail_is_only_read_through_its_own_instance(services: Services) -> None:
    mine = make_tenant(services, "acme", "shop")
    theirs = make_tenant(services, "other", "theirs")
    services.images.add_image(
        theirs.account, "theirs", product_id="p", pic_name="x", picture=encode(load_photo("coffee"))
    )
    their_id = services.images.list_pictures(theirs.account, "theirs").records[0].id
    assert services.images.thumbnail(mine.account, "shop", their_id) is None
    assert services.images.thumbnails_for(mine.account, "shop", [their_id]) == set()
    with pytest.raises(Exception, match="InvalidInstance"):
        services.images.thumbnail(mine.account, "theirs", their_id)


def test_instance_data_deletion_and_release_remove_thumbnails(services: Services, clock: ManualClock) -> None:
    tenant = make_tenant(services, "acme", "shop")
    picture = encode(load_photo("coffee"))
    services.images.add_image(tenant.account, "shop", product_id="p", pic_name="x", picture=picture)
    assert stored_thumbnails(services, tenant.instance.id) == 1
    services.indexes.drop(tenant.instance.id)
    ImageRepository(services.engine).delete_instance_data(tenant.instance.id)
    assert stored_thumbnails(services, tenant.instance.id) == 0

    # An instance held for a month and never renewed is released a week after it expires.
    short = grant_instance(services, tenant.account.id, "brief", capacity=100, qps=5)
    services.images.add_image(tenant.account, "brief", product_id="p", pic_name="x", picture=picture)
    assert stored_thumbnails(services, short.id) == 1
    clock.advance(timedelta(days=400))
    services.lifecycle.sweep()
    services.lifecycle.sweep()
    assert services.instances_repo.get(short.id).status == "released"  # type: ignore[union-attr]
    assert stored_thumbnails(services, short.id) == 0


def test_no_thumbnails_when_the_setting_is_off(settings: Settings, clock: ManualClock) -> None:
    picture = encode(load_photo("coffee"))
    with_thumbs = build_services(settings, clock=clock, background=False)
    try:
        tenant = make_tenant(with_thumbs, "acme", "shop")
        with_thumbs.images.add_image(tenant.account, "shop", product_id="p", pic_name="x", picture=picture)
        assert stored_thumbnails(with_thumbs, tenant.instance.id) == 1
    finally:
        with_thumbs.close()
    without = build_services(replace(settings, thumbnails=False), clock=clock, background=False)
    try:
        # Overwriting with thumbnails off drops the old one: it would show the previous picture.
        without.images.add_image(
            tenant.account, "shop", product_id="p", pic_name="x", picture=encode(load_photo("astronaut"))
        )
        without.images.add_image(tenant.account, "shop", product_id="q", pic_name="y", picture=picture)
        listed = without.images.list_pictures(tenant.account, "shop")
        assert len(listed.records) == 2 and listed.with_thumbnail == set()
        assert stored_thumbnails(without, tenant.instance.id) == 0
    finally:
        without.close()


def test_large_packages_keep_no_thumbnails_unless_the_operator_says_so(
    settings: Settings, clock: ManualClock
) -> None:
    """At ~5 KB each, thumbnails would be most of SQL for a 2.5M+ package: off above the setting."""
    picture = encode(load_photo("coffee"))
    services = build_services(settings, clock=clock, background=False)
    try:
        small = make_tenant(services, "smallco", "small", capacity=1_000_000)
        big = make_tenant(services, "bigco", "big", capacity=2_500_000)
        for tenant, name in ((small, "small"), (big, "big")):
            services.images.add_image(tenant.account, name, product_id="p", pic_name="x", picture=picture)
        assert stored_thumbnails(services, small.instance.id) == 1
        assert stored_thumbnails(services, big.instance.id) == 0
    finally:
        services.close()
    unlimited = build_services(replace(settings, thumbnails_max_capacity=None), clock=clock, background=False)
    try:
        unlimited.images.add_image(big.account, "big", product_id="p", pic_name="y", picture=picture)
        assert stored_thumbnails(unlimited, big.instance.id) == 1
    finally:
        unlimited.close()
