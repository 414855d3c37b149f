"""Verification of the three Alibaba signature schemes (reference §3.5), timestamp freshness and nonces.

The scheme is picked from the request the way the SDKs send it:
* `Authorization: ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…` -> V3 (current SDKs)
* `Authorization: acs AK:base64sig`                                         -> ROA HMAC-SHA1 (2019 API)
* `Signature` in the query                                     -> RPC HMAC-SHA1, SignatureVersion 1.0

Order of checks: well-formed auth material -> timestamp within ±15 minutes of the real wall clock
(`services.request_clock`, never the business clock tests move) -> AccessKey resolves and is enabled ->
signature -> nonce unused. The nonce is recorded only after the signature verified, so unauthenticated
traffic cannot fill the store or burn a legitimate caller's nonces.

What each scheme binds (and so what a man in the middle could still alter):
* V3 signs the method, path, query, the SignedHeaders and the SHA-256 of the raw body. We additionally
  require the headers that steer dispatch and replay protection (x-acs-action, x-acs-version,
  x-acs-signature-nonce) to be among the SignedHeaders whenever they are present; the SDK always signs them.
* RPC signs every query and form parameter, but not the x-acs-action / x-acs-version headers the SDKs also
  send, so dispatch is bound to the signed `Action` / `Version` parameters, and a header that disagrees
  with them is refused (bind_dispatch).
* ROA signs method, Accept, Content-MD5, Content-Type, Date, all x-acs-* headers and path+query, but not the
  body; only Content-MD5 covers it. So a nonce is required (one signature, one request): without it a
  captured signature would carry any other body for 15 minutes. `alibaba_roa_allow_no_nonce` admits the
  legacy core SDK, which sends no nonce, but then only with a Content-MD5 (checked against the body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import quote

from lookalike.api.alibaba import errors as ae
from lookalike.api.alibaba.request import ROA_PATHS, AcsRequest
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.container import Services
from lookalike.storage.nonce_store import NonceStore, NonceStoreFull

FRESHNESS_S: Final = 15 * 60
MAX_NONCE_LEN: Final = 128
V3_ALGORITHM: Final = "ACS3-HMAC-SHA256"
V3_REQUIRED_SIGNED: Final = ("host", "x-acs-content-sha256", "x-acs-date")
# Present => must be signed: they choose the action or carry the replay protection.
V3_SIGNED_WHEN_PRESENT: Final = ("x-acs-action", "x-acs-version", "x-acs-signature-nonce")

# Real POP says "...server string to sign is:<StringToSign>". We do not echo it (it would help an attacker
# probe the scheme), but the message keeps a ':' because the legacy core SDK (aliyunsdkcore) does
# `message.split(':')[1]` on every SignatureDoesNotMatch and raises IndexError without one. The text after
# the colon never equals a string to sign, so that SDK reports SignatureDoesNotMatch unchanged.
_BAD_SIGNATURE_MESSAGE: Final = (
    "Specified signature is not matched with our calculation. "
    "Check your AccessKey secret and signing method: server string to sign is not disclosed."
)


def pe(value: str) -> str:
    """RFC 3986 percent-encoding of the UTF-8 bytes, only A-Z a-z 0-9 - _ . ~ left as is (space -> %20)."""
    return quote(value, safe="~")


# --- string-to-sign builders (pure functions: the unit tests and the test-side signer share the spec) ---


def v3_canonical_query(query: list[tuple[str, str]]) -> str:
    return "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(query))


def v3_string_to_sign(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers)
    canonical_request = "\n".join(
        [
            method,
            path or "/",
            v3_canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )
    return f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"


def rpc_string_to_sign(method: str, params: list[tuple[str, str]]) -> str:
    """`params`: query ∪ form, without Signature. Empty values are kept ("SignatureType=")."""
    canonical = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(params))
    return f"{method}&{pe('/')}&{pe(canonical)}"


def roa_string_to_sign(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], *, bare_empty: bool = True
) -> str:
    """`bare_empty`: an empty query value is written as `k` (tea SDKs) rather than `k=` (legacy core SDK)."""
    head = "".join(f"{headers.get(name, '')}\n" for name in ("accept", "content-md5", "content-type", "date"))
    acs = "".join(f"{k}:{headers[k]}\n" for k in sorted(k for k in headers if k.startswith("x-acs-")))
    resource = path
    if query:
        resource += "?" + "&".join(k if v == "" and bare_empty else f"{k}={v}" for k, v in sorted(query))
    return f"{method}\n{head}{acs}{resource}"


def hmac_sha256_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def hmac_sha1_b64(key: str, text: str) -> str:
    return base64.b64encode(
        hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    ).decode()


def _same(expected: str, given: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str and the given value is attacker-controlled.
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


# --- entry point ---


def authenticate(req: AcsRequest, services: Services, nonces: NonceStore) -> Account:
    """The caller's account, once the signature verified; `req.action`/`req.version` are then bound to
    what the signature covers (see bind_dispatch)."""
    auth = req.headers.get("authorization", "").strip()
    if auth.startswith("ACS3-"):
        account = _verify_v3(req, auth, services, nonces)
        bind_dispatch(req, headers_signed=True)
        return account
    if auth[:4].lower() == "acs ":
        account = _verify_roa(req, auth, services, nonces)
        bind_dispatch(req, headers_signed=True)  # every x-acs-* header is in the ROA string to sign
        return account
    if any(k == "Signature" for k, _ in req.query):
        account = _verify_rpc(req, services, nonces)
        bind_dispatch(req, headers_signed=False)
        return account
    if auth:
        raise LookalikeError(ae.INCOMPLETE_SIGNATURE, "The Authorization header uses an unsupported scheme.")
    if any(k == "AccessKeyId" for k, _ in req.query):
        raise LookalikeError(ae.INCOMPLETE_SIGNATURE, "The request signature is missing.")
    raise LookalikeError(ae.MISSING_ACCESS_KEY_ID, "AccessKeyId is mandatory for this action.")


def _verify_v3(req: AcsRequest, auth: str, services: Services, nonces: NonceStore) -> Account:
    algorithm, _, rest = auth.partition(" ")
    if algorithm != V3_ALGORITHM:
        raise LookalikeError(
            ae.INCOMPLETE_SIGNATURE,
            f"Signature algorithm {algorithm[:40]!r} is not supported; use {V3_ALGORITHM}.",
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    key_id = fields.get("Credential", "")
    signature = fields.get("Signature", "")
    signed = [h.strip().lower() for h in fields.get("SignedHeaders", "").split(";") if h.strip()]
    if not key_id:
        raise LookalikeError(ae.MISSING_ACCESS_KEY_ID, "AccessKeyId is mandatory for this action.")
    if not signature or not signed:
        raise LookalikeError(
            ae.INCOMPLETE_SIGNATURE, "The Authorization header lacks Signature or SignedHeaders."
        )
    must_sign = [*V3_REQUIRED_SIGNED, *(h for h in V3_SIGNED_WHEN_PRESENT if h in req.headers)]
    unsigned = [h for h in must_sign if h not in signed]
    if unsigned:
        raise LookalikeError(ae.INCOMPLETE_SIGNATURE, f"These headers must be signed: {', '.join(unsigned)}.")
    when = _check_fresh(_parse_iso8601(req.headers.get("x-acs-date")), "x-acs-date", services)
    nonce = req.headers.get("x-acs-signature-nonce", "")
    _check_nonce_shape(nonce, "x-acs-signature-nonce")
    account, secret = services.accounts.resolve_key(key_id)
    body_hash = hashlib.sha256(req.body).hexdigest()
    if not _same(body_hash, req.headers.get("x-acs-content-sha256", "").lower()):
        raise LookalikeError(
            e.SIGNATURE_MISMATCH,
            "Specified signature is not matched: x-acs-content-sha256 differs from the body.",
        )
    expected = hmac_sha256_hex(
        secret, v3_string_to_sign(req.method, req.path, req.query, req.headers, signed, body_hash)
    )
    if not _same(expected, signature.lower()):
        raise LookalikeError(e.SIGNATURE_MISMATCH, _BAD_SIGNATURE_MESSAGE)
    _use_nonce(nonces, key_id, nonce, when, services)
    return account


def _verify_rpc(req: AcsRequest, services: Services, nonces: NonceStore) -> Account:
    query = dict(req.query)
    key_id = query.get("AccessKeyId", "")
    if not key_id:
        raise LookalikeError(ae.MISSING_ACCESS_KEY_ID, "AccessKeyId is mandatory for this action.")
    method = query.get("SignatureMethod", "HMAC-SHA1")
    version = query.get("SignatureVersion", "1.0")
    if method != "HMAC-SHA1" or version != "1.0":
        raise LookalikeError(
            ae.INCOMPLETE_SIGNATURE, "Only SignatureMethod=HMAC-SHA1 with SignatureVersion=1.0 is supported."
        )
    when = _check_fresh(_parse_iso8601(query.get("Timestamp")), "Timestamp", services)
    nonce = query.get("SignatureNonce", "")
    _check_nonce_shape(nonce, "SignatureNonce")
    account, secret = services.accounts.resolve_key(key_id)
    params = [(k, v) for k, v in req.query if k != "Signature"] + req.form
    expected = hmac_sha1_b64(secret + "&", rpc_string_to_sign(req.method, params))
    if not _same(expected, query["Signature"]):
        raise LookalikeError(e.SIGNATURE_MISMATCH, _BAD_SIGNATURE_MESSAGE)
    _use_nonce(nonces, key_id, nonce, when, services)
    return account


def _verify_roa(req: AcsRequest, auth: str, services: Services, nonces: NonceStore) -> Account:
    key_id, sep, signature = auth[4:].strip().rpartition(":")
    if not sep or not signature:
        raise LookalikeError(
            ae.INCOMPLETE_SIGNATURE, "The Authorization header must be 'acs AccessKeyId:Signature'."
        )
    if not key_id:
        raise LookalikeError(ae.MISSING_ACCESS_KEY_ID, "AccessKeyId is mandatory for this action.")
    method = req.headers.get("x-acs-signature-method", "HMAC-SHA1")
    version = req.headers.get("x-acs-signature-version", "1.0")
    if method != "HMAC-SHA1" or version != "1.0":
        raise LookalikeError(
            ae.INCOMPLETE_SIGNATURE, "Only x-acs-signature-method HMAC-SHA1, version 1.0 is supported."
        )
    when = _check_fresh(_parse_rfc1123(req.headers.get("date")), "Date", services)
    nonce = req.headers.get("x-acs-signature-nonce")
    content_md5 = req.headers.get("content-md5")
    if nonce is not None or not services.settings.alibaba_roa_allow_no_nonce:
        # ROA signs no body: without a one-time nonce, a captured signature would carry any other body
        # (another ProductId to delete, another picture to search) for the whole Date window.
        _check_nonce_shape(nonce or "", "x-acs-signature-nonce")
    elif content_md5 is None:
        # Legacy clients (no nonce) are accepted only with the body bound by Content-MD5.
        raise LookalikeError(
            ae.MISSING_NONCE,
            "x-acs-signature-nonce is mandatory; a request without one needs a Content-MD5 of its body.",
        )
    account, secret = services.accounts.resolve_key(key_id)
    if content_md5 is not None:
        actual = base64.b64encode(hashlib.md5(req.body).digest()).decode()
        if not _same(actual, content_md5.strip()):
            raise LookalikeError(ae.CONTENT_MD5_MISMATCH, "The Content-MD5 header does not match the body.")
    # The two SDK generations write an empty query value differently; when there is one, accept either.
    variants = [True, False] if any(v == "" for _, v in req.query) else [True]
    if not any(
        _same(
            hmac_sha1_b64(
                secret, roa_string_to_sign(req.method, req.path, req.query, req.headers, bare_empty=b)
            ),
            signature,
        )
        for b in variants
    ):
        raise LookalikeError(e.SIGNATURE_MISMATCH, _BAD_SIGNATURE_MESSAGE)
    if nonce is not None:
        _use_nonce(nonces, key_id, nonce, when, services)
    return account


# --- dispatch ---

_DISPATCH: Final = (("Action", "x-acs-action"), ("Version", "x-acs-version"))
_ROA_VERSION: Final = "2019-03-25"


def bind_dispatch(req: AcsRequest, *, headers_signed: bool) -> None:
    """Dispatch only on a signed Action/Version, and only when every place that names one agrees.

    An action can be named by the x-acs-action header, by Action in the query or the form body, and (ROA)
    by the path. A request whose places disagree is refused: otherwise a signed read could be sent with an
    unsigned header naming a delete. Under RPC HMAC-SHA1 the headers are not signed, so there the action
    must come from the signed parameters."""
    for name, header in _DISPATCH:
        claims: list[tuple[str, str, bool]] = []  # (where, value, signed)
        if header in req.headers:
            claims.append((f"the {header} header", req.headers[header], headers_signed))
        claims += [(f"{name} in the query", v, True) for k, v in req.query if k == name]
        claims += [(f"{name} in the body", v, True) for k, v in req.form if k == name]
        if req.path in ROA_PATHS:
            implied = ROA_PATHS[req.path] if name == "Action" else _ROA_VERSION
            claims.append((f"the path {req.path}", implied, True))
        values = {value for _, value, _ in claims}
        if len(values) > 1:
            places = ", ".join(f"{where} says {value[:64]!r}" for where, value, _ in claims)
            raise LookalikeError(e.INVALID_PARAMETER, f"The request names more than one {name}: {places}.")
        signed = [value for _, value, is_signed in claims if is_signed]
        if claims and not signed:
            raise LookalikeError(
                e.INVALID_PARAMETER, f"{name} must be among the signed parameters of this request."
            )
        if signed:
            if name == "Action":
                req.action = signed[0]
            else:
                req.version = signed[0]


# --- freshness and nonces ---


def _parse_iso8601(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_rfc1123(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):  # e.g. a zone offset of 20 digits
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_fresh(when: datetime | None, field: str, services: Services) -> float:
    if when is None:
        raise LookalikeError(
            ae.TIMESTAMP_FORMAT, f"The specified {field} is missing or not in the expected format."
        )
    try:
        stamp = when.timestamp()
    except (OverflowError, ValueError, OSError):  # a date at the edge of datetime's range, once offset
        raise LookalikeError(ae.TIMESTAMP_FORMAT, f"The specified {field} is out of range.") from None
    if abs(services.request_clock.timestamp() - stamp) > FRESHNESS_S:
        raise LookalikeError(
            ae.TIMESTAMP_EXPIRED, f"The specified {field} is more than 15 minutes away from the server time."
        )
    return stamp


def _check_nonce_shape(nonce: str, field: str) -> None:
    if not nonce:
        raise LookalikeError(ae.MISSING_NONCE, f"{field} is mandatory for this action.")
    if len(nonce) > MAX_NONCE_LEN:
        raise LookalikeError(e.INVALID_PARAMETER, f"{field} is longer than {MAX_NONCE_LEN} characters.")


def _use_nonce(nonces: NonceStore, key_id: str, nonce: str, when: float, services: Services) -> None:
    now = services.request_clock.timestamp()
    # Remember it as long as a request with this timestamp could still pass the freshness check.
    ttl = max(1.0, when + FRESHNESS_S - now + 1.0)
    try:
        new = nonces.remember(f"{key_id}\n{nonce}", now, ttl)
    except NonceStoreFull:
        raise LookalikeError(
            e.DENIED_REQUEST,
            "Too many signed requests from this AccessKey within the 15-minute window; retry later.",
            retry_after=60.0,
        ) from None
    if not new:
        raise LookalikeError(ae.NONCE_USED, "Specified signature nonce was used already.")
