"""Unit tests of the three Alibaba signature verifiers, freshness, nonces and the error mapping.

Expected signatures are computed HERE with hashlib/hmac straight from reference §3.5 (not with the
builders in lookalike.api.alibaba.signing), and requests go through the real `parse_request`, so a
shared misunderstanding between signer and verifier cannot make a test pass. The captured SDK requests
of reference §9 that carry full data (E: V3 Detail, G: ROA SearchImage, J: V3 GET) are replayed byte for
byte with the reference's test credentials.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote, urlencode

import pytest
from starlette.requests import Request

from lookalike.api.alibaba import errors as ae
from lookalike.api.alibaba.request import ROA_PATHS, AcsRequest, parse_request
from lookalike.api.alibaba.signing import authenticate
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.container import Services
from lookalike.storage.nonce_store import InMemoryNonceStore, NonceStoreFull

AK, SECRET = "testAK", "testSecret"
NOW = datetime(2026, 11, 26, 4, 26, 40, tzinfo=UTC)
SPECIAL = "Ünïcødé 价格 + & = / * ~ ' () %20 ;,"


def pe(value: str) -> str:
    return quote(value, safe="~")


# --- fakes and plumbing ---


class FakeAccounts:
    def __init__(self) -> None:
        self.keys = {AK: SECRET, "otherAK": "otherSecret"}
        self.disabled: set[str] = set()
        self.account = Account("acc-1", "acme", False, False, NOW)

    def resolve_key(self, key_id: str) -> tuple[Account, str]:
        if key_id not in self.keys:
            raise LookalikeError(e.INVALID_ACCESS_KEY, "Specified access key is not found.")
        if key_id in self.disabled:
            raise LookalikeError(e.ACCESS_KEY_DISABLED, "Specified access key is disabled.")
        return self.account, self.keys[key_id]


class FakeServices:
    def __init__(self) -> None:
        self.accounts = FakeAccounts()
        self.request_clock = ManualClock(NOW)
        self.settings = Settings()

    def allowing_legacy_roa(self) -> FakeServices:
        self.settings = replace(self.settings, alibaba_roa_allow_no_nonce=True)
        return self


@pytest.fixture
def svc() -> FakeServices:
    return FakeServices()


@pytest.fixture
def nonces() -> InMemoryNonceStore:
    return InMemoryNonceStore()


def build(method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes) -> AcsRequest:
    """Run raw HTTP pieces through the real parser, as the app does."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": raw_query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return asyncio.run(parse_request(Request(scope, receive)))


def auth(req: AcsRequest, svc: FakeServices, nonces: InMemoryNonceStore) -> Account:
    return authenticate(req, cast(Services, svc), nonces)


def refused(code: str, req: AcsRequest, svc: FakeServices, nonces: InMemoryNonceStore) -> LookalikeError:
    with pytest.raises(LookalikeError) as info:
        auth(req, svc, nonces)
    assert info.value.code == code, info.value
    return info.value


# --- independent signers (reference §3.5) ---


def v3_request(
    *,
    secret: str = SECRET,
    key_id: str = AK,
    query: list[tuple[str, str]] | None = None,
    form: list[tuple[str, str]] | None = None,
    when: datetime = NOW,
    nonce: str = "97a65bffbd30f79cc03fcd3c8018cdf0",
    sign_only: list[str] | None = None,
    body_override: bytes | None = None,
    method: str = "POST",
    path: str = "/",
) -> AcsRequest:
    query = query or []
    body = urlencode(form).encode() if form else b""
    headers = {
        "host": "127.0.0.1:8080",
        "accept": "application/json",
        "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
        "x-acs-action": "AddImage",
        "x-acs-version": "2020-12-14",
        "x-acs-date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "x-acs-credentials-provider": "static_ak",
    }
    if body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    names = sorted(sign_only if sign_only is not None else headers)
    canonical_request = "\n".join(
        [
            method,
            path,
            "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(query)),
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    sig = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(names)},Signature={sig}"
    )
    # On the wire the SDK's query is percent-encoded; the server decodes before canonicalising.
    raw_query = "&".join(f"{pe(k)}={pe(v)}" for k, v in query)
    return build(method, path, raw_query, headers, body if body_override is None else body_override)


