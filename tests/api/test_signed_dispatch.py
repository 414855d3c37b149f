"""A signature authorizes one action and one request (issue 12, points 3 and 4), over a live server.

* RPC HMAC-SHA1 signs the parameters, not the x-acs-action header: a signed read sent with a header naming
  a delete is refused, whether Action travelled in the query or in the form body.
* ROA HMAC-SHA1 signs no body: a request needs a one-time nonce, so a captured signature cannot be
  replayed, nor carry another body (another ProductId to delete). The legacy setting admits nonce-less
  clients only with a Content-MD5 binding the body.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from alibaba_live import RawRequest, live_server, sign_roa, sign_rpc, sign_v3
from conftest import Tenant, make_tenant
from lookalike.service.container import Services
from photos import encode, load_photo


@pytest.fixture
def live(services: Services) -> Iterator[tuple[str, Tenant]]:
    tenant = make_tenant(services, "acme", "shop")
    for product in ("keep", "other"):
        services.images.add_image(
            tenant.account, "shop", product_id=product, pic_name="a.jpg", picture=encode(load_photo("coffee"))
        )
    with live_server(services) as endpoint:
        yield endpoint, tenant


def send(raw: RawRequest, headers: dict[str, str] | None = None, body: bytes | None = None) -> httpx.Response:
    return httpx.request(
        raw.method,
        raw.url,
        headers={**raw.headers, **(headers or {})},
        content=raw.body if body is None else body,
        timeout=30,
    )


def still_there(services: Services, tenant: Tenant, product: str) -> bool:
    return services.images.check_exists(tenant.account, "shop", product, "a.jpg") is not None


CHECK = {"InstanceName": "shop", "ProductId": "keep", "PicName": "a.jpg"}


@pytest.mark.parametrize("dispatch_in_body", [False, True], ids=["action-in-query", "action-in-body"])
def test_rpc_signed_read_with_a_delete_header_is_refused(
    services: Services, live: tuple[str, Tenant], dispatch_in_body: bool
) -> None:
    endpoint, t = live
    raw = sign_rpc(
        endpoint, t.key_id, t.secret, "CheckImageExists", form=CHECK, dispatch_in_body=dispatch_in_body
    )
    response = send(raw, {"x-acs-action": "DeleteImage", "x-acs-version": "2020-12-14"})
    assert response.status_code == 400, response.text
    assert response.json()["Code"] == "InvalidParameter"
    assert "more than one Action" in response.json()["Message"]
    assert still_there(services, t, "keep")


@pytest.mark.parametrize("dispatch_in_body", [False, True], ids=["action-in-query", "action-in-body"])
def test_rpc_dispatches_on_the_signed_action(
    services: Services, live: tuple[str, Tenant], dispatch_in_body: bool
) -> None:
    endpoint, t = live
    raw = sign_rpc(
        endpoint, t.key_id, t.secret, "CheckImageExists", form=CHECK, dispatch_in_body=dispatch_in_body
    )
    response = send(raw, {"x-acs-action": "CheckImageExists", "x-acs-version": "2020-12-14"})
    assert response.status_code == 200, response.text
    assert response.json()["Exists"] is True


def test_rpc_action_only_in_an_unsigned_header_is_refused(
    services: Services, live: tuple[str, Tenant]
) -> None:
    endpoint, t = live
    raw = sign_rpc(endpoint, t.key_id, t.secret, "CheckImageExists", form=CHECK)
    # Drop Action/Version from the (signed) query: the signature no longer matches either, so this also
    # shows the refusal does not fall back to the header.
    url = "&".join(p for p in raw.url.split("&") if not p.startswith(("Action=", "Version=")))
    stripped = RawRequest(raw.method, url, raw.headers, raw.body)
    response = send(stripped, {"x-acs-action": "DeleteImage", "x-acs-version": "2020-12-14"})
    assert response.status_code == 400
    assert still_there(services, t, "keep")


def test_v3_header_and_query_naming_different_actions_are_refused(
    services: Services, live: tuple[str, Tenant]
) -> None:
    endpoint, t = live
    raw = sign_v3(
        endpoint, t.key_id, t.secret, "CheckImageExists", query={"Action": "DeleteImage"}, form=CHECK
    )
    response = send(raw)
    assert response.status_code == 400 and "more than one Action" in response.json()["Message"]
    assert still_there(services, t, "keep")


DELETE = {"InstanceName": "shop", "ProductId": "keep"}


def test_roa_write_without_a_nonce_is_refused(services: Services, live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    response = send(sign_roa(endpoint, t.key_id, t.secret, "/v2/image/delete", DELETE, nonce=""))
    assert (response.status_code, response.json()["Code"]) == (400, "MissingSignatureNonce")
    assert still_there(services, t, "keep")


def test_roa_signature_is_good_for_one_request_only(services: Services, live: tuple[str, Tenant]) -> None:
    endpoint, t = live
    search = sign_roa(
        endpoint,
        t.key_id,
        t.secret,
        "/v2/image/search",
        {"InstanceName": "shop", "Type": "SearchByName", "ProductId": "keep", "PicName": "a.jpg"},
    )
    assert send(search).status_code == 200
    # The same signature again, and with another body (a delete of another product): both refused.
    assert send(search).json()["Code"] == "SignatureNonceUsed"
    delete = sign_roa(endpoint, t.key_id, t.secret, "/v2/image/delete", DELETE)
    assert send(delete).json()["Success"] is True
    assert not still_there(services, t, "keep")
    swapped = send(delete, body=b"InstanceName=shop&ProductId=other")
    assert (swapped.status_code, swapped.json()["Code"]) == (400, "SignatureNonceUsed")
    assert still_there(services, t, "other")


@pytest.mark.settings(alibaba_roa_allow_no_nonce=True)
def test_legacy_roa_without_nonce_needs_content_md5_of_the_body(
    services: Services, live: tuple[str, Tenant]
) -> None:
    endpoint, t = live
    bare = send(sign_roa(endpoint, t.key_id, t.secret, "/v2/image/delete", DELETE, nonce=""))
    assert (bare.status_code, bare.json()["Code"]) == (400, "MissingSignatureNonce")
    bound = sign_roa(endpoint, t.key_id, t.secret, "/v2/image/delete", DELETE, nonce="", content_md5=True)
    swapped = send(bound, body=b"InstanceName=shop&ProductId=other")
    assert (swapped.status_code, swapped.json()["Code"]) == (400, "InvalidContentMD5")
    assert still_there(services, t, "other")
    assert send(bound).json()["Success"] is True
    assert not still_there(services, t, "keep")
