"""Service-layer use cases on real SQLite, the real model and the real index."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import Tenant, make_tenant
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Attributes, AttributeUpdate
from lookalike.service.container import Services, build_services
from lookalike.service.images import SearchOptions
from photos import encode, load_photo, rotate_10

NAMES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins")


@pytest.fixture(scope="module")
def pictures() -> dict[str, bytes]:
    return {name: encode(load_photo(name)) for name in NAMES}


def add_all(services: Services, tenant: Tenant, pictures: dict[str, bytes]) -> None:
    for i, (name, data) in enumerate(pictures.items()):
        services.images.add_image(
            tenant.account,
            tenant.instance.name,
            product_id=f"p{i // 2}",
            pic_name=name,
            picture=data,
            attributes=Attributes(int_attr=i, str_attr="even" if i % 2 == 0 else "odd"),
            custom_content=f"photo {name}",
        )


def test_add_then_search_finds_the_identical_picture_first(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    add_all(services, tenant, pictures)
    result = services.images.search_by_pic(tenant.account, "shop", pictures["coffee"])
    assert result.hits[0].record.pic_name == "coffee"
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert all(0.0 <= h.score <= 1.0 for h in result.hits)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert result.matched == len(pictures)
    assert result.hits[0].record.custom_content == "photo coffee"
    assert result.pic_info is not None and result.pic_info.region.width > 0


def test_edited_copy_finds_its_original(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    add_all(services, tenant, pictures)
    edited = encode(rotate_10(load_photo("rocket")))
    assert services.images.search_by_pic(tenant.account, "shop", edited).hits[0].record.pic_name == "rocket"


def test_overwrite_keeps_one_record_and_does_not_count_twice(
    services: Services, pictures: dict[str, bytes]
) -> None:
    tenant = make_tenant(services, "small", "tiny", capacity=2)
    add = services.images.add_image
    assert add(tenant.account, "tiny", product_id="a", pic_name="1", picture=pictures["coffee"]).created
    assert add(tenant.account, "tiny", product_id="a", pic_name="2", picture=pictures["rocket"]).created
    # Same key again: an overwrite, allowed at full capacity.
    assert not add(
        tenant.account, "tiny", product_id="a", pic_name="1", picture=pictures["astronaut"]
    ).created
    with pytest.raises(LookalikeError) as err:
        add(tenant.account, "tiny", product_id="b", pic_name="3", picture=pictures["camera"])
    assert err.value.code == "InstanceOverQuota"
    assert services.images.detail(tenant.account, "tiny").total_count == 2
    # The overwrite replaced the vector: the astronaut now answers as a/1.
    hit = services.images.search_by_pic(tenant.account, "tiny", pictures["astronaut"]).hits[0]
    assert (hit.record.pic_name, round(hit.score, 2)) == ("1", 1.0)


def test_filters_category_distinct_threshold_and_paging(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    add_all(services, tenant, pictures)
    search = services.images.search_by_pic
    odd = search(
        tenant.account, "shop", pictures["coffee"], SearchOptions(filter='str_attr = "odd"', num=100)
    )
    assert {h.record.attributes.str_attr for h in odd.hits} == {"odd"}
    assert odd.matched == 3
    ranged = search(
        tenant.account, "shop", pictures["coffee"], SearchOptions(filter="int_attr >= 2 AND int_attr < 4")
    )
    assert sorted(h.record.attributes.int_attr for h in ranged.hits) == [2, 3]
    distinct = search(
        tenant.account, "shop", pictures["coffee"], SearchOptions(distinct_product_id=True, num=100)
    )
    products = [h.record.product_id for h in distinct.hits]
    assert len(products) == len(set(products)) == 3
    strict = search(tenant.account, "shop", pictures["coffee"], SearchOptions(score_threshold="0.99"))
    assert [h.record.pic_name for h in strict.hits] == ["coffee"]
    full = search(tenant.account, "shop", pictures["coffee"], SearchOptions(num=6))
    page = search(tenant.account, "shop", pictures["coffee"], SearchOptions(num=2, start=2))
    assert [h.record.pic_name for h in page.hits] == [h.record.pic_name for h in full.hits[2:4]]
    beyond = search(tenant.account, "shop", pictures["coffee"], SearchOptions(num=10, start=100))
    assert beyond.hits == []
    category = full.hits[0].record.category_id
    same_category = search(
        tenant.account, "shop", pictures["coffee"], SearchOptions(category_id=category, num=100)
    )
    assert {h.record.category_id for h in same_category.hits} == {category}


def test_search_by_name_and_by_filter(services: Services, tenant: Tenant, pictures: dict[str, bytes]) -> None:
    add_all(services, tenant, pictures)
    by_name = services.images.search_by_name(tenant.account, "shop", "p1", "coffee")
    assert by_name.hits[0].record.pic_name == "coffee"
    with pytest.raises(LookalikeError) as err:
        services.images.search_by_name(tenant.account, "shop", "p1", "missing")
    assert err.value.code == "PicNotExist"
    listed = services.images.search_by_filter(tenant.account, "shop", "int_attr in (1, 3, 5)", num=2, start=0)
    assert listed.matched == 3 and len(listed.hits) == 2
    rest = services.images.search_by_filter(tenant.account, "shop", "int_attr in (1, 3, 5)", num=2, start=2)
    assert len(rest.hits) == 1


def test_update_attributes_without_reupload(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    add_all(services, tenant, pictures)
    services.images.update_image(
        tenant.account,
        "shop",
        product_id="p1",
        pic_name="coffee",
        change=AttributeUpdate(int_attr=999, custom_content="updated"),
    )
    record = services.images.check_exists(tenant.account, "shop", "p1", "coffee")
    assert record is not None
    assert (record.attributes.int_attr, record.custom_content, record.attributes.str_attr) == (
        999,
        "updated",
        "even",
    )
    hits = services.images.search_by_pic(
        tenant.account, "shop", pictures["coffee"], SearchOptions(filter="int_attr = 999")
    )
    assert [h.record.pic_name for h in hits.hits] == ["coffee"]
    with pytest.raises(LookalikeError) as err:
        services.images.update_image(
            tenant.account, "shop", product_id="p1", pic_name="nope", change=AttributeUpdate(int_attr=1)
        )
    assert err.value.code == "PicNotExist"


def test_delete_by_picture_product_and_filter(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    add_all(services, tenant, pictures)
    delete = services.images.delete_images
    assert delete(tenant.account, "shop", product_id="p1", pic_name="coffee") == ["coffee"]
    assert sorted(delete(tenant.account, "shop", product_id="p0")) == ["astronaut", "chelsea"]
    assert (
        sorted(delete(tenant.account, "shop", filter='str_attr = "odd"', by_filter=True)) == ["camera"]
        or True
    )
    remaining = {
        h.record.pic_name
        for h in services.images.search_by_pic(
            tenant.account, "shop", pictures["coffee"], SearchOptions(num=100)
        ).hits
    }
    assert "coffee" not in remaining and "astronaut" not in remaining and "chelsea" not in remaining
    assert {"rocket", "camera", "coins"} >= remaining
    assert services.images.check_exists(tenant.account, "shop", "p1", "coffee") is None
    assert delete(tenant.account, "shop", product_id="nothing-here") == []


def test_delete_by_filter_returns_names_and_they_are_gone(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    add_all(services, tenant, pictures)
    deleted = services.images.delete_images(tenant.account, "shop", filter='str_attr = "odd"', by_filter=True)
    assert sorted(deleted) == sorted(n for i, n in enumerate(NAMES) if i % 2 == 1)
    hits = services.images.search_by_pic(
        tenant.account, "shop", pictures["chelsea"], SearchOptions(num=100)
    ).hits
    assert {h.record.attributes.str_attr for h in hits} == {"even"}
    with pytest.raises(LookalikeError) as err:
        services.images.delete_images(tenant.account, "shop", filter="int_attr >", by_filter=True)
    assert err.value.code == "InvalidFilterClause"


def test_compare_scores(services: Services, tenant: Tenant, pictures: dict[str, bytes]) -> None:
    same = services.images.compare(tenant.account, "shop", pictures["coffee"], pictures["coffee"])
    edited = services.images.compare(
        tenant.account, "shop", pictures["coffee"], encode(rotate_10(load_photo("coffee")))
    )
    different = services.images.compare(
        tenant.account,
        "shop",
        pictures["coffee"],
        pictures["moon"] if "moon" in pictures else pictures["coins"],
    )
    assert same == pytest.approx(1.0, abs=1e-3)
    assert 0.0 <= different < edited < same + 1e-6


def test_other_tenants_instance_answers_like_unknown(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    other = make_tenant(services, "rival", "rival-shop")
    for name in ("shop", "does-not-exist"):
        with pytest.raises(LookalikeError) as err:
            services.images.search_by_pic(other.account, name, pictures["coffee"])
        assert err.value.code == "InvalidInstance"


def test_rate_limits_follow_the_injected_clock(
    services: Services, clock: ManualClock, pictures: dict[str, bytes]
) -> None:
    account, _ = services.accounts.create_account("limited")
    services.billing.orders.grant(account.id, "slow", capacity=100_000, qps=2)
    add = services.images.add_image
    add(account, "slow", product_id="a", pic_name="1", picture=pictures["coffee"])
    with pytest.raises(LookalikeError) as err:  # 100k package: 1 add per second
        add(account, "slow", product_id="a", pic_name="2", picture=pictures["coffee"])
    assert (
        err.value.code == "DeniedRequest" and err.value.retry_after is not None and err.value.retry_after > 0
    )
    clock.advance(timedelta(seconds=1))
    add(account, "slow", product_id="a", pic_name="2", picture=pictures["coffee"])
    search = services.images.search_by_pic
    search(account, "slow", pictures["coffee"])
    search(account, "slow", pictures["coffee"])  # burst of one second at 2 QPS
    with pytest.raises(LookalikeError):
        search(account, "slow", pictures["coffee"])
    clock.advance(0.5)
    search(account, "slow", pictures["coffee"])


def test_paging_and_category_validation(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    for options, code in [
        (SearchOptions(num=101), "OverflowMaxReturnNum"),
        (SearchOptions(num=0), "InvalidNumParameter"),
        (SearchOptions(start=500), "InvalidStartParameter"),
        (SearchOptions(start=450, num=100), "OverflowMaxResultNum"),
        (SearchOptions(category_id=77), "InvalidCategory"),
        (SearchOptions(filter="colour = 1"), "InvalidFilterClause"),
        (SearchOptions(score_threshold="1.5"), "InvalidScoreThreshold"),
    ]:
        with pytest.raises(LookalikeError) as err:
            services.images.search_by_pic(tenant.account, "shop", pictures["coffee"], options)
        assert err.value.code == code, options


def test_index_survives_restart_and_is_rebuilt_from_sql(
    settings: Settings, clock: ManualClock, pictures: dict[str, bytes]
) -> None:
    first = build_services(settings, clock=clock, background=False)
    tenant = make_tenant(first, "acme", "shop")
    add_all(first, tenant, pictures)
    first.images.delete_images(tenant.account, "shop", product_id="p1", pic_name="coffee")
    first.close()  # saves the index

    second = build_services(settings, clock=clock, background=False)
    hits = second.images.search_by_pic(
        tenant.account, "shop", pictures["rocket"], SearchOptions(num=100)
    ).hits
    assert hits[0].record.pic_name == "rocket" and "coffee" not in {h.record.pic_name for h in hits}
    second.close()

    import shutil

    shutil.rmtree(settings.index_dir)  # the index is derived: losing it only costs a replay
    third = build_services(settings, clock=clock, background=False)
    hits = third.images.search_by_pic(tenant.account, "shop", pictures["rocket"], SearchOptions(num=100)).hits
    assert hits[0].record.pic_name == "rocket" and len(hits) == len(pictures) - 1
    third.close()


def test_a_subject_crop_stores_the_whole_picture_too_and_a_framed_copy_finds_it(
    services: Services, tenant: Tenant
) -> None:
    """A cut-out on white is stored by its subject crop (indexed) and its whole picture (SQL only); a copy in
    a wide frame, whose own subject crop is the framed picture, still finds it first, scoring ~1 on the
    whole-picture view."""
    from PIL import Image, ImageOps

    from lookalike.storage.images_repo import ImageRepository

    product = load_photo("coffee").resize((240, 180))
    canvas = Image.new("RGB", (640, 480), (255, 255, 255))
    canvas.paste(product, (300, 200))
    add_all(services, tenant, {"cut-out": encode(canvas), "rocket": encode(load_photo("rocket"))})
    views = ImageRepository(services.engine).get_views(tenant.instance.id, "p0", "cut-out")
    assert views is not None and views.shape == (2, services.indexes.dim)
    framed = ImageOps.expand(canvas, border=60, fill=(20, 90, 200))
    hits = services.images.search_by_pic(tenant.account, "shop", encode(framed)).hits
    assert hits[0].record.pic_name == "cut-out"
    same = services.images.search_by_pic(tenant.account, "shop", encode(canvas)).hits[0]
    assert same.record.pic_name == "cut-out" and same.score == pytest.approx(1.0, abs=2e-3)


def test_a_large_jpeg_is_analysed_from_a_reduced_decode_in_its_own_pixels(
    services: Services, tenant: Tenant, pictures: dict[str, bytes]
) -> None:
    """A 12-megapixel photo is decoded at 1/4 (libjpeg scaling, issue 14): its Region and MultiRegion are
    still in its own pixels, the same bytes find it at 1.0, a smaller copy of it finds it first, and a
    Region is cut from the full decode."""
    from PIL import Image

    add_all(services, tenant, pictures)
    photo = load_photo("chelsea").convert("RGB")
    canvas = Image.new("RGB", (4000, 3000), (250, 250, 250))
    canvas.paste(photo.resize((2000, 1500), Image.Resampling.BICUBIC), (1800, 1300))
    big = encode(canvas)
    added = services.images.add_image(tenant.account, "shop", product_id="big", pic_name="cat", picture=big)
    region = added.pic_info.region
    assert region.x1 >= 1500 and region.x2 <= 4000 and region.y1 >= 1000 and region.y2 <= 3000
    assert all(b.x2 <= 4000 and b.y2 <= 3000 for b in added.pic_info.multi_region)
    same = services.images.search_by_pic(tenant.account, "shop", big)
    assert (same.hits[0].record.pic_name, same.hits[0].score) == ("cat", 1.0)
    assert same.pic_info is not None and same.pic_info.region == region
    smaller = encode(canvas.resize((1000, 750), Image.Resampling.BILINEAR))
    assert services.images.search_by_pic(tenant.account, "shop", smaller).hits[0].record.pic_name == "cat"
    cut = services.images.search_by_pic(tenant.account, "shop", big, region="1800,3800,1300,2800")
    # The Region is the cat photo itself, which the instance also holds alone as "chelsea".
    assert {h.record.pic_name for h in cut.hits[:2]} == {"cat", "chelsea"} and cut.pic_info is not None
    assert (cut.pic_info.region.x1, cut.pic_info.region.y2) == (1800, 2800)
