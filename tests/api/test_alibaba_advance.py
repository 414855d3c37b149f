"""The SDK's `*_advance` methods against Lookalike: AuthorizeFileUpload on the API port, the OSS PostObject
on Lookalike's own HTTPS upload listener, then PicContent as a URL into that store (reference §6).

The client needs exactly what the reference documents: `client._open_platform_endpoint` (the Config field is
ignored by tea-openapi) and TLS trust for the upload listener (`ignore_ssl=True`, or `ca=` its certificate).
"""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_imagesearch20201214 import models
from alibabacloud_tea_openapi import utils_models as open_api_util_models
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

from alibaba_live import REGION, client_v3, live_server
from conftest import Tenant, make_settings, make_tenant
from lookalike.api.alibaba.upload import UploadListener, ensure_tls_files
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.service.container import Services
from lookalike.service.uploads import UploadStore
from photos import EDITS, encode, load_photo

TTL_S = 2 * 3600.0

# The upload listener's certificate is self-signed; these tests skip verification on purpose (one trusts it).
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@cache
def jpeg(name: str) -> bytes:
    return encode(load_photo(name))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def upload_sock() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def settings(
    tmp_path: Path, model_cache: Path, upload_sock: socket.socket, database_url: str | None
) -> Settings:
    port = upload_sock.getsockname()[1]
    # Loopback form of the reference's trick: Bucket "127" + Endpoint "0.0.1:<port>" -> https://127.0.0.1:<port>/
    return make_settings(
        tmp_path / "data", database_url, model_cache_dir=model_cache, upload_public_host=f"127.0.0.1:{port}"
    )


@pytest.fixture
def tls(settings: Settings) -> tuple[Path, Path]:
    return ensure_tls_files(settings.data_dir, settings.upload_public_host)


@pytest.fixture
def uploads(services: Services, upload_sock: socket.socket, tls: tuple[Path, Path]) -> Iterator[str]:
    listener = UploadListener(services.uploads, certfile=tls[0], keyfile=tls[1], sock=upload_sock)
    address = listener.start()
    yield address
    listener.stop()


@pytest.fixture
def endpoint(services: Services, uploads: str) -> Iterator[str]:
    with live_server(services) as address:
        yield address


def advance_client(endpoint: str, tenant: Tenant) -> Any:
    client = client_v3(endpoint, tenant.key_id, tenant.secret)
    client._open_platform_endpoint = endpoint  # the only override the SDK honours (reference §6)
    return client


def trusting() -> RuntimeOptions:
    return RuntimeOptions(ignore_ssl=True, read_timeout=60_000, connect_timeout=10_000)


def sdk_error(exc: TeaException) -> tuple[str | None, int | None]:
    status = getattr(exc, "status_code", None)
    if status is None and isinstance(exc.data, dict):
        status = exc.data.get("statusCode")
    return exc.code, status


