"""Typed requests of the native API (lookalike.api.rest.requests): /openapi.json describes every body, the
description is the model that validates, and a body is validated as before the models (loose values
accepted, the documented error code and body for a bad one)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image

from conftest import Tenant
from lookalike.api.app import create_app
from lookalike.api.rest.request_body import RequestBody
from lookalike.api.rest.requests import NoFields
from lookalike.api.rest.routers import ROUTERS as REST_ROUTERS
from lookalike.service.container import Services

WRITES = ("post", "put", "patch")
ENCODINGS = {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
# Actions named entirely by their path: they read no body; their requestBody is NoFields' empty object.
BODYLESS = {
    ("POST", "/v1/admin/accounts/{account_id}/keys"),
    ("POST", "/v1/admin/keys/{key_id}/disable"),
    ("POST", "/v1/admin/catalogue/reload"),
    ("POST", "/v1/admin/lifecycle/sweep"),
}


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, close_on_shutdown=False)) as test_client:
        yield test_client


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def body_model(route: APIRoute) -> type[RequestBody] | None:
    """The request model a route's dependencies read its body into, if any."""
    for dependency in route.dependant.dependencies:
        owner = getattr(dependency.call, "__self__", None)
        if isinstance(owner, type) and issubclass(owner, RequestBody):
            return owner
    return None


def without_nulls(schema: Any) -> Any:
    """The schema as /openapi.json serves it: FastAPI leaves out members whose value is null."""
    if isinstance(schema, dict):
        return {k: without_nulls(v) for k, v in schema.items() if v is not None}
    if isinstance(schema, list):
        return [without_nulls(v) for v in schema]
    return schema


def test_every_write_of_the_rest_api_has_a_request_body_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    writes = [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
        if method in WRITES
    ]
    assert len(writes) > 20
    for method, path, operation in writes:
        content = operation.get("requestBody", {}).get("content", {})
        assert set(content) == {
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        }, (
            method,
            path,
        )
        for media, described in content.items():
            if (method, path) in BODYLESS:
                assert described["schema"]["properties"] == {}, (method, path, media)
                assert operation["requestBody"]["required"] is False
            else:
                assert described["schema"]["properties"], (method, path, media)


def test_the_schema_is_the_model_that_validates(client: TestClient) -> None:
    """Each write's requestBody is generated from the model its route validates with, and the routes named
    BODYLESS are exactly those without a model."""
    spec = client.get("/openapi.json").json()
    routes = [
        (method, route)
        for router in REST_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
        if method.lower() in WRITES
    ]
    without_model: set[tuple[str, str]] = set()
    for method, route in routes:
        model = body_model(route)
        if model is None:
            without_model.add((method, route.path))
            continue
        content = spec["paths"][route.path][method.lower()]["requestBody"]["content"]
        assert content["multipart/form-data"]["schema"] == without_nulls(model.model_json_schema()), (
            route.path
        )
    assert without_model == BODYLESS
    for method, path in BODYLESS:  # documented by the model of no fields, which they need not read
        content = spec["paths"][path][method.lower()]["requestBody"]["content"]
        assert content["multipart/form-data"]["schema"] == without_nulls(NoFields.model_json_schema())


def test_a_picture_is_a_file_part_in_multipart_and_base64_text_elsewhere(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/instances/{name}/images"]["post"]["requestBody"]["content"]
    multipart = content["multipart/form-data"]["schema"]["properties"]
    as_json = content["application/json"]["schema"]["properties"]
    assert {"type": "string", "format": "binary"} in multipart["picture"]["anyOf"]
    assert "picture" not in as_json
    assert as_json["pic_content"]["contentEncoding"] == "base64"
    # The attribute slots and the documented defaults come from the model.
    assert as_json["int_attr4"]["anyOf"][0]["type"] == "integer" and "str_attr4" in as_json
    assert as_json["crop"]["default"] is True
    search = spec["paths"]["/v1/instances/{name}/search/picture"]["post"]["requestBody"]["content"]
    assert search["application/json"]["schema"]["properties"]["num"]["default"] == 10


def error(response: Any) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}, body  # the native error shape, never FastAPI's 422
    return response.status_code, body["code"]


