"""Generated hostile requests against a real `lookalike serve` on loopback (issue 12): every operation of
the OpenAPI document and every signed Alibaba action, with values chosen to break parsers (huge and
non-finite numbers, fractions, lone surrogates, deep nesting, wrong types, odd content types, garbage
bodies). The bar: no response is a 5xx, and the server logs no traceback.

Hypothesis draws the requests from a fixed seed (derandomize) so CI sees the same few thousand requests
every run; `LOOKALIKE_FUZZ_EXAMPLES` raises the count for a longer local hunt.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from alibaba_live import sign_roa, sign_rpc
from server import ServerProcess, cli_json

pytestmark = pytest.mark.sqlite_only  # parsing and validation happen before any store is reached

EXAMPLES = int(os.environ.get("LOOKALIKE_FUZZ_EXAMPLES", "1200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


def tiny_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PNG = tiny_png()

# Raw JSON number tokens that json.dumps cannot produce.
RAW_NUMBERS = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400", "5.7", "-0.0", "1" + "0" * 30, "9" * 5000]
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\ud800",
        "\udfff",
        "a" * 5000,
        "'; DROP TABLE images; --",
        'str_attr = "x" OR 1=1',
        "int_attr > 9999999999999999999999",
        "((((((((((",
        "../../etc/passwd",
        "%00",
        "NaN",
        "1e400",
        "-1",
        "0",
        "true",
        "商品",
        "\u202e",
        "0,0,0,0",
        "10,5,10,5",
        "1,2,3",
    ]
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**19]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40), HOSTILE_TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=8,
)
REST_FIELDS = [
    "product_id",
    "pic_name",
    "pic_content",
    "num",
    "start",
    "category_id",
    "filter",
    "region",
    "crop",
    "custom_content",
    "int_attr",
    "int_attr2",
    "str_attr",
    "str_attr4",
    "score_threshold",
    "distinct_product_id",
    "text",
    "name",
    "capacity",
    "qps",
    "package",
    "package_id",
    "unit",
    "count",
    "amount",
    "amount_minor",
    "max_total",
    "enabled",
    "account_id",
    "reference",
    "monthly",
    "yearly",
    "seats",
    "days",
    "seconds",
    "primary_pic_content",
    "secondary_pic_content",
    "is_delete_by_filter",
]
RPC_FIELDS = [
    "InstanceName",
    "ProductId",
    "PicName",
    "PicContent",
    "Num",
    "Start",
    "CategoryId",
    "Filter",
    "Region",
    "Crop",
    "CustomContent",
    "IntAttr",
    "StrAttr",
    "IntAttr4",
    "StrAttr4",
    "ScoreThreshold",
    "DistinctProductId",
    "Text",
    "BucketName",
    "Path",
    "CallbackAddress",
    "Id",
    "PageNumber",
    "PageSize",
    "PrimaryPicContent",
    "SecondaryPicContent",
    "IsDeleteByFilter",
    "Type",
    "Product",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fuzz")
    data, bucket = root / "data", root / "bucket"
    (bucket / "batch").mkdir(parents=True)
    (bucket / "batch" / "increment.meta").write_text('{"OperationType": "DELETE", "ProductId": "x"}\n')
    process = ServerProcess(data, model_cache, root / "server.log", extra_args=("--bucket", f"b@*={bucket}"))
    process.start()
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
        "1000",
    )
    spec = httpx.get(f"{process.url}/openapi.json", timeout=30).json()
    operations = sorted(
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )
    failures: list[str] = []
    world_state: dict[str, Any] = {
        "server": process,
        "tenant": tenant,
        "operations": operations,
        "failures": failures,
    }
    yield world_state
    process.stop()
    print(f"fuzz: {world_state.get('sent', 0)} requests, {len(failures)} 5xx")
    log = (root / "server.log").read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:4000]


def check(world: dict[str, Any], response: httpx.Response, what: str) -> None:
    world["sent"] = world.get("sent", 0) + 1
    if response.status_code >= 500:
        world["failures"].append(f"{response.status_code} {what[:300]!r} -> {response.text[:300]}")
    assert response.status_code < 500, world["failures"][-1]


def json_text(fields: dict[str, Any], raw: dict[str, str]) -> str:
    """A JSON object of `fields`, plus `raw` members whose values are written verbatim (NaN, 1e400...)."""
    parts = [json.dumps(k) + ": " + json.dumps(v) for k, v in fields.items()]
    parts += [json.dumps(k) + ": " + v for k, v in raw.items()]
    return "{" + ", ".join(parts) + "}"


@st.composite
def rest_requests(
    draw: st.DrawFn, operations: list[tuple[str, str]]
) -> tuple[str, str, dict[str, str], bytes]:
    method, template = draw(st.sampled_from(operations))
    path = re.sub(
        r"\{[^}]+\}",
        lambda _m: draw(st.sampled_from(["shop", "nope", "%00", "..", "a" * 300, "%F0%9F%92%A9", "1", "-1"])),
        template,
    )
    query = draw(
        st.dictionaries(
            st.sampled_from([*REST_FIELDS, "expires", "signature"]),
            st.one_of(HOSTILE_TEXT, NUMBERS.map(str)),
            max_size=3,
        )
    )
    shape = draw(st.sampled_from(["json", "json", "json", "raw-json", "form", "garbage", "none", "deep"]))
    fields = draw(st.dictionaries(st.sampled_from(REST_FIELDS), JSON_VALUES, max_size=5))
    if draw(st.booleans()):
        fields["pic_content"] = PNG
    headers = {"Idempotency-Key": draw(st.sampled_from(["k1", "", "x" * 300, os.urandom(4).hex()]))}
    if shape == "json":
        body = json.dumps(fields).encode()
        headers["content-type"] = "application/json"
    elif shape == "raw-json":
        raw = {
            draw(st.sampled_from(REST_FIELDS)): draw(
                st.sampled_from([*RAW_NUMBERS, '"\\ud800"', '"\\udfff"'])
            )
        }
        body = json_text(fields, raw).encode()
        headers["content-type"] = draw(st.sampled_from(["application/json", "", "text/plain"]))
    elif shape == "form":
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8", "surrogatepass")
        headers["content-type"] = draw(
            st.sampled_from(
                [
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                    "multipart/form-data; boundary=x",
                ]
            )
        )
    elif shape == "garbage":
        body = draw(st.binary(max_size=300))
        headers["content-type"] = draw(
            st.sampled_from(["application/json", "image/png", "multipart/form-data"])
        )
    elif shape == "deep":
        body = draw(st.sampled_from([b"[" * 100_000, b'{"a":' * 5000, b'"' + b"\\" * 10_000]))
        headers["content-type"] = "application/json"
    else:
        body = b""
    if query:
        path += "?" + str(httpx.QueryParams(_encodable(query)))
    return method, path, headers, body


def test_rest_api_never_answers_5xx(world: dict[str, Any]) -> None:
    tenant = world["tenant"]
    url = world["server"].url
    with httpx.Client(base_url=url, timeout=60) as client:

        @FUZZ
        @given(
            request=rest_requests(world["operations"]),
            auth=st.sampled_from(["tenant", "tenant", "none", "bad"]),
        )
        def run(request: tuple[str, str, dict[str, str], bytes], auth: str) -> None:
            method, path, headers, body = request
            credentials = {
                "tenant": (tenant["access_key_id"], tenant["access_key_secret"]),
                "bad": (tenant["access_key_id"], "wrong"),
                "none": None,
            }[auth]
            response = client.request(method, path, headers=headers, content=body, auth=credentials)
            check(world, response, f"{method} {path} {headers} {body[:200]!r}")

        run()


@st.composite
def rpc_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    version, action = draw(
        st.sampled_from(
            [
                ("2020-12-14", a)
                for a in [
                    "AddImage",
                    "CheckImageExists",
                    "CompareSimilarByImage",
                    "DeleteImage",
                    "Detail",
                    "DumpMeta",
                    "DumpMetaList",
                    "IncreaseInstance",
                    "IncreaseList",
                    "SearchImageByFilter",
                    "SearchImageByName",
                    "SearchImageByPic",
                    "SearchImageByText",
                    "UpdateImage",
                    "NoSuchAction",
                ]
            ]
            + [("2019-12-19", "AuthorizeFileUpload"), ("1999-01-01", "AddImage")]
        )
    )
    form = draw(
        st.dictionaries(
            st.sampled_from(RPC_FIELDS),
            st.one_of(HOSTILE_TEXT, NUMBERS.map(str), st.text(max_size=30)),
            max_size=6,
        )
    )
    if draw(st.integers(0, 3)):
        form["InstanceName"] = "shop"
    if draw(st.integers(0, 4)) == 0:
        form["PicContent"] = PNG
    return version, action, form


def _encodable(form: dict[str, str]) -> dict[str, str]:
    # The signing helper percent-encodes UTF-8: lone surrogates go as their CESU bytes, as a broken client
    # would send them.
    return {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for k, v in form.items()}


def test_signed_alibaba_actions_never_answer_5xx(world: dict[str, Any]) -> None:
    tenant = world["tenant"]
    endpoint = world["server"].url.removeprefix("http://")
    key, secret = tenant["access_key_id"], tenant["access_key_secret"]
    with httpx.Client(timeout=60) as client:

        @FUZZ
        @given(
            request=rpc_requests(), tamper=st.sampled_from(["none", "none", "none", "signature", "header"])
        )
        def run(request: tuple[str, str, dict[str, str]], tamper: str) -> None:
            version, action, form = request
            raw = sign_rpc(
                endpoint,
                key,
                secret,
                action,
                version=version,
                form=_encodable(form),
                dispatch_in_body=bool(len(form) % 2),
            )
            headers = dict(raw.headers)
            url = raw.url
            if tamper == "signature":
                url = url.replace("Signature=", "Signature=x")
            elif tamper == "header":
                headers["x-acs-action"] = "DeleteImage"
            response = client.post(url, headers=headers, content=raw.body)
            check(world, response, f"RPC {version} {action} {form}")

        run()


def test_signed_roa_requests_never_answer_5xx(world: dict[str, Any]) -> None:
    tenant = world["tenant"]
    endpoint = world["server"].url.removeprefix("http://")
    with httpx.Client(timeout=60) as client:

        @settings(FUZZ, max_examples=max(50, EXAMPLES // 4))
        @given(
            path=st.sampled_from(["/v2/image/add", "/v2/image/search", "/v2/image/delete", "/v2/image/none"]),
            form=st.dictionaries(
                st.sampled_from(
                    [
                        "ProductId",
                        "PicName",
                        "PicContent",
                        "Num",
                        "Start",
                        "CategoryId",
                        "Filter",
                        "IntAttr",
                        "StrAttr",
                        "Region",
                        "Crop",
                        "CustomContent",
                        "InstanceName",
                    ]
                ),
                st.one_of(HOSTILE_TEXT, NUMBERS.map(str)),
                max_size=6,
            ),
        )
        def run(path: str, form: dict[str, str]) -> None:
            form = {"InstanceName": "shop", **form} if len(form) % 4 else form
            if "PicContent" in form and len(form) % 2:
                form["PicContent"] = PNG
            raw = sign_roa(
                endpoint, tenant["access_key_id"], tenant["access_key_secret"], path, _encodable(form)
            )
            response = client.post(raw.url, headers=raw.headers, content=raw.body)
            check(world, response, f"ROA {path} {form}")

        run()
