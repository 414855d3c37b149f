"""The Alibaba transport against a live loopback server, driven by the REAL official SDKs.

Every SDK generation and signing style must authenticate: 2020-12-14 V3 and `signature_algorithm='v2'`
(RPC HMAC-SHA1), 2019-03-25 over V3 and over ROA HMAC-SHA1, the legacy core SDK's ROA requests (Content-MD5,
no nonce) and its CommonRequest RPC. Refusals carry the documented code and status in the SDK's exception.
Replays and stale timestamps need control the SDKs do not give, so they use the test-side signer of
alibaba_live (written from the reference, independently of the server code) and raw httpx.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alibabacloud_imagesearch20190325 import models as m2019  # type: ignore[import-untyped]
from alibabacloud_imagesearch20201214 import models as m2020  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.exceptions import ClientException  # type: ignore[import-untyped]
from aliyunsdkcore.acs_exception.exceptions import ServerException  # type: ignore[import-untyped]
from aliyunsdkcore.request import CommonRequest  # type: ignore[import-untyped]
from aliyunsdkimagesearch.request.v20190325.AddImageRequest import AddImageRequest  # type: ignore[import-untyped]
from aliyunsdkimagesearch.request.v20190325.SearchImageRequest import (  # type: ignore[import-untyped]
    SearchImageRequest,
)

from alibaba_live import (
    RawRequest,
    client_2019,
    client_v2,
    client_v3,
    legacy_core,
    legacy_request,
    live_server,
    sign_rpc,
    sign_v3,
)
from conftest import Tenant, make_tenant
from imagegen import make_photo
from lookalike.api.alibaba.dispatch import ACTIONS, Context
from lookalike.api.alibaba.request import AcsRequest
from lookalike.api.rest.app import create_app
from lookalike.service.container import Services

SPECIAL = "Ünï 价 + & = / * ~ ' () %20"


@pytest.fixture
def live(services: Services) -> Iterator[tuple[str, Tenant]]:
    tenant = make_tenant(services, "acme", "shop")
    with live_server(services) as endpoint:
        yield endpoint, tenant


def send(raw: RawRequest) -> httpx.Response:
    return httpx.request(raw.method, raw.url, headers=raw.headers, content=raw.body, timeout=30)


def check_exists_v2020(client: Any, product_id: str = SPECIAL) -> Any:
    return client.check_image_exists(
        m2020.CheckImageExistsRequest(instance_name="shop", product_id=product_id, pic_name="p.jpg")
    )


def assert_client_error(exc: pytest.ExceptionInfo[Any], code: str, status: int) -> None:
    assert (exc.value.code, exc.value.status_code) == (code, status), exc.value


# --- every SDK and signing style authenticates ---


def test_v3_client(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    resp = check_exists_v2020(client_v3(endpoint, t.key_id, t.secret))
    assert resp.status_code == 200
    assert resp.body.exists is False and resp.body.request_id


def test_v2_client_rpc_hmac_sha1(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    resp = check_exists_v2020(client_v2(endpoint, t.key_id, t.secret))
    assert resp.status_code == 200 and resp.body.exists is False


@pytest.mark.parametrize("v2", [False, True], ids=["2019-v3", "2019-roa-hmac-sha1"])
def test_2019_client(live: tuple[str, Tenant], v2: bool) -> None:
    endpoint, t = live
    client = client_2019(endpoint, t.key_id, t.secret, v2=v2)
    resp = client.delete_image(m2019.DeleteImageRequest(instance_name="shop", product_id=SPECIAL))
    assert resp.status_code == 200 and resp.body.success is True


def legacy_add(endpoint: str, t: Tenant) -> Any:
    add = AddImageRequest()
    add.set_InstanceName("shop")
    add.set_ProductId(SPECIAL)
    add.set_PicName("red.jpg")
    add.set_PicContent(base64.b64encode(make_photo(320, 240, seed=5)).decode())
    return legacy_core(endpoint, t.key_id, t.secret).do_action_with_exception(legacy_request(add, endpoint))


def test_legacy_core_roa_needs_the_operator_setting(live: tuple[str, Tenant]) -> None:
    # It sends no nonce: refused by default, with the reason.
    endpoint, t = live
    with pytest.raises(ServerException) as refused:
        legacy_add(endpoint, t)
    assert (refused.value.get_error_code(), refused.value.get_http_status()) == ("MissingSignatureNonce", 400)


@pytest.mark.settings(alibaba_roa_allow_no_nonce=True)
def test_legacy_core_roa_add_and_search(live: tuple[str, Tenant]) -> None:
    # Legacy ROA: Content-MD5 over a real picture body, ?RegionId= in the query, no nonce.
    endpoint, t = live
    client = legacy_core(endpoint, t.key_id, t.secret)
    added = json.loads(legacy_add(endpoint, t))
    assert added["Success"] is True
    search = SearchImageRequest()
    search.set_InstanceName("shop")
    search.set_Type("SearchByName")
    search.set_ProductId(SPECIAL)
    search.set_PicName("red.jpg")
    found = json.loads(client.do_action_with_exception(legacy_request(search, endpoint)))
    assert found["Auctions"][0]["ProductId"] == SPECIAL


def test_legacy_core_common_request_rpc(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    req = CommonRequest(domain=endpoint, version="2020-12-14", action_name="CheckImageExists")
    req.set_protocol_type("http")
    req.set_method("POST")
    req.add_query_param("InstanceName", "shop")
    req.add_body_params("ProductId", SPECIAL)
    req.add_body_params("PicName", "p.jpg")
    body = json.loads(legacy_core(endpoint, t.key_id, t.secret).do_action_with_exception(req))
    assert body["Exists"] is False


# --- refusals through the SDKs ---


@pytest.mark.parametrize("factory", [client_v3, client_v2], ids=["v3", "v2"])
def test_wrong_secret(live: tuple[str, Tenant], factory: Any) -> None:
    endpoint, t = live
    with pytest.raises(ClientException) as exc:
        check_exists_v2020(factory(endpoint, t.key_id, t.secret + "x"))
    assert_client_error(exc, "SignatureDoesNotMatch", 400)
    assert "StringToSign" not in str(exc.value) and "ACS3-HMAC-SHA256\n" not in str(exc.value)


@pytest.mark.settings(alibaba_roa_allow_no_nonce=True)
def test_wrong_secret_2019_roa_and_legacy(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    with pytest.raises(ClientException) as exc:
        client_2019(endpoint, t.key_id, "bad", v2=True).delete_image(
            m2019.DeleteImageRequest(instance_name="shop", product_id="p")
        )
    assert_client_error(exc, "SignatureDoesNotMatch", 400)
    search = SearchImageRequest()
    search.set_InstanceName("shop")
    with pytest.raises(ServerException) as legacy:
        legacy_core(endpoint, t.key_id, "bad").do_action_with_exception(legacy_request(search, endpoint))
    assert (legacy.value.get_error_code(), legacy.value.get_http_status()) == ("SignatureDoesNotMatch", 400)


def test_unknown_key(live: tuple[str, Tenant]) -> None:
    endpoint, _ = live
    with pytest.raises(ClientException) as exc:
        check_exists_v2020(client_v3(endpoint, "LTAInobody", "whatever"))
    assert_client_error(exc, "InvalidAccessKeyId.NotFound", 404)


def test_disabled_key(live: tuple[str, Tenant], services: Services) -> None:
    endpoint, t = live
    client = client_v3(endpoint, t.key_id, t.secret)
    check_exists_v2020(client)
    services.accounts.set_access_key_disabled(t.key_id, True)
    with pytest.raises(ClientException) as exc:
        check_exists_v2020(client)
    assert_client_error(exc, "InvalidAccessKeyId.Inactive", 400)
    services.accounts.set_access_key_disabled(t.key_id, False)
    check_exists_v2020(client)


def test_business_error_reaches_the_sdk(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    with pytest.raises(ClientException) as exc:
        client_v3(endpoint, t.key_id, t.secret).search_image_by_name(
            m2020.SearchImageByNameRequest(instance_name="shop", product_id="none", pic_name="none")
        )
    assert_client_error(exc, "PicNotExist", 400)


def test_another_tenants_instance_is_unknown(live: tuple[str, Tenant], services: Services) -> None:
    endpoint, _ = live
    other = make_tenant(services, "globex", "theirs")
    with pytest.raises(ClientException) as exc:
        check_exists_v2020(client_v3(endpoint, other.key_id, other.secret))  # asks for "shop"
    assert_client_error(exc, "InvalidInstance", 400)


# --- replay, freshness, dispatch: raw signed requests ---


def test_replayed_v3_request_is_refused(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    raw = sign_v3(
        endpoint,
        t.key_id,
        t.secret,
        "CheckImageExists",
        form={"InstanceName": "shop", "ProductId": SPECIAL, "PicName": "p"},
    )
    first = send(raw)
    assert first.status_code == 200, first.text
    second = send(raw)
    assert (second.status_code, second.json()["Code"]) == (400, "SignatureNonceUsed")


def test_replayed_rpc_request_is_refused(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    raw = sign_rpc(
        endpoint,
        t.key_id,
        t.secret,
        "CheckImageExists",
        form={"InstanceName": "shop", "ProductId": "p", "PicName": "p"},
    )
    assert send(raw).status_code == 200
    assert send(raw).json()["Code"] == "SignatureNonceUsed"


@pytest.mark.parametrize("minutes", [-20, 20])
def test_stale_timestamp(live: tuple[str, Tenant], minutes: int) -> None:
    endpoint, t = live
    when = datetime.now(UTC) + timedelta(minutes=minutes)
    for raw in (
        sign_v3(endpoint, t.key_id, t.secret, "CheckImageExists", form={"InstanceName": "shop"}, when=when),
        sign_rpc(endpoint, t.key_id, t.secret, "CheckImageExists", form={"InstanceName": "shop"}, when=when),
    ):
        resp = send(raw)
        assert (resp.status_code, resp.json()["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_unknown_action(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    resp = send(sign_v3(endpoint, t.key_id, t.secret, "NoSuchAction"))
    assert (resp.status_code, resp.json()["Code"]) == (404, "InvalidAction.NotFound")
    resp = send(sign_v3(endpoint, t.key_id, t.secret, "CheckImageExists", version="1999-01-01"))
    assert resp.json()["Code"] == "InvalidAction.NotFound"
    req = CommonRequest(domain=endpoint, version="2020-12-14", action_name="NoSuchAction")
    req.set_protocol_type("http")
    with pytest.raises(ServerException) as legacy:
        legacy_core(endpoint, t.key_id, t.secret).do_action_with_exception(req)
    assert legacy.value.get_error_code() == "InvalidAction.NotFound"


def test_unsigned_request(live: tuple[str, Tenant]) -> None:
    endpoint, _ = live
    resp = httpx.post(
        f"http://{endpoint}/", headers={"x-acs-action": "Detail", "x-acs-version": "2020-12-14"}
    )
    assert (resp.status_code, resp.json()["Code"]) == (400, "MissingAccessKeyId")
    assert set(resp.json()) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert resp.headers["x-request-id"].replace("-", "") == resp.json()["RequestId"].replace("-", "")


def test_get_on_root(live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    browser = httpx.get(f"http://{endpoint}/")
    assert browser.status_code == 200 and "Alibaba" in browser.json()["Message"]
    signed = send(
        sign_v3(
            endpoint,
            t.key_id,
            t.secret,
            "CheckImageExists",
            method="GET",
            query={"InstanceName": "shop", "ProductId": "p", "PicName": "p"},
        )
    )
    assert signed.status_code == 200, signed.text


def test_handler_crash_is_internal_error(live: tuple[str, Tenant]) -> None:
    endpoint, t = live

    def boom(ctx: Context, req: AcsRequest) -> dict[str, Any]:
        raise RuntimeError("/secret/path exploded")

    key = ("test-0000", "Boom")
    ACTIONS[key] = boom
    try:
        resp = send(sign_v3(endpoint, t.key_id, t.secret, "Boom", version="test-0000"))
    finally:
        del ACTIONS[key]
    assert (resp.status_code, resp.json()["Code"]) == (500, "InternalError")
    assert "/secret/path" not in resp.text


def test_alibaba_routes_are_not_in_openapi(services: Services) -> None:
    paths = create_app(services, close_on_shutdown=False).openapi()["paths"]
    assert "/" not in paths and not any(p.startswith("/v2/image") for p in paths)