def rpc_request(
    *,
    secret: str = SECRET,
    extra_query: list[tuple[str, str]] | None = None,
    form: list[tuple[str, str]] | None = None,
    when: datetime = NOW,
    nonce: str = "8e2e44c9aff04a9f1a785b08bf4c9212",
    headers: dict[str, str] | None = None,
    query_override: list[tuple[str, str]] | None = None,
) -> AcsRequest:
    query = [
        ("Action", "AddImage"),
        ("Format", "JSON"),
        ("Version", "2020-12-14"),
        ("RegionId", "cn-shanghai"),
        ("Timestamp", when.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureType", ""),  # legacy core sends it empty: it must still be signed as "SignatureType="
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("AccessKeyId", AK),
        *(extra_query or []),
    ]
    form = form or []
    params = sorted(query + form)
    canonical = "&".join(f"{pe(k)}={pe(v)}" for k, v in params)
    to_sign = "POST&%2F&" + pe(canonical)
    sig = base64.b64encode(
        hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    ).decode()
    query = (query_override or query) + [("Signature", sig)]
    raw_query = "&".join(f"{pe(k)}={pe(v)}" for k, v in query)
    body = urlencode(form).encode()
    hdrs = {"host": "127.0.0.1:8080", "content-type": "application/x-www-form-urlencoded", **(headers or {})}
    return build("POST", "/", raw_query, hdrs, body)


def roa_request(
    *,
    secret: str = SECRET,
    query: list[tuple[str, str]] | None = None,
    form: list[tuple[str, str]] | None = None,
    when: datetime = NOW,
    nonce: str | None = "3a678cbce78aa28738a3e30eb74c852c",
    content_md5: bool = False,
    legacy_empty: bool = False,
    body_override: bytes | None = None,
    path: str = "/v2/image/search",
) -> AcsRequest:
    body = urlencode(form or []).encode()
    headers = {
        "host": "127.0.0.1:8080",
        "accept": "application/json",
        "content-type": "application/x-www-form-urlencoded",
        "date": when.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "x-acs-signature-method": "HMAC-SHA1",
        "x-acs-signature-version": "1.0",
        "x-acs-version": "2019-03-25",
        "x-acs-action": ROA_PATHS[path],
        "x-acs-region-id": "cn-shanghai",
    }
    if nonce is not None:
        headers["x-acs-signature-nonce"] = nonce
    if content_md5:
        headers["content-md5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    query = query or []
    to_sign = (
        f"POST\n{headers['accept']}\n{headers.get('content-md5', '')}\n"
        + f"{headers['content-type']}\n{headers['date']}\n"
        + "".join(f"{k}:{headers[k]}\n" for k in sorted(h for h in headers if h.startswith("x-acs-")))
        + path
    )
    if query:
        to_sign += "?" + "&".join(
            f"{k}=" if v == "" and legacy_empty else k if v == "" else f"{k}={v}" for k, v in sorted(query)
        )
    sig = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    headers["authorization"] = f"acs {AK}:{sig}"
    raw_query = "&".join(f"{pe(k)}={pe(v)}" for k, v in query)
    return build("POST", path, raw_query, headers, body if body_override is None else body_override)


# --- reference §9 vectors (captured from the official SDKs; credentials testAK / testSecret) ---

_E_HEADERS = {
    "host": "127.0.0.1:37963",
    "x-acs-version": "2020-12-14",
    "x-acs-action": "Detail",
    "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
    "x-acs-date": "2026-11-26T04:26:37Z",
    "x-acs-signature-nonce": "28365d9794499a4dae9fb7ed6f54ebaf",
    "accept": "application/json",
    "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "x-acs-credentials-provider": "static_ak",
    "Authorization": "ACS3-HMAC-SHA256 Credential=testAK,SignedHeaders=accept;host;user-agent;x-acs-action;"
    "x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,"
    "Signature=6c33c298fb944d716d205481cef944a39813cf01c4a669c8d3c9be54526977a4",
}


def test_reference_e_v3_detail_verifies(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = build("POST", "/", "InstanceName=demoinst", _E_HEADERS, b"")
    assert auth(req, svc, nonces) is svc.accounts.account
    assert req.action == "Detail" and req.params["InstanceName"] == "demoinst"


def test_reference_e_replayed_is_refused(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    auth(build("POST", "/", "InstanceName=demoinst", _E_HEADERS, b""), svc, nonces)
    refused(ae.NONCE_USED, build("POST", "/", "InstanceName=demoinst", _E_HEADERS, b""), svc, nonces)


def test_reference_e_tampered_query_is_refused(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    refused(e.SIGNATURE_MISMATCH, build("POST", "/", "InstanceName=otherinst", _E_HEADERS, b""), svc, nonces)


def test_reference_j_v3_get_verifies(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    headers = {
        **_E_HEADERS,
        "host": "127.0.0.1:41137",
        "x-acs-version": "2019-12-19",
        "x-acs-action": "AuthorizeFileUpload",
        "x-acs-date": "2026-11-26T04:27:39Z",
        "x-acs-signature-nonce": "ab42dacad361e9b21ce5c906e740de98",
        "Authorization": _E_HEADERS["Authorization"].replace(
            "6c33c298fb944d716d205481cef944a39813cf01c4a669c8d3c9be54526977a4",
            "b2818ebee80866a35f83f09cb93edfb15415c1797654f338e20375ace0821b98",
        ),
    }
    auth(build("GET", "/", "Product=ImageSearch&RegionId=cn-shanghai", headers, b""), svc, nonces)


def test_reference_g_roa_search_verifies(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    headers = {
        "date": "Thu, 26 Nov 2026 04:26:56 GMT",
        "host": "127.0.0.1:37963",
        "accept": "application/json",
        "x-acs-signature-nonce": "3a678cbce78aa28738a3e30eb74c852c",
        "x-acs-signature-method": "HMAC-SHA1",
        "x-acs-signature-version": "1.0",
        "x-acs-version": "2019-03-25",
        "x-acs-action": "SearchImage",
        "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
        "content-type": "application/x-www-form-urlencoded",
        "x-acs-credentials-provider": "static_ak",
        "authorization": "acs testAK:AZkmkdFwa9BS96sMelC2lxuscsU=",
    }
    body = b"InstanceName=demoinst&Num=5&PicContent=%2F9j%2F4AAQ&Start=0&Type=SearchByPic"
    req = build("POST", "/v2/image/search", "", headers, body)
    auth(req, svc, nonces)
    assert (req.version, req.action, req.params["Type"]) == ("2019-03-25", "SearchImage", "SearchByPic")


# --- V3 ---


def test_v3_with_special_characters_in_query_and_body(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = v3_request(
        query=[("ScoreThreshold", "0.5"), ("StrAttr3", SPECIAL)],
        form=[("InstanceName", "shop"), ("ProductId", SPECIAL), ("PicName", "a+b c.jpg"), ("Empty", "")],
    )
    assert auth(req, svc, nonces).id == "acc-1"
    assert req.params["ProductId"] == SPECIAL and req.params["StrAttr3"] == SPECIAL


def test_v3_wrong_secret(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    err = refused(e.SIGNATURE_MISMATCH, v3_request(secret="nope"), svc, nonces)
    assert "ACS3-HMAC-SHA256\n" not in err.message  # the server's StringToSign is not leaked
    assert ":" in err.message  # aliyunsdkcore does message.split(':')[1] on this code


def test_v3_body_hash_mismatch_message_keeps_a_colon(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = v3_request(form=[("ProductId", "a")])
    req.body = b"ProductId=b"
    assert ":" in refused(e.SIGNATURE_MISMATCH, req, svc, nonces).message


def test_v3_body_tampered(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = v3_request(form=[("ProductId", "a")], body_override=b"ProductId=b")
    refused(e.SIGNATURE_MISMATCH, req, svc, nonces)


def test_v3_required_headers_must_be_signed(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    for missing in ("host", "x-acs-date", "x-acs-content-sha256", "x-acs-action", "x-acs-signature-nonce"):
        names = [
            "accept",
            "host",
            "x-acs-action",
            "x-acs-content-sha256",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-version",
        ]
        names.remove(missing)
        refused(ae.INCOMPLETE_SIGNATURE, v3_request(sign_only=names, nonce=f"n-{missing}"), svc, nonces)


def test_v3_freshness_window(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    auth(v3_request(when=NOW - timedelta(minutes=14), nonce="a"), svc, nonces)
    auth(v3_request(when=NOW + timedelta(minutes=14), nonce="b"), svc, nonces)
    refused(ae.TIMESTAMP_EXPIRED, v3_request(when=NOW - timedelta(minutes=16), nonce="c"), svc, nonces)
    refused(ae.TIMESTAMP_EXPIRED, v3_request(when=NOW + timedelta(minutes=16), nonce="d"), svc, nonces)


def test_v3_bad_date_format(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = v3_request()
    req.headers["x-acs-date"] = "yesterday"
    refused(ae.TIMESTAMP_FORMAT, req, svc, nonces)


def test_v3_nonce_rules(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    refused(ae.MISSING_NONCE, v3_request(nonce=""), svc, nonces)
    # A failed signature does not burn the nonce for its rightful owner.
    refused(e.SIGNATURE_MISMATCH, v3_request(secret="nope", nonce="n1"), svc, nonces)
    auth(v3_request(nonce="n1"), svc, nonces)
    refused(ae.NONCE_USED, v3_request(nonce="n1", form=[("Other", "body")]), svc, nonces)
    # Nonces are per AccessKey.
    auth(v3_request(key_id="otherAK", secret="otherSecret", nonce="n1"), svc, nonces)


def test_v3_nonce_expires_with_the_window(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    auth(v3_request(nonce="n2"), svc, nonces)
    svc.request_clock.advance(timedelta(minutes=16))
    # The original request is now stale anyway; a fresh one may reuse a long-gone nonce.
    refused(ae.TIMESTAMP_EXPIRED, v3_request(nonce="n2"), svc, nonces)
    auth(v3_request(nonce="n2", when=NOW + timedelta(minutes=16)), svc, nonces)


def test_v3_unknown_and_disabled_key(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    refused(e.INVALID_ACCESS_KEY, v3_request(key_id="ghost"), svc, nonces)
    svc.accounts.disabled.add(AK)
    refused(e.ACCESS_KEY_DISABLED, v3_request(nonce="x"), svc, nonces)


def test_v3_unsupported_algorithm_and_garbage(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = v3_request()
    req.headers["authorization"] = req.headers["authorization"].replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3")
    refused(ae.INCOMPLETE_SIGNATURE, req, svc, nonces)
    req.headers["authorization"] = "ACS3-HMAC-SHA256 Credential=testAK"
    refused(ae.INCOMPLETE_SIGNATURE, req, svc, nonces)
    req.headers["authorization"] = "ACS3-HMAC-SHA256 SignedHeaders=host,Signature=ab"
    refused(ae.MISSING_ACCESS_KEY_ID, req, svc, nonces)
    req.headers["authorization"] = (
        "ACS3-HMAC-SHA256 Credential=testAK,"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=\u00e9t\u00e9"
    )
    refused(e.SIGNATURE_MISMATCH, req, svc, nonces)  # non-ASCII signature: refused, not a crash


def test_no_credentials_at_all(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    refused(ae.MISSING_ACCESS_KEY_ID, build("POST", "/", "", {"x-acs-action": "Detail"}, b""), svc, nonces)
    refused(ae.INCOMPLETE_SIGNATURE, build("POST", "/", "", {"authorization": "Basic abc"}, b""), svc, nonces)
    refused(
        ae.INCOMPLETE_SIGNATURE, build("POST", "/", "AccessKeyId=testAK&Action=Detail", {}, b""), svc, nonces
    )


# --- RPC HMAC-SHA1 ---


def test_rpc_query_and_form_with_special_characters(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = rpc_request(
        extra_query=[("ScoreThreshold", "0.5")],
        form=[("InstanceName", "shop"), ("ProductId", SPECIAL), ("CustomContent", "k1:v1"), ("Empty", "")],
    )
    auth(req, svc, nonces)
    assert req.params["ProductId"] == SPECIAL and req.action == "AddImage"


def test_rpc_wrong_secret_and_tampering(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    refused(e.SIGNATURE_MISMATCH, rpc_request(secret="nope"), svc, nonces)
    good = rpc_request(form=[("ProductId", "a")], nonce="t1")
    tampered = build(
        "POST", "/", good.raw_query, {"content-type": "application/x-www-form-urlencoded"}, b"ProductId=b"
    )
    refused(e.SIGNATURE_MISMATCH, tampered, svc, nonces)


def test_rpc_header_disagreeing_with_the_signed_action_is_refused(
    svc: FakeServices, nonces: InMemoryNonceStore
) -> None:
    # x-acs-action is not covered by the RPC signature: a rewritten header must not change the action.
    req = rpc_request(headers={"x-acs-action": "DeleteImage", "x-acs-version": "2020-12-14"})
    assert req.action == "DeleteImage"  # what the parser saw first
    with pytest.raises(LookalikeError) as err:
        auth(req, svc, nonces)
    assert err.value.code == e.INVALID_PARAMETER and "more than one Action" in err.value.message
    agreeing = rpc_request(nonce="agree", headers={"x-acs-action": "AddImage", "x-acs-version": "2020-12-14"})
    auth(agreeing, svc, nonces)
    assert agreeing.action == "AddImage"


def test_rpc_freshness_nonce_and_method(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    refused(ae.TIMESTAMP_EXPIRED, rpc_request(when=NOW - timedelta(minutes=20)), svc, nonces)
    auth(rpc_request(nonce="r1"), svc, nonces)
    refused(ae.NONCE_USED, rpc_request(nonce="r1"), svc, nonces)
    refused(ae.MISSING_NONCE, rpc_request(nonce=""), svc, nonces)
    req = rpc_request(nonce="r2")
    req.query = [(k, "HMAC-SHA256" if k == "SignatureMethod" else v) for k, v in req.query]
    refused(ae.INCOMPLETE_SIGNATURE, req, svc, nonces)


def test_rpc_missing_access_key(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = rpc_request()
    req.query = [(k, v) for k, v in req.query if k != "AccessKeyId"]
    refused(ae.MISSING_ACCESS_KEY_ID, req, svc, nonces)


# --- ROA HMAC-SHA1 ---


def test_roa_tea_style(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = roa_request(form=[("InstanceName", "shop"), ("ProductId", SPECIAL), ("Type", "SearchByName")])
    auth(req, svc, nonces)
    assert req.params["ProductId"] == SPECIAL


def test_roa_legacy_style_with_content_md5_and_query(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    # Legacy core: ?RegionId=cn-shanghai, Content-MD5, no nonce. Query values are signed NOT percent-encoded.
    req = roa_request(
        query=[("RegionId", "cn-shanghai"), ("Note", SPECIAL)],
        form=[("InstanceName", "shop"), ("ProductId", "p1")],
        nonce=None,
        content_md5=True,
        path="/v2/image/add",
    )
    refused(ae.MISSING_NONCE, req, svc, nonces)  # by default a ROA request needs a nonce
    svc.allowing_legacy_roa()
    auth(req, svc, nonces)
    # With no nonce a replay inside the window is possible (the protocol has none to check); the body
    # is bound by Content-MD5.
    auth(req, svc, nonces)


def test_roa_without_nonce_nor_content_md5_is_refused_even_for_legacy_clients(
    svc: FakeServices, nonces: InMemoryNonceStore
) -> None:
    # Otherwise one captured signature would delete any ProductId: ROA signs no body.
    form = [("InstanceName", "shop"), ("ProductId", "p1")]
    req = roa_request(form=form, nonce=None, path="/v2/image/delete")
    refused(ae.MISSING_NONCE, req, svc.allowing_legacy_roa(), nonces)


def test_roa_header_naming_another_action_than_the_path_is_refused(
    svc: FakeServices, nonces: InMemoryNonceStore
) -> None:
    req = roa_request(path="/v2/image/search", nonce="n-path")
    req.headers["x-acs-action"] = "DeleteImage"  # the signature would not match either; dispatch is checked
    with pytest.raises(LookalikeError):
        auth(req, svc, nonces)


def test_roa_empty_query_value_both_generations(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    auth(roa_request(query=[("Flag", "")], nonce="e1"), svc, nonces)
    auth(roa_request(query=[("Flag", "")], nonce="e2", legacy_empty=True), svc, nonces)


def test_roa_content_md5_must_match_body(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = roa_request(form=[("ProductId", "a")], content_md5=True, body_override=b"ProductId=b", nonce="md5")
    refused(ae.CONTENT_MD5_MISMATCH, req, svc, nonces)
    legacy = roa_request(
        form=[("ProductId", "a")], content_md5=True, body_override=b"ProductId=b", nonce=None
    )
    refused(ae.CONTENT_MD5_MISMATCH, legacy, svc.allowing_legacy_roa(), nonces)


def test_roa_wrong_secret_date_and_nonce(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    refused(e.SIGNATURE_MISMATCH, roa_request(secret="nope"), svc, nonces)
    refused(ae.TIMESTAMP_EXPIRED, roa_request(when=NOW - timedelta(hours=1), nonce=None), svc, nonces)
    auth(roa_request(nonce="o1"), svc, nonces)
    refused(ae.NONCE_USED, roa_request(nonce="o1"), svc, nonces)
    req = roa_request(nonce="o2")
    del req.headers["date"]
    refused(ae.TIMESTAMP_FORMAT, req, svc, nonces)


def test_roa_malformed_authorization(svc: FakeServices, nonces: InMemoryNonceStore) -> None:
    req = roa_request()
    req.headers["authorization"] = "acs testAK"
    refused(ae.INCOMPLETE_SIGNATURE, req, svc, nonces)
    req.headers["authorization"] = "acs :sig"
    refused(ae.MISSING_ACCESS_KEY_ID, req, svc, nonces)


# --- nonce store ---


def test_nonce_store_remembers_until_ttl() -> None:
    store = InMemoryNonceStore()
    assert store.remember("a", 100.0, 10.0)
    assert not store.remember("a", 105.0, 10.0)
    assert store.remember("a", 110.0, 10.0)  # expired at 110: new again
    assert len(store) == 1


def test_nonce_store_is_bounded_per_key_and_never_forgets_a_live_nonce() -> None:
    store = InMemoryNonceStore(max_entries=250, max_per_scope=100)
    for i in range(100):
        assert store.remember(f"flood\nn{i}", 0.0, 1000.0)
    with pytest.raises(NonceStoreFull):  # the flooding key is throttled...
        store.remember("flood\nmore", 1.0, 1000.0)
    assert store.remember("victim\nv1", 1.0, 1000.0)  # ...not the others
    assert not store.remember("victim\nv1", 2.0, 1000.0)  # and nobody's nonce was evicted
    assert not store.remember("flood\nn0", 2.0, 1000.0)
    assert store.remember("flood\nlater", 1000.0, 10.0)  # room again once its nonces expired
    for i in range(248):  # 2 live entries + 248 = the store's 250, ~50 per key
        assert store.remember(f"k{i % 5}\nx{i}", 1000.0, 10.0)
    with pytest.raises(NonceStoreFull):  # the store's own bound: refused, not evicted
        store.remember("k9\ny", 1000.0, 10.0)
    assert len(store) <= 250


def test_flooding_key_gets_denied_request_not_a_replay_window(nonces: InMemoryNonceStore) -> None:
    svc = FakeServices()
    small = InMemoryNonceStore(max_per_scope=2)
    auth(rpc_request(nonce="f1"), svc, small)
    auth(rpc_request(nonce="f2"), svc, small)
    refused(e.DENIED_REQUEST, rpc_request(nonce="f3"), svc, small)
    refused(ae.NONCE_USED, rpc_request(nonce="f1"), svc, small)


def test_nonce_store_is_thread_safe() -> None:
    store = InMemoryNonceStore()
    wins: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for i in range(500):
            result = store.remember(f"shared-{i}", 0.0, 60.0)
            with lock:
                wins.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(wins) == 500  # each nonce accepted exactly once across all threads


# --- error mapping ---


def _answer(code: str, action: str = "AddImage", **kwargs: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    resp = ae.error_response(LookalikeError(code, "msg", **kwargs), "RID", action)
    return resp.status_code, json.loads(bytes(resp.body)), dict(resp.headers)


@pytest.mark.parametrize(
    ("code", "action", "status", "alibaba"),
    [
        (e.INSTANCE_STATUS_ERROR, "AddImage", 409, "InstanceStatusError"),
        (e.INSTANCE_OVER_QUOTA, "AddImage", 400, "InstanceOverQuota"),
        (e.DENIED_REQUEST, "SearchImageByPic", 403, "DeniedRequest"),
        (e.INVALID_INSTANCE, "SearchImageByPic", 400, "InvalidInstance"),
        (e.INVALID_INSTANCE, "Detail", 400, "Console.InstanceNotFound"),
        (e.INSTANCE_STATUS_ERROR, "DumpMeta", 409, "Console.InstanceStatusError"),
        (e.PIC_NOT_EXIST, "SearchImageByName", 400, "PicNotExist"),
        (e.UNSUPPORTED_PIC_FORMAT, "AddImage", 400, "UnsupportedPicFormat"),
        (e.OVERFLOW_MAX_RETURN_NUM, "SearchImageByPic", 400, "OverflowMaxReturnNum"),
        (e.OVERFLOW_MAX_RESULT_NUM, "SearchImageByPic", 400, "OverflowMaxResultNum"),
        (e.INVALID_FILTER_CLAUSE, "SearchImageByPic", 400, "InvalidFilterClause"),
        (e.INVALID_SCORE_THRESHOLD, "SearchImageByPic", 400, "InvalidParameter"),
        ("InvalidIntAttr3", "UpdateImage", 400, "InvalidIntAttr3"),
        (e.INVALID_ACCESS_KEY, "AddImage", 404, "InvalidAccessKeyId.NotFound"),
        (e.ACCESS_KEY_DISABLED, "AddImage", 400, "InvalidAccessKeyId.Inactive"),
        (e.SIGNATURE_MISMATCH, "AddImage", 400, "SignatureDoesNotMatch"),
        (ae.NONCE_USED, "AddImage", 400, "SignatureNonceUsed"),
        (ae.TIMESTAMP_EXPIRED, "AddImage", 400, "InvalidTimeStamp.Expired"),
        (ae.INVALID_ACTION, "Nope", 404, "InvalidAction.NotFound"),
        (e.CAPACITY_BELOW_USAGE, "AddImage", 409, "CapacityBelowUsage"),
        (e.INTERNAL_ERROR, "AddImage", 500, "InternalError"),
    ],
)
def test_error_mapping(code: str, action: str, status: int, alibaba: str) -> None:
    got_status, body, _ = _answer(code, action)
    assert (got_status, body["Code"]) == (status, alibaba)
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["RequestId"] == "RID"


def test_oversized_picture_is_400_not_413() -> None:
    status, body, _ = _answer(e.INVALID_PIC_CONTENT, status=413)
    assert (status, body["Code"]) == (400, "InvalidPicContent")


def test_denied_request_has_no_acs_retry_after() -> None:
    # x-acs-retry-after would make the SDK raise ThrottlingException, not ClientException(DeniedRequest).
    _, _, headers = _answer(e.DENIED_REQUEST, retry_after=0.2)
    assert "x-acs-retry-after" not in headers
    assert headers["retry-after"] == "1"


def test_internal_error_hides_details() -> None:
    resp = ae.error_response(LookalikeError(e.INTERNAL_ERROR, "/var/lib/secret.db locked"), "RID", "AddImage")
    assert b"secret.db" not in bytes(resp.body)


@pytest.mark.parametrize(
    "date",
    [
        "Mon, 01 Jan 2020 00:00:00 +99999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 -2359",
        "Mon, 99 Jan 2020 00:00:00 GMT",
    ],
)
def test_roa_absurd_dates_are_client_errors(svc: FakeServices, nonces: InMemoryNonceStore, date: str) -> None:
    req = roa_request(nonce="d1")
    req.headers["date"] = date
    with pytest.raises(LookalikeError) as err:
        auth(req, svc, nonces)
    assert err.value.code in (ae.TIMESTAMP_FORMAT, ae.TIMESTAMP_EXPIRED)
