"""The Alibaba data-plane actions driven by the REAL official SDKs against a live loopback server.

Every 2020-12-14 data-plane action through the default (V3-signed) client, the key ones again through
the classic RPC-signed client, the 2019-03-25 ROA API through both of its clients and the legacy core
SDK; responses are read back through the SDK's typed models, errors through the SDK's exceptions.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from alibabacloud_imagesearch20190325 import models as models2019
from alibabacloud_imagesearch20201214 import models
from aliyunsdkcore.acs_exception.exceptions import ServerException as CoreServerException
from aliyunsdkimagesearch.request.v20190325.AddImageRequest import AddImageRequest as CoreAddImageRequest
from aliyunsdkimagesearch.request.v20190325.DeleteImageRequest import (
    DeleteImageRequest as CoreDeleteImageRequest,
)
from aliyunsdkimagesearch.request.v20190325.SearchImageRequest import (
    SearchImageRequest as CoreSearchImageRequest,
)
from PIL import Image, ImageOps
from Tea.exceptions import TeaException

from alibaba_live import client_2019, client_v2, client_v3, legacy_core, legacy_request, live_server
from conftest import Tenant, make_tenant
from lookalike.api.alibaba import pic_content
from lookalike.api.alibaba.actions import RELEVANCE_MAX_APPAREL, RELEVANCE_MAX_OTHER
from lookalike.api.alibaba.dispatch import Context
from lookalike.clock import ManualClock
from lookalike.domain.errors import LookalikeError
from lookalike.service.container import Services
from photos import EDITS, PHOTO_NAMES, encode, load_photo

UTF8_PRODUCT = "红色 T恤"
SPECIAL = "a+b&c=d/e*f~g'h(i)"


@cache
def photo(name: str) -> Image.Image:
    return load_photo(name)


@cache
def jpeg(name: str) -> bytes:
    return encode(photo(name))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def endpoint(services: Services) -> Iterator[str]:
    with live_server(services) as address:
        yield address


def error_of(exc: Any) -> tuple[str | None, int | None]:
    """(code, HTTP status) of an SDK exception (tea-openapi 0.4 ClientException, or 0.3 TeaException)."""
    status = getattr(exc, "status_code", None)
    if status is None and isinstance(exc.data, dict):
        status = exc.data.get("statusCode")
    return exc.code, status


def sdk_error(call: Callable[[], Any]) -> tuple[str | None, int | None]:
    with pytest.raises(TeaException) as info:
        call()
    return error_of(info.value)


def expect_error(call: Callable[[], Any], code: str | tuple[str, ...], status: int = 400) -> None:
    got_code, got_status = sdk_error(call)
    codes = (code,) if isinstance(code, str) else code
    assert got_code in codes, (got_code, got_status)
    assert got_status == status, (got_code, got_status)


# --- every 2020-12-14 data-plane action, V3 signing ---


def test_every_action_through_the_v3_client(
    services: Services, tenant: Tenant, endpoint: str, clock: ManualClock
) -> None:
    client = client_v3(endpoint, tenant.key_id, tenant.secret)
    added = client.add_image(
        models.AddImageRequest(
            instance_name="shop",
            product_id=UTF8_PRODUCT,
            pic_name=SPECIAL,
            pic_content=b64(jpeg("coffee")),
            int_attr=5,
            int_attr_2=-7,
            int_attr_3=9_000_000_000,
            str_attr=UTF8_PRODUCT,
            str_attr_2=SPECIAL,
            custom_content='{"k": "v 值"}',
        )
    )
    assert added.status_code == 200
    body = added.body
    assert (body.success, body.code, body.message) == (True, 0, "success")
    assert body.request_id
    assert body.pic_info.category_id == 88888888 or body.pic_info.category_id in range(23)
    assert body.pic_info.region == "0,600,0,400"  # coffee is 600x400; x1,x2,y1,y2
    assert [r.region for r in body.pic_info.multi_region]
    names = {c.id: c.name for c in body.pic_info.all_categories}
    assert names[0] == "Tops" and names[88888888] == "Other" and len(names) == 14
    client.add_image(
        models.AddImageRequest(
            instance_name="shop", product_id="rocket-1", pic_name="r.jpg", pic_content=b64(jpeg("rocket"))
        )
    )

    found = client.search_image_by_pic(
        models.SearchImageByPicRequest(instance_name="shop", pic_content=b64(jpeg("coffee")), num=1)
    ).body
    assert (found.success, found.code, found.msg) == (True, 0, "success")
    assert found.head.docs_found == 1  # returned (sic)
    assert found.head.docs_return == 2  # matched in the instance (sic)
    assert isinstance(found.head.search_time, int)
    top = found.auctions[0]
    assert (top.product_id, top.pic_name) == (UTF8_PRODUCT, SPECIAL)
    assert (top.int_attr, top.int_attr_2, top.int_attr_3, top.int_attr_4) == (5, -7, 9_000_000_000, 0)
    assert (top.str_attr, top.str_attr_2, top.str_attr_3) == (UTF8_PRODUCT, SPECIAL, "")
    assert top.custom_content == '{"k": "v 值"}'
    assert top.score == pytest.approx(1.0, abs=1e-3)
    relevance, hamming = top.sort_expr_values.split(";")
    assert hamming == "0"
    if top.category_id not in (0, 1, 2):
        assert float(relevance) == pytest.approx(top.score * RELEVANCE_MAX_OTHER, rel=1e-12)
    assert found.pic_info.region and found.pic_info.all_categories

    by_name = client.search_image_by_name(
        models.SearchImageByNameRequest(
            instance_name="shop", product_id=UTF8_PRODUCT, pic_name=SPECIAL, score_threshold="0.99"
        )
    ).body
    assert [(a.product_id, a.pic_name) for a in by_name.auctions] == [(UTF8_PRODUCT, SPECIAL)]
    assert by_name.head.docs_found == 1 and by_name.msg == "success"

    distinct = client.search_image_by_pic(
        models.SearchImageByPicRequest(
            instance_name="shop",
            pic_content=b64(jpeg("rocket")),
            distinct_product_id=True,
            crop=False,
            filter="int_attr = 0",
        )
    ).body
    assert [a.product_id for a in distinct.auctions] == ["rocket-1"]
    assert distinct.head.docs_return == 1

    filtered = client.search_image_by_filter(
        models.SearchImageByFilterRequest(instance_name="shop", filter=f'str_attr = "{UTF8_PRODUCT}"')
    ).body
    assert (filtered.success, filtered.code, filtered.msg) == (True, 0, "success")
    assert [(a.product_id, a.int_attr_3) for a in filtered.auctions] == [(UTF8_PRODUCT, 9_000_000_000)]

    exists = client.check_image_exists(
        models.CheckImageExistsRequest(instance_name="shop", product_id=UTF8_PRODUCT, pic_name=SPECIAL)
    ).body
    assert exists.exists is True and exists.success is True
    assert (exists.auctions.product_id, exists.auctions.str_attr_2) == (UTF8_PRODUCT, SPECIAL)
    missing = client.check_image_exists(
        models.CheckImageExistsRequest(instance_name="shop", product_id=UTF8_PRODUCT, pic_name="nope")
    ).body
    assert missing.exists is False and missing.success is True
    assert missing.auctions is not None and missing.auctions.product_id is None  # an empty object

    same = client.compare_similar_by_image(
        models.CompareSimilarByImageRequest(
            instance_name="shop",
            primary_pic_content=b64(jpeg("coffee")),
            secondary_pic_content=b64(jpeg("coffee")),
        )
    ).body
    other = client.compare_similar_by_image(
        models.CompareSimilarByImageRequest(
            instance_name="shop",
            primary_pic_content=b64(jpeg("coffee")),
            secondary_pic_content=b64(jpeg("rocket")),
        )
    ).body
    assert same.score == pytest.approx(1.0, abs=1e-3) and same.msg == "success"
    assert 0.0 <= other.score < same.score

    # IntAttr3/4 and StrAttr3/4 travel in the query on UpdateImage; the rest in the body.
    updated = client.update_image(
        models.UpdateImageRequest(
            instance_name="shop",
            product_id=UTF8_PRODUCT,
            pic_name=SPECIAL,
            int_attr_3=33,
            int_attr_4=44,
            str_attr_3=UTF8_PRODUCT,
            str_attr_4=SPECIAL,
            custom_content="new 内容",
        )
    ).body
    assert (updated.success, updated.code, updated.message) == (True, 0, "success")
    by_special = client.search_image_by_filter(
        models.SearchImageByFilterRequest(
            instance_name="shop", filter=f'str_attr4 = "{SPECIAL}" AND int_attr3 = 33 AND int_attr4 = 44'
        )
    ).body
    [record] = by_special.auctions
    assert (record.str_attr_3, record.custom_content, record.int_attr) == (UTF8_PRODUCT, "new 内容", 5)

    detail = client.detail(models.DetailRequest(instance_name="shop")).body
    assert detail.success is True
    info = detail.instance
    assert (info.name, info.region, info.service_type) == ("shop", "cn-shanghai", 0)
    assert (info.capacity, info.qps, info.total_count) == (100, 1000, 2)  # 1,000,000 pictures = 100 x 10k
    created = services.instances_repo.get(tenant.instance.id)
    assert created is not None and created.expires_at is not None
    assert info.utc_create == str(int(created.created_at.timestamp() * 1000))
    assert info.utc_expire_time == str(int(created.expires_at.timestamp() * 1000))

    deleted = client.delete_image(
        models.DeleteImageRequest(instance_name="shop", product_id=UTF8_PRODUCT, pic_name=SPECIAL)
    ).body
    assert (deleted.success, deleted.code, deleted.message) == (True, 0, "success")
    assert deleted.data.pic_names == [SPECIAL]
    by_filter = client.delete_image(
        models.DeleteImageRequest(instance_name="shop", is_delete_by_filter=True, filter="int_attr = 0")
    ).body
    assert by_filter.data.pic_names == ["r.jpg"]
    clock.advance(2)  # Detail is limited to 1 per second
    assert client.detail(models.DetailRequest(instance_name="shop")).body.instance.total_count == 0


def test_sort_expr_values_use_the_category_maximum(tenant: Tenant, endpoint: str) -> None:
    client = client_v3(endpoint, tenant.key_id, tenant.secret)
    for category, name in ((0, "tops"), (4, "shoes")):
        client.add_image(
            models.AddImageRequest(
                instance_name="shop",
                product_id=name,
                pic_name="1",
                pic_content=b64(jpeg("coffee")),
                category_id=category,
            )
        )
    found = client.search_image_by_pic(
        models.SearchImageByPicRequest(instance_name="shop", pic_content=b64(jpeg("coffee")), category_id=0)
    ).body
    assert found.pic_info.category_id == 0
    [hit] = found.auctions
    assert (hit.product_id, hit.category_id) == ("tops", 0)
    assert float(hit.sort_expr_values.split(";")[0]) == pytest.approx(hit.score * RELEVANCE_MAX_APPAREL)
    shoes = client.search_image_by_name(
        models.SearchImageByNameRequest(instance_name="shop", product_id="shoes", pic_name="1", category_id=4)
    ).body.auctions[0]
    assert float(shoes.sort_expr_values.split(";")[0]) == pytest.approx(shoes.score * RELEVANCE_MAX_OTHER)


def test_url_pic_content_goes_only_to_registered_resolvers(
    tenant: Tenant, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = {"http://127.0.0.1:9/imagesearch-upload/abc.jpg": jpeg("rocket")}
    seen: list[str] = []

    def resolver(ctx: Context, url: str) -> bytes | None:
        seen.append(url)
        return store.get(url)

    monkeypatch.setattr(pic_content, "URL_RESOLVERS", [resolver])
    client = client_v3(endpoint, tenant.key_id, tenant.secret)
    added = client.add_image(
        models.AddImageRequest(
            instance_name="shop", product_id="p", pic_name="n", pic_content=next(iter(store))
        )
    )
    assert added.body.success is True
    expect_error(
        lambda: client.search_image_by_pic(
            models.SearchImageByPicRequest(instance_name="shop", pic_content="https://example.com/x.jpg")
        ),
        "InvalidPicUrl",
    )
    assert seen == [*store, "https://example.com/x.jpg"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),  # padding restored
        ("aGVs\r\nbG8=", b"hello"),  # MIME line break
        ("-_8=", b"\xfb\xff"),  # URL-safe alphabet
        ("+/8=", b"\xfb\xff"),
        (" /8=", b"\xfb\xff"),  # an unescaped '+' that the form decoding turned into a space
    ],
)
def test_base64_leniency(text: str, expected: bytes) -> None:
    assert pic_content.decode_base64(text) == expected


@pytest.mark.parametrize("text", ["aGVsbG8*", "aGVsb", "aG=VsbG8", "aGVsbG8==="])
def test_base64_refusals(text: str) -> None:
    with pytest.raises(LookalikeError) as info:
        pic_content.decode_base64(text)
    assert info.value.code == "InvalidPicContent"


# --- the classic RPC HMAC-SHA1 signing ---


def test_key_actions_through_the_v2_signed_client(tenant: Tenant, endpoint: str) -> None:
    client = client_v2(endpoint, tenant.key_id, tenant.secret)
    added = client.add_image(
        models.AddImageRequest(
            instance_name="shop",
            product_id=UTF8_PRODUCT,
            pic_name=SPECIAL,
            pic_content=b64(jpeg("chelsea")),
            str_attr=SPECIAL,
            crop=False,
        )
    ).body
    assert added.success is True and added.pic_info.region == "0,451,0,300"
    found = client.search_image_by_pic(
        models.SearchImageByPicRequest(
            instance_name="shop", pic_content=b64(jpeg("chelsea")), filter=f'str_attr = "{SPECIAL}"'
        )
    ).body
    assert [(a.product_id, a.pic_name) for a in found.auctions] == [(UTF8_PRODUCT, SPECIAL)]
    by_name = client.search_image_by_name(
        models.SearchImageByNameRequest(
            instance_name="shop", product_id=UTF8_PRODUCT, pic_name=SPECIAL, score_threshold="0.5"
        )
    ).body
    assert by_name.head.docs_found == 1
    client.update_image(
        models.UpdateImageRequest(
            instance_name="shop", product_id=UTF8_PRODUCT, pic_name=SPECIAL, int_attr_4=4, str_attr_3="三"
        )
    )
    exists = client.check_image_exists(
        models.CheckImageExistsRequest(instance_name="shop", product_id=UTF8_PRODUCT, pic_name=SPECIAL)
    ).body
    assert (exists.auctions.int_attr_4, exists.auctions.str_attr_3) == (4, "三")
    assert client.detail(models.DetailRequest(instance_name="shop")).body.instance.total_count == 1
    deleted = client.delete_image(models.DeleteImageRequest(instance_name="shop", product_id=UTF8_PRODUCT))
    assert deleted.body.data.pic_names == [SPECIAL]


# --- 2019-03-25 ROA ---


@pytest.mark.parametrize("v2", [False, True], ids=["v3", "roa-hmac-sha1"])
def test_2019_api_through_its_client(tenant: Tenant, endpoint: str, v2: bool) -> None:
    client = client_2019(endpoint, tenant.key_id, tenant.secret, v2=v2)
    added = client.add_image(
        models2019.AddImageRequest(
            instance_name="shop",
            product_id=UTF8_PRODUCT,
            pic_name=SPECIAL,
            pic_content=b64(jpeg("astronaut")),
            int_attr=12,
            str_attr=UTF8_PRODUCT,
            custom_content="自定义",
        )
    ).body
    assert (added.success, added.code, added.message) == (True, 0, "success")
    assert added.pic_info.region and added.pic_info.category_id is not None
    client.add_image(
        models2019.AddImageRequest(
            instance_name="shop", product_id="p2", pic_name="rocket.jpg", pic_content=b64(jpeg("rocket"))
        )
    )
    by_pic = client.search_image(
        models2019.SearchImageRequest(instance_name="shop", pic_content=b64(jpeg("astronaut")), num=1)
    ).body
    assert (by_pic.success, by_pic.code, by_pic.msg) == (True, 0, "success")
    assert (by_pic.head.docs_found, by_pic.head.docs_return) == (1, 2)
    top = by_pic.auctions[0]
    assert (top.product_id, top.pic_name, top.int_attr, top.str_attr, top.custom_content) == (
        UTF8_PRODUCT,
        SPECIAL,
        12,
        UTF8_PRODUCT,
        "自定义",
    )
    assert top.score == pytest.approx(1.0, abs=1e-3) and top.sort_expr_values.endswith(";0")
    assert by_pic.pic_info.all_categories and by_pic.pic_info.multi_region
    by_name = client.search_image(
        models2019.SearchImageRequest(
            instance_name="shop",
            type="SearchByName",
            product_id=UTF8_PRODUCT,
            pic_name=SPECIAL,
            filter=f'str_attr = "{UTF8_PRODUCT}"',
        )
    ).body
    assert [a.pic_name for a in by_name.auctions] == [SPECIAL]
    deleted = client.delete_image(
        models2019.DeleteImageRequest(instance_name="shop", product_id=UTF8_PRODUCT, pic_name=SPECIAL)
    ).body
    assert (deleted.success, deleted.code, deleted.message) == (True, 0, "success")
    left = client.search_image(
        models2019.SearchImageRequest(instance_name="shop", pic_content=b64(jpeg("astronaut")))
    ).body
    assert [a.product_id for a in left.auctions] == ["p2"]
    expect_error(
        lambda: client.search_image(
            models2019.SearchImageRequest(instance_name="shop", type="SearchByColour", product_id="p2")
        ),
        "InvalidType",
    )


@pytest.mark.settings(alibaba_roa_allow_no_nonce=True)  # the legacy core SDK sends no nonce
def test_2019_api_through_the_legacy_core_sdk(tenant: Tenant, endpoint: str) -> None:
    client = legacy_core(endpoint, tenant.key_id, tenant.secret)

    def send(req: Any) -> Any:
        return json.loads(client.do_action_with_exception(legacy_request(req, endpoint)))

    add = CoreAddImageRequest()
    add.set_InstanceName("shop")
    add.set_ProductId(UTF8_PRODUCT)
    add.set_PicName(SPECIAL)
    add.set_PicContent(b64(jpeg("rocket")))
    add.set_StrAttr(SPECIAL)
    add.set_IntAttr(3)
    added = send(add)
    assert (added["Success"], added["Code"], added["Message"]) == (True, 0, "success")
    assert set(added["PicInfo"]) == {"CategoryId", "Region"}

    search = CoreSearchImageRequest()
    search.set_InstanceName("shop")
    search.set_PicContent(b64(jpeg("rocket")))
    search.set_Filter(f'str_attr = "{SPECIAL}"')
    search.set_Num(5)
    found = send(search)
    assert found["Msg"] == "success" and found["Head"]["DocsFound"] == 1
    assert (found["Auctions"][0]["ProductId"], found["Auctions"][0]["PicName"]) == (UTF8_PRODUCT, SPECIAL)

    by_name = CoreSearchImageRequest()
    by_name.set_InstanceName("shop")
    by_name.set_Type("SearchByName")
    by_name.set_ProductId(UTF8_PRODUCT)
    by_name.set_PicName(SPECIAL)
    assert send(by_name)["Auctions"][0]["IntAttr"] == 3

    delete = CoreDeleteImageRequest()
    delete.set_InstanceName("shop")
    delete.set_ProductId(UTF8_PRODUCT)
    assert send(delete)["Message"] == "success"

    missing = CoreSearchImageRequest()
    missing.set_InstanceName("nosuchshop")
    missing.set_PicContent(b64(jpeg("rocket")))
    with pytest.raises(CoreServerException) as info:
        send(missing)
    assert (info.value.get_error_code(), info.value.get_http_status()) == ("InvalidInstance", 400)


# --- error families ---


def test_parameter_and_picture_errors(services: Services, tenant: Tenant, endpoint: str) -> None:
    client = client_v3(endpoint, tenant.key_id, tenant.secret)
    coffee = b64(jpeg("coffee"))

    def search(**fields: Any) -> Callable[[], Any]:
        request = {"instance_name": "shop", "pic_content": coffee, **fields}
        return lambda: client.search_image_by_pic(models.SearchImageByPicRequest(**request))

    def add(**fields: Any) -> Callable[[], Any]:
        request = {
            "instance_name": "shop",
            "product_id": "p",
            "pic_name": "n",
            "pic_content": coffee,
            **fields,
        }
        return lambda: client.add_image(models.AddImageRequest(**request))

    expect_error(search(num=101), "OverflowMaxReturnNum")
    expect_error(search(start=450, num=60), "OverflowMaxResultNum")
    expect_error(search(filter="int_attr >>> 3"), "InvalidFilterClause")
    expect_error(search(filter='str_attr = "unterminated'), "InvalidFilterClause")
    expect_error(search(instance_name="nosuchshop"), "InvalidInstance")
    expect_error(search(instance_name=None), "InvalidInstanceName")
    expect_error(search(pic_content=None), "NoSpecifiedPicContent")
    expect_error(search(region="10,5,0,10"), "InvalidRegion")
    expect_error(search(category_id=77), "InvalidCategory")
    expect_error(
        add(pic_content=b64(b"definitely not a picture" * 20)), ("InvalidPicContent", "UnsupportedPicFormat")
    )
    expect_error(add(pic_content=b64(jpeg("coffee")[:600])), ("InvalidPicContent", "UnsupportedPicFormat"))
    expect_error(add(pic_content="@@not base64@@"), "InvalidPicContent")
    tiny = encode(Image.new("RGB", (40, 40), (200, 30, 30)), "PNG")
    expect_error(add(pic_content=b64(tiny)), "UnsupportedPicPixels")
    # A URL PicContent is only ever resolved from Lookalike's own upload store: never fetched.
    expect_error(add(pic_content="http://169.254.169.254/latest/meta-data/x.jpg"), "InvalidPicUrl")
    expect_error(add(product_id=None), "NoSpecifiedProductId")
    expect_error(add(pic_name=None), "NoSpecifiedPicName")
    expect_error(
        lambda: client.search_image_by_name(
            models.SearchImageByNameRequest(instance_name="shop", product_id="nope", pic_name="nope")
        ),
        "PicNotExist",
    )
    expect_error(
        lambda: client.compare_similar_by_image(
            models.CompareSimilarByImageRequest(instance_name="shop", primary_pic_content=coffee)
        ),
        "NoSpecifiedPicContent",
    )
    expect_error(
        lambda: client.search_image_by_filter(models.SearchImageByFilterRequest(instance_name="shop")),
        "InvalidFilterClause",
    )
    # Base64 leniency: URL-safe alphabet and missing padding decode to the same picture.
    lenient = base64.urlsafe_b64encode(jpeg("coffee")).decode().rstrip("=")
    client.add_image(
        models.AddImageRequest(instance_name="shop", product_id="p", pic_name="n", pic_content=lenient)
    )
    assert client.search_image_by_pic(
        models.SearchImageByPicRequest(instance_name="shop", pic_content=coffee)
    ).body.auctions[0].score == pytest.approx(1.0, abs=1e-3)


def test_another_tenants_instance_is_an_unknown_instance(
    services: Services, tenant: Tenant, endpoint: str
) -> None:
    other = make_tenant(services, "globex", "their-shop")
    theirs = client_v3(endpoint, other.key_id, other.secret)
    theirs.add_image(
        models.AddImageRequest(
            instance_name="their-shop", product_id="p", pic_name="n", pic_content=b64(jpeg("coffee"))
        )
    )
    mine = client_v3(endpoint, tenant.key_id, tenant.secret)
    expect_error(
        lambda: mine.search_image_by_name(
            models.SearchImageByNameRequest(instance_name="their-shop", product_id="p", pic_name="n")
        ),
        "InvalidInstance",
    )
    expect_error(
        lambda: mine.delete_image(models.DeleteImageRequest(instance_name="their-shop", product_id="p")),
        "InvalidInstance",
    )
    # Detail is a console-type action: its error family names the same refusal Console.InstanceNotFound.
    expect_error(
        lambda: mine.detail(models.DetailRequest(instance_name="their-shop")), "Console.InstanceNotFound"
    )
    exists = theirs.check_image_exists(
        models.CheckImageExistsRequest(instance_name="their-shop", product_id="p", pic_name="n")
    ).body
    assert exists.exists is True


def test_over_capacity_is_instance_over_quota(services: Services, endpoint: str) -> None:
    small = make_tenant(services, "tiny", "tiny", capacity=2)
    client = client_v3(endpoint, small.key_id, small.secret)
    for name in ("coffee", "rocket"):
        client.add_image(
            models.AddImageRequest(
                instance_name="tiny", product_id=name, pic_name="1", pic_content=b64(jpeg(name))
            )
        )
    add_third = lambda: client.add_image(  # noqa: E731
        models.AddImageRequest(
            instance_name="tiny", product_id="moon", pic_name="1", pic_content=b64(jpeg("moon"))
        )
    )
    expect_error(add_third, "InstanceOverQuota", 400)
    # Capacity is reported in units of 10,000 pictures, rounded down: 2 pictures -> 0.
    assert client.detail(models.DetailRequest(instance_name="tiny")).body.instance.capacity == 0
    # Overwriting an existing key is not growth.
    client.add_image(
        models.AddImageRequest(
            instance_name="tiny", product_id="coffee", pic_name="1", pic_content=b64(jpeg("moon"))
        )
    )


def test_expired_instance_is_refused(services: Services, clock: ManualClock, endpoint: str) -> None:
    account, key = services.accounts.create_account("shortlived")
    services.billing.grant(account.id, "month", capacity=10_000, qps=5, months=1)
    client = client_v3(endpoint, key.access_key_id, key.access_key_secret)
    client.add_image(
        models.AddImageRequest(
            instance_name="month", product_id="p", pic_name="n", pic_content=b64(jpeg("coffee"))
        )
    )
    clock.advance(timedelta(days=32))
    services.lifecycle.sweep()
    expect_error(
        lambda: client.search_image_by_name(
            models.SearchImageByNameRequest(instance_name="month", product_id="p", pic_name="n")
        ),
        "InstanceStatusError",
        409,
    )
    expect_error(
        lambda: client.add_image(
            models.AddImageRequest(
                instance_name="month", product_id="q", pic_name="n", pic_content=b64(jpeg("rocket"))
            )
        ),
        "InstanceStatusError",
        409,
    )
    # Detail still answers (the owner needs it to see why), with the expiry in the past.
    info = client.detail(models.DetailRequest(instance_name="month")).body.instance
    assert info.capacity == 1 and int(info.utc_expire_time) < int(clock.now().timestamp() * 1000)


def test_burst_over_the_search_qps_is_denied(services: Services, endpoint: str) -> None:
    slow = make_tenant(services, "slow", "slow", qps=1)
    client = client_v3(endpoint, slow.key_id, slow.secret)
    client.add_image(
        models.AddImageRequest(
            instance_name="slow", product_id="p", pic_name="n", pic_content=b64(jpeg("coffee"))
        )
    )
    outcomes: list[str] = []
    for _ in range(5):
        try:
            client.search_image_by_name(
                models.SearchImageByNameRequest(instance_name="slow", product_id="p", pic_name="n")
            )
            outcomes.append("ok")
        except TeaException as exc:
            code, status = error_of(exc)
            outcomes.append(f"{code}/{status}")
    assert outcomes[0] == "ok"
    assert "DeniedRequest/403" in outcomes[1:]
    assert set(outcomes[1:]) == {"DeniedRequest/403"}


# --- end to end: 50 real photos in, an edited copy out, the original first ---


def _halves(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Two disjoint halves along the longer side, each at least 100 px on its short side."""
    w, h = image.size
    if w >= h:
        parts = (image.crop((0, 0, w // 2, h)), image.crop((w // 2, 0, w, h)))
    else:
        parts = (image.crop((0, 0, w, h // 2)), image.crop((0, h // 2, w, h)))
    return tuple(_at_least(p, 100) for p in parts)  # type: ignore[return-value]


def _at_least(image: Image.Image, side: int) -> Image.Image:
    if min(image.size) >= side:
        return image
    scale = side / min(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


def fifty_pictures() -> dict[str, Image.Image]:
    """The shipped whole photos, plus the two disjoint halves of enough of them to make 50 genuinely
    different pictures (no two share a pixel of content), the halves acting as close decoys of their
    parents."""
    pictures: dict[str, Image.Image] = {name: photo(name) for name in PHOTO_NAMES}
    for name in PHOTO_NAMES[: (50 - len(PHOTO_NAMES)) // 2]:
        first, second = _halves(photo(name))
        pictures[f"{name}-half1"] = first
        pictures[f"{name}-half2"] = ImageOps.mirror(second)
    assert len(pictures) == 50
    return pictures


def test_fifty_photos_in_edited_copy_finds_its_original(services: Services, endpoint: str) -> None:
    shop = make_tenant(services, "gallery", "gallery", add_qps=1000)
    client = client_v3(endpoint, shop.key_id, shop.secret)
    for key, image in fifty_pictures().items():
        response = client.add_image(
            models.AddImageRequest(
                instance_name="gallery",
                product_id=key,
                pic_name=f"{key}.jpg",
                pic_content=b64(encode(image)),
                str_attr="half" if "-half" in key else "whole",
                crop=False,
            )
        )
        assert response.body.success is True
    clock_detail = client.detail(models.DetailRequest(instance_name="gallery")).body.instance
    assert clock_detail.total_count == 50

    for original in ("chelsea", "astronaut", "coffee", "rocket"):
        for edit_name, edit in EDITS.items():
            query = client.search_image_by_pic(
                models.SearchImageByPicRequest(
                    instance_name="gallery", pic_content=b64(encode(edit(photo(original)))), num=5, crop=False
                )
            ).body
            assert query.head.docs_return == 50
            top = query.auctions[0]
            assert top.product_id == original, (
                original,
                edit_name,
                [(a.product_id, a.score) for a in query.auctions],
            )
    # And through the 2019 API's client, filtered to the whole photos.
    old = client_2019(endpoint, shop.key_id, shop.secret)
    found = old.search_image(
        models2019.SearchImageRequest(
            instance_name="gallery",
            pic_content=b64(encode(EDITS["border_text"](photo("clock")))),
            filter='str_attr = "whole"',
        )
    ).body
    assert found.auctions[0].product_id == "clock" and found.head.docs_return == len(PHOTO_NAMES)