def test_a_bad_field_is_refused_with_its_documented_code(client: TestClient, tenant: Tenant) -> None:
    creds = (tenant.key_id, tenant.secret)
    picture = base64.b64encode(png()).decode()
    images = "/v1/instances/shop/images"
    cases: list[tuple[str, dict[str, Any], tuple[int, str]]] = [
        (images, {"json": {"product_id": "p", "pic_name": "n"}}, (400, "NoSpecifiedPicContent")),
        (images, {"json": {"pic_content": "not base64!"}}, (400, "InvalidPicContent")),
        (images, {"json": {"pic_content": picture, "category_id": "x"}}, (400, "InvalidCategory")),
        (images, {"json": {"pic_content": picture, "int_attr2": 5.5}}, (400, "InvalidIntAttr2")),
        (images, {"json": {"pic_content": picture, "crop": "maybe"}}, (400, "InvalidParameter")),
        ("/v1/instances/shop/search/filter", {"json": {"num": "ten"}}, (400, "InvalidNumParameter")),
        ("/v1/instances/shop/search/filter", {"data": {"start": "1e3"}}, (400, "InvalidStartParameter")),
        ("/v1/instances/shop/search/filter", {"json": {"num": True}}, (400, "InvalidNumParameter")),
        ("/v1/orders", {"json": {"kind": "buy", "max_total": 25.5}}, (400, "InvalidAmount")),
        ("/v1/billing/quote", {"json": {"kind": "buy", "count": [1]}}, (400, "InvalidParameter")),
        # Of two bad fields, the one the route read first is named (here the picture, before the category).
        (images, {"json": {"category_id": "x"}}, (400, "NoSpecifiedPicContent")),
    ]
    for path, kwargs, expected in cases:
        response = client.post(path, auth=creds, **kwargs)
        assert error(response) == expected, (path, kwargs, response.text)
    # Authentication still comes first: a bad body from a stranger is a 401.
    assert error(client.post(images, json={"num": "x"})) == (401, "MissingCredentials")


def test_loose_values_are_accepted_as_before(client: TestClient, tenant: Tenant) -> None:
    creds = (tenant.key_id, tenant.secret)
    added = client.post(
        "/v1/instances/shop/images",
        auth=creds,
        data={"product_id": "p1", "pic_name": "a", "int_attr": "7", "crop": "no"},
        files={"picture": ("a.png", png())},
    )
    assert added.status_code == 200, added.text
    # Numbers as text, "yes" for true, the query filling what the body left out, JSON numbers for text.
    found = client.post(
        "/v1/instances/shop/search/filter?num=5",
        auth=creds,
        json={"filter": "int_attr = 7", "start": "0", "distinct_product_id": "yes"},
    )
    assert found.status_code == 200, found.text
    assert [h["product_id"] for h in found.json()["results"]] == ["p1"]
    exists = client.post(
        "/v1/instances/shop/images/exists", auth=creds, json={"product_id": "p1", "pic_name": "a"}
    )
    assert exists.json()["exists"] is True
    updated = client.post(
        "/v1/instances/shop/images/update",
        auth=creds,
        json={"product_id": "p1", "pic_name": "a", "str_attr": 42, "int_attr2": 3.0},
    )
    assert updated.status_code == 200, updated.text
    again = client.post(
        "/v1/instances/shop/images/exists", auth=creds, data={"product_id": "p1", "pic_name": "a"}
    )
    image = again.json()["image"]
    assert (image["str_attr"], image["int_attr"], image["int_attr2"]) == ("42", 7, 3)


def test_queries_are_documented_as_parameters(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    def query_names(path: str) -> set[str]:
        return {p["name"] for p in spec["paths"][path]["get"]["parameters"] if p["in"] == "query"}

    assert query_names("/v1/events") == {"after"}
    assert query_names("/v1/instances/{name}/duplicates/{report_id}/groups") == {"page", "page_size"}
    assert query_names("/v1/exports/{task_id}") == {"expires", "signature"}


def test_a_bad_query_keeps_the_native_error_shape(client: TestClient, tenant: Tenant) -> None:
    creds = (tenant.key_id, tenant.secret)
    response = client.get("/v1/events?after=soon", auth=creds)
    assert error(response) == (400, "InvalidParameter")
    assert response.json()["message"].startswith("query.after: ")
    groups = client.get("/v1/instances/shop/duplicates/1/groups?page=0", auth=creds)
    assert error(groups) == (400, "InvalidParameter")
    assert groups.json()["message"] == "page must be a positive whole number."