def authorize(endpoint: str, tenant: Tenant) -> dict[str, Any]:
    """AuthorizeFileUpload exactly as the SDK's Advance methods send it (capture J)."""
    auth = OpenApiClient(
        open_api_util_models.Config(
            access_key_id=tenant.key_id,
            access_key_secret=tenant.secret,
            endpoint=endpoint,
            protocol="http",
            region_id=REGION,
        )
    )
    params = open_api_util_models.Params(
        action="AuthorizeFileUpload",
        version="2019-12-19",
        protocol="HTTPS",
        pathname="/",
        method="GET",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    request = open_api_util_models.OpenApiRequest(query={"Product": "ImageSearch", "RegionId": REGION})
    body: dict[str, Any] = auth.call_api(params, request, trusting())["body"]
    return body


def post_object(uploads: str, fields: dict[str, str], data: bytes) -> httpx.Response:
    """The OSS PostObject as the SDK sends it (capture L), over HTTPS without verification."""
    form = {**fields, "success_action_status": "201"}
    with httpx.Client(verify=False, timeout=30) as http:
        return http.post(f"https://{uploads}/", data=form, files={"file": (fields.get("key", "f"), data)})


def grant_fields(grant: dict[str, Any]) -> dict[str, str]:
    return {
        "OSSAccessKeyId": grant["AccessKeyId"],
        "policy": grant["EncodedPolicy"],
        "Signature": grant["Signature"],
        "key": grant["ObjectKey"],
        "host": grant["Endpoint"],
    }


def pic_url(grant: dict[str, Any]) -> str:
    return f"http://{grant['Bucket']}.{grant['Endpoint']}/{grant['ObjectKey']}"


def search_by_url(endpoint: str, tenant: Tenant, url: str) -> Any:
    client = client_v3(endpoint, tenant.key_id, tenant.secret)
    return client.search_image_by_pic(
        models.SearchImageByPicRequest(instance_name=tenant.instance.name, pic_content=url, num=3)
    )


def expect_invalid_url(endpoint: str, tenant: Tenant, url: str) -> None:
    with pytest.raises(TeaException) as info:
        search_by_url(endpoint, tenant, url)
    assert sdk_error(info.value) == ("InvalidPicUrl", 400), url


# --- the three Advance methods through the real SDK ---


def test_add_then_search_advance_finds_it_first(services: Services, tenant: Tenant, endpoint: str) -> None:
    client = advance_client(endpoint, tenant)
    for name in ("coffee", "rocket", "chelsea"):
        added = client.add_image_advance(
            models.AddImageAdvanceRequest(
                instance_name="shop",
                product_id=f"p-{name}",
                pic_name=f"{name}.jpg",
                pic_content_object=io.BytesIO(jpeg(name)),
            ),
            trusting(),
        )
        assert added.body.success is True and added.body.code == 0

    edited = encode(EDITS["crop70"](load_photo("coffee")))
    found = client.search_image_by_pic_advance(
        models.SearchImageByPicAdvanceRequest(
            instance_name="shop", pic_content_object=io.BytesIO(edited), num=3
        ),
        trusting(),
    ).body
    assert found.success is True
    assert found.auctions[0].product_id == "p-coffee"
    assert found.auctions[0].pic_name == "coffee.jpg"
    # Each Advance call uploaded one object into the tenant's own folder of the store.
    objects = list((services.settings.data_dir / "uploads").glob("*/*.bin"))
    assert len(objects) == 4


def test_compare_similar_advance_returns_a_score(tenant: Tenant, endpoint: str) -> None:
    client = advance_client(endpoint, tenant)
    same = client.compare_similar_by_image_advance(
        models.CompareSimilarByImageAdvanceRequest(
            instance_name="shop",
            primary_pic_content_object=io.BytesIO(jpeg("coffee")),
            secondary_pic_content_object=io.BytesIO(jpeg("coffee")),
        ),
        trusting(),
    ).body
    other = client.compare_similar_by_image_advance(
        models.CompareSimilarByImageAdvanceRequest(
            instance_name="shop",
            primary_pic_content_object=io.BytesIO(jpeg("coffee")),
            secondary_pic_content_object=io.BytesIO(jpeg("rocket")),
        ),
        trusting(),
    ).body
    assert same.success is True and same.score == pytest.approx(1.0, abs=1e-3)
    assert 0.0 <= other.score < same.score


def test_upload_listener_certificate_can_be_trusted_with_ca(
    tenant: Tenant, endpoint: str, tls: tuple[Path, Path]
) -> None:
    """The alternative to ignore_ssl: trust the listener's (self-signed) certificate as the CA."""
    client = advance_client(endpoint, tenant)
    runtime = RuntimeOptions(ca=str(tls[0]), read_timeout=60_000, connect_timeout=10_000)
    found = client.search_image_by_pic_advance(
        models.SearchImageByPicAdvanceRequest(
            instance_name="shop", pic_content_object=io.BytesIO(jpeg("coffee"))
        ),
        runtime,
    ).body
    assert found.success is True


def test_authorize_file_upload_issues_no_tenant_secret(tenant: Tenant, endpoint: str, uploads: str) -> None:
    grant = authorize(endpoint, tenant)
    assert set(grant) >= {"AccessKeyId", "Bucket", "Endpoint", "ObjectKey", "EncodedPolicy", "Signature"}
    assert grant["UseAccelerate"] is False
    assert f"{grant['Bucket']}.{grant['Endpoint']}" == uploads
    assert grant["AccessKeyId"] != tenant.key_id and tenant.secret not in json.dumps(grant)
    policy = json.loads(base64.b64decode(grant["EncodedPolicy"]))
    assert ["eq", "$key", grant["ObjectKey"]] in policy["conditions"]
    assert ["content-length-range", 1, 4 * 1024 * 1024] in policy["conditions"]
    assert policy["expiration"].endswith("Z")
    assert authorize(endpoint, tenant)["ObjectKey"] != grant["ObjectKey"]  # a fresh random key each time


# --- PicContent URLs: only our own store, only the caller's objects ---


def test_pic_url_must_point_into_the_callers_own_uploads(
    services: Services, tenant: Tenant, endpoint: str, uploads: str
) -> None:
    other = make_tenant(services, "rival", "theirs")
    grant = authorize(endpoint, other)
    assert post_object(uploads, grant_fields(grant), jpeg("rocket")).status_code == 201
    url = pic_url(grant)
    assert search_by_url(endpoint, other, url).body.success is True  # the owner may use it

    expect_invalid_url(endpoint, tenant, url)  # another tenant's object
    expect_invalid_url(endpoint, tenant, "http://169.254.169.254/latest/meta-data/")
    expect_invalid_url(endpoint, tenant, "https://example.com/" + grant["ObjectKey"])
    expect_invalid_url(endpoint, tenant, f"http://user@{uploads}/{grant['ObjectKey']}")
    expect_invalid_url(endpoint, other, url + "?x=1")
    expect_invalid_url(endpoint, other, f"http://{uploads}/{grant['ObjectKey']}/../../.policy-key")
    expect_invalid_url(endpoint, other, f"http://{uploads}/.policy-key")

    mine = authorize(endpoint, tenant)  # authorized but never uploaded
    expect_invalid_url(endpoint, tenant, pic_url(mine))


# --- the PostObject endpoint refuses anything it did not issue ---


def _xml_code(response: httpx.Response) -> str:
    text = response.text
    assert text.startswith("<?xml") and "<Error>" in text, text
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def test_post_object_refuses_tampering(tenant: Tenant, endpoint: str, uploads: str) -> None:
    grant = authorize(endpoint, tenant)
    fields = grant_fields(grant)
    data = jpeg("coffee")

    policy = json.loads(base64.b64decode(grant["EncodedPolicy"]))
    policy["conditions"] = [c for c in policy["conditions"] if "content-length-range" not in c]
    widened = base64.b64encode(json.dumps(policy).encode()).decode()
    response = post_object(uploads, {**fields, "policy": widened}, data)
    assert (response.status_code, _xml_code(response)) == (403, "SignatureDoesNotMatch")

    response = post_object(uploads, {**fields, "Signature": "A" + fields["Signature"][1:]}, data)
    assert (response.status_code, _xml_code(response)) == (403, "SignatureDoesNotMatch")

    response = post_object(uploads, {**fields, "OSSAccessKeyId": "LKUPguessed"}, data)
    assert (response.status_code, _xml_code(response)) == (403, "InvalidAccessKeyId")

    second = authorize(endpoint, tenant)  # a valid policy+signature cannot be aimed at another key
    response = post_object(uploads, {**fields, "key": second["ObjectKey"]}, data)
    assert (response.status_code, _xml_code(response)) == (403, "AccessDenied")

    response = post_object(uploads, fields, b"x" * (4 * 1024 * 1024 + 1))
    assert (response.status_code, _xml_code(response)) == (400, "EntityTooLarge")

    with httpx.Client(verify=False, timeout=30) as http:
        response = http.get(f"https://{uploads}/{grant['ObjectKey']}")  # no reads through the listener
        assert response.status_code == 404 and _xml_code(response) == "NoSuchKey"

    ok = post_object(uploads, fields, data)  # the untouched grant still works after all that
    assert ok.status_code == 201
    assert (
        f"<Key>{grant['ObjectKey']}</Key>" in ok.text
        and "<ETag>" in ok.text
        and "<Bucket>127</Bucket>" in ok.text
    )


def test_one_grant_stores_one_object(
    services: Services, tenant: Tenant, endpoint: str, uploads: str, clock: ManualClock
) -> None:
    grant = authorize(endpoint, tenant)
    fields = grant_fields(grant)
    first = post_object(uploads, fields, jpeg("coffee"))
    assert first.status_code == 201
    clock.advance(60)
    retry = post_object(uploads, fields, jpeg("coffee"))  # a client retrying the same bytes: same answer
    assert retry.status_code == 201 and retry.headers["ETag"] == first.headers["ETag"]
    other = post_object(uploads, fields, jpeg("rocket"))  # the grant is not reusable storage
    assert (other.status_code, _xml_code(other)) == (403, "AccessDenied")
    assert "used already" in other.text
    # Neither the retry nor the refusal moved the object's expiry: it lapses TTL_S after the first post.
    clock.advance(TTL_S - 60 + 1)
    expect_invalid_url(endpoint, tenant, pic_url(grant))


# --- expiry ---


def test_expired_uploads_are_refused_and_swept(
    services: Services, tenant: Tenant, endpoint: str, uploads: str, clock: ManualClock
) -> None:
    late = authorize(endpoint, tenant)
    used = authorize(endpoint, tenant)
    assert post_object(uploads, grant_fields(used), jpeg("coffee")).status_code == 201
    assert search_by_url(endpoint, tenant, pic_url(used)).body.success is True

    clock.advance(TTL_S + 1)
    response = post_object(uploads, grant_fields(late), jpeg("coffee"))
    assert (response.status_code, _xml_code(response)) == (403, "AccessDenied")
    assert "expired" in response.text
    expect_invalid_url(endpoint, tenant, pic_url(used))

    assert services.uploads.sweep() == 2
    assert not list((services.settings.data_dir / "uploads").glob("*/*.*"))


def test_authorize_refused_when_uploads_are_disabled(
    services: Services, tenant: Tenant, endpoint: str, clock: ManualClock
) -> None:
    services.__dict__["uploads"] = UploadStore(
        services.settings.data_dir / "uploads-off", clock, public_host=None, max_bytes=4 * 1024 * 1024
    )
    with pytest.raises(TeaException) as info:
        authorize(endpoint, tenant)
    assert sdk_error(info.value) == ("Forbidden.UploadDisabled", 403)


def test_per_account_cap_on_live_grants(services: Services, tenant: Tenant, clock: ManualClock) -> None:
    store = UploadStore(
        services.settings.data_dir / "capped",
        clock,
        public_host="uploads.example.com:8443",
        max_bytes=10,
        max_pending=2,
    )
    first = store.authorize(tenant.account.id)
    assert (first.bucket, first.endpoint) == ("uploads", "example.com:8443")
    store.authorize(tenant.account.id)
    with pytest.raises(Exception, match="TooManyUploads"):
        store.authorize(tenant.account.id)
    store.authorize("another-account")  # the cap is per account
    clock.advance(TTL_S + 1)
    store.authorize(tenant.account.id)  # expired grants no longer count once swept


def test_self_signed_certificate_is_generated_once_and_follows_the_public_host(tmp_path: Path) -> None:
    cert, key = ensure_tls_files(tmp_path, "127.0.0.1:9443")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    first = cert.read_bytes()
    assert ensure_tls_files(tmp_path, "127.0.0.1:9443") == (cert, key) and cert.read_bytes() == first
    ensure_tls_files(tmp_path, "uploads.example.com:8443")  # a new public name: a new certificate
    assert cert.read_bytes() != first
    key.write_bytes(b"half-written")  # a pair that does not belong together is replaced, not served
    ensure_tls_files(tmp_path, "uploads.example.com:8443")
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
