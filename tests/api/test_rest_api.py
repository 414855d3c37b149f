"""Native REST API over HTTP (in-process ASGI), including the table of bad inputs."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import Tenant, make_tenant
from imagegen import incompressible_png, png_bomb
from lookalike.api.app import create_app
from lookalike.service.container import Services
from photos import encode, load_photo


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, close_on_shutdown=False)) as test_client:
        yield test_client


@pytest.fixture
def coffee() -> bytes:
    return encode(load_photo("coffee"))


def auth(tenant: Tenant) -> tuple[str, str]:
    return (tenant.key_id, tenant.secret)


def add(client: TestClient, tenant: Tenant, product: str, pic: str, data: bytes, **fields: Any) -> Any:
    return client.post(
        f"/v1/instances/{tenant.instance.name}/images",
        auth=auth(tenant),
        data={"product_id": product, "pic_name": pic, **{k: str(v) for k, v in fields.items()}},
        files={"picture": ("x.jpg", data)},
    )


def test_add_search_and_json_base64_upload(client: TestClient, tenant: Tenant, coffee: bytes) -> None:
    response = add(
        client, tenant, "sku-1", "front.jpg", coffee, int_attr=5, str_attr="红色", custom_content="{'a':1}"
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] is True
    rocket = encode(load_photo("rocket"))
    response = client.post(
        "/v1/instances/shop/images",
        auth=auth(tenant),
        json={
            "product_id": "sku/2 ä&%",
            "pic_name": "side view.png",
            "pic_content": base64.b64encode(rocket).decode(),
        },
    )
    assert response.status_code == 200, response.text
    response = client.post(
        "/v1/instances/shop/search/picture",
        auth=auth(tenant),
        files={"picture": ("q.jpg", coffee)},
        data={"num": "5"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    top = body["results"][0]
    assert (top["product_id"], top["pic_name"], top["str_attr"], top["int_attr"]) == (
        "sku-1",
        "front.jpg",
        "红色",
        5,
    )
    assert top["score"] == pytest.approx(1.0, abs=1e-3)
    assert body["matched"] == 2 and body["returned"] == 2
    assert body["pic_info"]["all_categories"]
    response = client.post(
        "/v1/instances/shop/search/filter", auth=auth(tenant), json={"filter": 'str_attr = "红色"'}
    )
    assert [r["pic_name"] for r in response.json()["results"]] == ["front.jpg"]
    response = client.post(
        "/v1/instances/shop/images/exists",
        auth=auth(tenant),
        json={"product_id": "sku/2 ä&%", "pic_name": "side view.png"},
    )
    assert response.json()["exists"] is True
    response = client.get("/v1/instances/shop", auth=auth(tenant))
    assert response.json()["total_count"] == 2
    response = client.post(
        "/v1/instances/shop/images/delete", auth=auth(tenant), json={"product_id": "sku-1"}
    )
    assert response.json() == {"deleted": 1, "pic_names": ["front.jpg"]}
    assert client.get("/v1/health").json() == {"status": "ok"}
    assert client.get("/openapi.json").status_code == 200


def test_tenants_see_only_their_instances(client: TestClient, services: Services, tenant: Tenant) -> None:
    other = make_tenant(services, "rival", "rival-shop")
    listed = client.get("/v1/instances", auth=auth(other)).json()["instances"]
    assert [i["name"] for i in listed] == ["rival-shop"]
    mine = client.get("/v1/instances/shop", auth=auth(tenant))
    theirs = client.get("/v1/instances/shop", auth=auth(other))
    unknown = client.get("/v1/instances/nope", auth=auth(other))
    assert mine.status_code == 200
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["code"] == unknown.json()["code"] == "InvalidInstance"


def _bad_input_cases(coffee: bytes) -> list[tuple[str, str, dict[str, Any], int, str]]:
    truncated = coffee[: len(coffee) // 2]
    tiny = encode(Image.new("RGB", (50, 50), (10, 200, 30)), "PNG")
    huge = incompressible_png(5 * 1024 * 1024)
    assert len(huge) > 4 * 1024 * 1024
    pic = "/v1/instances/shop/search/picture"
    return [
        ("truncated JPEG", pic, {"files": {"picture": ("a.jpg", truncated)}}, 400, "InvalidPicContent"),
        ("0-byte body", pic, {"files": {"picture": ("a.jpg", b"")}}, 400, "NoSpecifiedPicContent"),
        ("5 MB image", pic, {"files": {"picture": ("a.png", huge)}}, 413, "InvalidPicContent"),
        (
            "PNG bomb",
            pic,
            {"files": {"picture": ("a.png", png_bomb(20000, 20000))}},
            400,
            "UnsupportedPicPixels",
        ),
        ("50x50 image", pic, {"files": {"picture": ("a.png", tiny)}}, 400, "UnsupportedPicPixels"),
        (
            "text named .jpg",
            pic,
            {"files": {"picture": ("a.jpg", b"hello, I am not a picture\n" * 20)}},
            415,
            "UnsupportedPicFormat",
        ),
        (
            "bad Region",
            pic,
            {"files": {"picture": ("a.jpg", coffee)}, "data": {"region": "10,5,0,100"}},
            400,
            "InvalidRegion",
        ),
        (
            "Region outside",
            pic,
            {"files": {"picture": ("a.jpg", coffee)}, "data": {"region": "0,9000,0,100"}},
            400,
            "InvalidRegion",
        ),
        (
            "Num=101",
            pic,
            {"files": {"picture": ("a.jpg", coffee)}, "data": {"num": "101"}},
            400,
            "OverflowMaxReturnNum",
        ),
        (
            "Start=500",
            pic,
            {"files": {"picture": ("a.jpg", coffee)}, "data": {"start": "500"}},
            400,
            "InvalidStartParameter",
        ),
        (
            "Num not a number",
            pic,
            {"files": {"picture": ("a.jpg", coffee)}, "data": {"num": "ten"}},
            400,
            "InvalidNumParameter",
        ),
        (
            "bad filter",
            pic,
            {"files": {"picture": ("a.jpg", coffee)}, "data": {"filter": "int_attr >> 3"}},
            400,
            "InvalidFilterClause",
        ),
        ("bad base64", pic, {"json": {"pic_content": "%%%not base64"}}, 400, "InvalidPicContent"),
        ("no picture", pic, {"json": {"num": 3}}, 400, "NoSpecifiedPicContent"),
        (
            "unknown instance",
            "/v1/instances/nope/search/picture",
            {"files": {"picture": ("a.jpg", coffee)}},
            404,
            "InvalidInstance",
        ),
        (
            "bad JSON",
            "/v1/instances/shop/search/name",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "InvalidParameter",
        ),
        (
            "add without ProductId",
            "/v1/instances/shop/images",
            {"files": {"picture": ("a.jpg", coffee)}, "data": {"pic_name": "x"}},
            400,
            "NoSpecifiedProductId",
        ),
        (
            "bad IntAttr",
            "/v1/instances/shop/images",
            {
                "files": {"picture": ("a.jpg", coffee)},
                "data": {"product_id": "p", "pic_name": "x", "int_attr": "1.5"},
            },
            400,
            "InvalidIntAttr",
        ),
    ]


def test_bad_inputs_get_specific_errors_and_the_server_stays_healthy(
    client: TestClient, services: Services, tenant: Tenant, coffee: bytes
) -> None:
    assert add(client, tenant, "keep", "me", coffee).status_code == 200
    other = make_tenant(services, "rival", "rival-shop")
    cases = _bad_input_cases(coffee)
    cases.append(
        (
            "other tenant's instance",
            "/v1/instances/rival-shop/search/picture",
            {"files": {"picture": ("a.jpg", coffee)}},
            404,
            "InvalidInstance",
        )
    )
    for label, path, kwargs, status, code in cases:
        response = client.post(path, auth=auth(tenant), **kwargs)
        assert (response.status_code, response.json().get("code")) == (status, code), (
            f"{label}: {response.text[:300]}"
        )
        assert response.json()["request_id"], label
    # wrong key, wrong secret, no credentials
    for credentials, code in [
        (("LTAInope", "x"), "InvalidAccessKeyId.NotFound"),
        ((tenant.key_id, "wrong"), "SignatureDoesNotMatch"),
        (None, "MissingCredentials"),
    ]:
        response = client.post(
            "/v1/instances/shop/search/picture", auth=credentials, files={"picture": ("a.jpg", coffee)}
        )
        assert (response.status_code, response.json()["code"]) == (401, code)
    del other
    # Nothing was lost and the server still answers.
    response = client.post(
        "/v1/instances/shop/search/picture", auth=auth(tenant), files={"picture": ("a.jpg", coffee)}
    )
    assert response.status_code == 200 and response.json()["results"][0]["pic_name"] == "me"


def test_rate_limit_answers_429_with_retry_after(
    client: TestClient, services: Services, coffee: bytes
) -> None:
    account, key = services.accounts.create_account("limited")
    services.billing.orders.grant(account.id, "slow", capacity=1000, qps=1)
    creds = (key.access_key_id, key.access_key_secret)
    first = client.post("/v1/instances/slow/search/picture", auth=creds, files={"picture": ("a.jpg", coffee)})
    second = client.post(
        "/v1/instances/slow/search/picture", auth=creds, files={"picture": ("a.jpg", coffee)}
    )
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["code"] == "DeniedRequest"
    assert int(second.headers["Retry-After"]) >= 1


def test_admin_endpoints_need_the_operator(client: TestClient, services: Services, tenant: Tenant) -> None:
    response = client.post("/v1/admin/accounts", auth=auth(tenant), json={"name": "x"})
    assert (response.status_code, response.json()["code"]) == (403, "NoPermission")
    admin = services.accounts.create_access_key(services.accounts.list_accounts()[0].id)
    creds = (admin.access_key_id, admin.access_key_secret)
    created = client.post("/v1/admin/accounts", auth=creds, json={"name": "newco"}).json()
    response = client.post(
        "/v1/admin/instances",
        auth=creds,
        json={"name": "newco-shop", "account_id": created["account_id"], "capacity": 100000, "qps": 1},
    )
    assert response.status_code == 200, response.text
    listed = client.get("/v1/instances", auth=(created["access_key_id"], created["access_key_secret"])).json()
    assert [i["name"] for i in listed["instances"]] == ["newco-shop"]
    duplicate = client.post(
        "/v1/admin/instances",
        auth=creds,
        json={"name": "newco-shop", "account_id": created["account_id"], "capacity": 1, "qps": 1},
    )
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "InstanceAlreadyExists")
    too_long = client.post(
        "/v1/admin/instances",
        auth=creds,
        json={"name": "x" * 21, "account_id": created["account_id"], "capacity": 1, "qps": 1},
    )
    assert (too_long.status_code, too_long.json()["code"]) == (400, "InvalidInstanceName")
