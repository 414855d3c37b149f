"""Lookalike's own upload store: the server side of the SDK's `*_advance` methods (reference §6).

An Advance call asks for an upload grant (`AuthorizeFileUpload`), POSTs the picture to an OSS-PostObject-like
endpoint, then sends `PicContent = "http://{Bucket}.{Endpoint}/{ObjectKey}"` to the real action. This module
holds the state of the first two steps and answers the third; the HTTP shapes live in api/alibaba/upload.py.

Layout under ``<data_dir>/uploads/``::

    .policy-key                      32 random bytes (0600): signs policies, derives account tags
    <account tag>/<object id>.json   the grant: account, token id, policy, deadlines
    <account tag>/<object id>.bin    the uploaded bytes, once received

* Every grant is bound to the account that was authorized for it. The object key is
  ``imagesearch-upload/<account tag>/<object id>``: the tag is an HMAC of the account id under the server
  key (it groups an account's grants without naming the account), the id 24 random bytes; both are checked
  against strict patterns before they touch the filesystem.
* ``OSSAccessKeyId`` is a per-grant random token id, never a tenant credential; ``Signature`` is
  HMAC-SHA256 (base64) of the encoded policy under the server key.
* The policy (base64 JSON) carries the upload deadline, the key and ``content-length-range`` up to the
  image byte limit. A grant can be uploaded to until its deadline (``ttl_s`` after issue); the object is
  then readable by its account for ``ttl_s`` after the upload. Expired grants and objects are removed by
  :meth:`UploadStore.sweep`, which :meth:`UploadStore.authorize` runs at most once a minute.
* At most ``max_pending`` live grants per account, so one tenant cannot fill the disk (each object is at
  most the image byte limit).

Every method is safe to call from several threads and from several UploadStore objects over the same
directory (the state is the directory; writes are write-to-temp-then-rename).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from lookalike.clock import Clock
from lookalike.config import Settings

KEY_PREFIX: Final = "imagesearch-upload"
DEFAULT_TTL_S: Final = 2 * 3600.0
DEFAULT_MAX_PENDING: Final = 1000
SWEEP_INTERVAL_S: Final = 60.0
TOKEN_PREFIX: Final = "LKUP"

_TAG_RE: Final = re.compile(r"[0-9a-f]{24}")
_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{32}")
_KEY_RE: Final = re.compile(rf"{KEY_PREFIX}/([0-9a-f]{{24}})/([A-Za-z0-9_-]{{32}})")
_SERVER_KEY_FILE: Final = ".policy-key"
_ISO_MS: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


class UploadRefused(Exception):
    """A PostObject the store will not accept; `code`/`status` are OSS's (AccessDenied 403, ...)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class UploadsDisabled(Exception):
    """No public address is configured for the upload listener, so no grant could be used."""


@dataclass(frozen=True)
class UploadGrant:
    """What AuthorizeFileUpload answers (plus the binding the store keeps)."""

    account_id: str
    token_id: str  # -> AccessKeyId / OSSAccessKeyId
    bucket: str
    endpoint: str
    object_key: str
    encoded_policy: str
    signature: str
    upload_deadline: float  # epoch seconds


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    endpoint: str
    key: str
    etag: str  # hex MD5, as OSS reports it (quoted in the XML)
    size: int

    @property
    def location(self) -> str:
        return f"https://{self.bucket}.{self.endpoint}/{self.key}"


def split_public_host(public_host: str) -> tuple[str, str]:
    """'uploads.example.com:8443' -> ('uploads', 'example.com:8443'),
    '127.0.0.1:9443' -> ('127', '0.0.1:9443').

    The SDK posts to ``https://{Bucket}.{Endpoint}/``, so the two halves are the public host split at its
    first dot. A host without a dot (``localhost``) cannot be expressed that way.
    """
    host = public_host.strip()
    bucket, dot, endpoint = host.partition(".")
    if not dot or not bucket or not endpoint or "/" in host or "@" in host or host.startswith("["):
        raise ValueError(
            f"upload public host {public_host!r} must be 'name.domain[:port]' or 'a.b.c.d[:port]' "
            "(the SDK builds https://{Bucket}.{Endpoint}/ from it)"
        )
    return bucket, endpoint


def _iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


class UploadStore:
    def __init__(
        self,
        root: Path,
        clock: Clock,
        *,
        public_host: str | None,
        max_bytes: int,
        ttl_s: float = DEFAULT_TTL_S,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.root = root
        self.clock = clock
        self.public_host = public_host
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        if public_host is not None:
            split_public_host(public_host)  # fail at start-up, not at the first Advance call
        self._server_key: bytes | None = None
        self._lock = threading.Lock()
        self._receive_lock = threading.Lock()  # check-and-store of one grant's object is one step
        self._last_sweep = float("-inf")

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> UploadStore:
        return cls(
            settings.data_dir / "uploads",
            clock,
            public_host=settings.upload_public_host,
            max_bytes=settings.image_limits.max_bytes,
            ttl_s=settings.upload_ttl_s,
            max_pending=settings.upload_max_pending,
        )

    @property
    def enabled(self) -> bool:
        return self.public_host is not None

    # --- keys ---

    def _key(self) -> bytes:
        with self._lock:
            if self._server_key is None:
                self._server_key = self._load_or_create_key()
            return self._server_key

    def _load_or_create_key(self) -> bytes:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / _SERVER_KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            tmp_key = secrets.token_bytes(32)
            with os.fdopen(fd, "wb") as handle:
                handle.write(tmp_key)
                handle.flush()
                os.fsync(handle.fileno())
            return tmp_key
        for _ in range(100):  # another process is between O_EXCL and write: wait for the 32 bytes
            data = path.read_bytes()
            if len(data) == 32:
                return data
            threading.Event().wait(0.01)
        raise RuntimeError(f"{path} is not a 32-byte key; delete it to have a new one generated")

    def _sign(self, text: str) -> str:
        return base64.b64encode(hmac.new(self._key(), text.encode("ascii"), hashlib.sha256).digest()).decode()

    def account_tag(self, account_id: str) -> str:
        return hmac.new(self._key(), f"account:{account_id}".encode(), hashlib.sha256).hexdigest()[:24]

    def _paths(self, tag: str, object_id: str) -> tuple[Path, Path]:
        folder = self.root / tag
        return folder / f"{object_id}.json", folder / f"{object_id}.bin"

    # --- step 1: AuthorizeFileUpload ---

    def authorize(self, account_id: str) -> UploadGrant:
        """A fresh grant for one object; raises UploadsDisabled, or UploadRefused when too many are live."""
        if self.public_host is None:
            raise UploadsDisabled("no upload listener is configured")
        bucket, endpoint = split_public_host(self.public_host)
        now = self.clock.timestamp()
        self.maybe_sweep(now)
        tag = self.account_tag(account_id)
        folder = self.root / tag
        folder.mkdir(parents=True, exist_ok=True)
        if sum(1 for p in folder.iterdir() if p.suffix == ".json") >= self.max_pending:
            raise UploadRefused(
                "TooManyUploads",
                f"This account already holds {self.max_pending} live uploads; they expire "
                f"{int(self.ttl_s)} s after issue or use.",
                429,
            )
        object_id = secrets.token_urlsafe(24)
        key = f"{KEY_PREFIX}/{tag}/{object_id}"
        deadline = now + self.ttl_s
        policy = {
            "expiration": _iso_ms(deadline),
            "conditions": [
                {"bucket": bucket},
                ["eq", "$key", key],
                ["content-length-range", 1, self.max_bytes],
            ],
        }
        encoded = base64.b64encode(json.dumps(policy, separators=(",", ":")).encode()).decode()
        grant = UploadGrant(
            account_id=account_id,
            token_id=TOKEN_PREFIX + secrets.token_urlsafe(18),
            bucket=bucket,
            endpoint=endpoint,
            object_key=key,
            encoded_policy=encoded,
            signature=self._sign(encoded),
            upload_deadline=deadline,
        )
        record = {
            "account_id": account_id,
            "token_id": grant.token_id,
            "policy": encoded,
            "upload_deadline": deadline,
            "expires_at": deadline,  # moved to upload time + ttl when the object arrives
            "etag": None,
        }
        meta, _ = self._paths(tag, object_id)
        _write_atomic(meta, json.dumps(record).encode())
        return grant

    # --- step 2: PostObject ---

    def receive(
        self, *, token_id: str, encoded_policy: str, signature: str, key: str, data: bytes
    ) -> StoredObject:
        """Store `data` under `key` if every field is what was issued and the grant is live."""
        if not hmac.compare_digest(self._sign(encoded_policy).encode(), signature.encode("utf-8", "replace")):
            raise UploadRefused(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                403,
            )
        try:
            policy = json.loads(base64.b64decode(encoded_policy, validate=True))
            conditions = policy["conditions"]
            expiration = datetime.strptime(policy["expiration"], _ISO_MS).replace(tzinfo=UTC)
        except (ValueError, KeyError, TypeError):
            raise UploadRefused("InvalidPolicyDocument", "Invalid Policy: malformed.", 400) from None
        if not isinstance(conditions, list) or ["eq", "$key", key] not in conditions:
            raise UploadRefused("AccessDenied", "Invalid according to Policy: Policy Condition failed.", 403)
        now = self.clock.timestamp()
        if now > expiration.timestamp():
            raise UploadRefused("AccessDenied", "Invalid according to Policy: Policy expired.", 403)
        match = _KEY_RE.fullmatch(key)
        record = self._load(match.group(1), match.group(2)) if match else None
        if match is None or record is None:
            raise UploadRefused("AccessDenied", "The upload grant does not exist or has expired.", 403)
        if not hmac.compare_digest(str(record["token_id"]).encode(), token_id.encode("utf-8", "replace")):
            raise UploadRefused(
                "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.", 403
            )
        if record["policy"] != encoded_policy or now > float(record["upload_deadline"]):
            raise UploadRefused("AccessDenied", "Invalid according to Policy: Policy expired.", 403)
        if len(data) > self.max_bytes:
            raise UploadRefused(
                "EntityTooLarge", f"Your proposed upload exceeds the maximum of {self.max_bytes} bytes.", 400
            )
        if not data:
            raise UploadRefused("EntityTooSmall", "Your proposed upload is smaller than the minimum.", 400)
        meta, blob = self._paths(match.group(1), match.group(2))
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest().upper()
        with self._receive_lock:
            # One grant, one object: re-posting the same bytes (a client retry) is answered as before,
            # without moving the expiry; other bytes are refused, so a grant cannot be reused as storage.
            current = self._load(match.group(1), match.group(2))
            if current is not None and current.get("etag") is not None:
                if current["etag"] != etag:
                    raise UploadRefused("AccessDenied", "This upload grant was used already.", 403)
            else:
                _write_atomic(blob, data)
                record["etag"] = etag
                record["expires_at"] = now + self.ttl_s
                _write_atomic(meta, json.dumps(record).encode())
        bucket, endpoint = split_public_host(self.public_host) if self.public_host else ("", "")
        return StoredObject(bucket=bucket, endpoint=endpoint, key=key, etag=etag, size=len(data))

    # --- step 3: the action reads the object back ---

    def read(self, account_id: str, key: str) -> bytes | None:
        """The bytes uploaded under `key`: only to the account the grant was issued to, only while live."""
        match = _KEY_RE.fullmatch(key)
        if match is None:
            return None
        tag, object_id = match.group(1), match.group(2)
        if not hmac.compare_digest(tag, self.account_tag(account_id)):
            return None
        record = self._load(tag, object_id)
        if record is None or record.get("account_id") != account_id or record.get("etag") is None:
            return None
        if self.clock.timestamp() > float(record["expires_at"]):
            return None
        _, blob = self._paths(tag, object_id)
        try:
            return blob.read_bytes()
        except FileNotFoundError:
            return None

    def key_from_url_path(self, path: str) -> str | None:
        """'/imagesearch-upload/<tag>/<id>' -> the key, if the path has exactly that shape."""
        key = path[1:] if path.startswith("/") else ""
        return key if _KEY_RE.fullmatch(key) else None

    # --- housekeeping ---

    def maybe_sweep(self, now: float | None = None) -> None:
        now = self.clock.timestamp() if now is None else now
        with self._lock:
            if now - self._last_sweep < SWEEP_INTERVAL_S:
                return
            self._last_sweep = now
        self.sweep(now)

    def sweep(self, now: float | None = None) -> int:
        """Delete every expired grant and object; returns how many grants went."""
        now = self.clock.timestamp() if now is None else now
        removed = 0
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            if not folder.is_dir() or not _TAG_RE.fullmatch(folder.name):
                continue
            for meta in folder.glob("*.json"):
                try:
                    record = json.loads(meta.read_bytes())
                    expired = now > float(record["expires_at"])
                except FileNotFoundError:
                    continue
                except (ValueError, KeyError, TypeError):
                    expired = True  # unreadable: nothing could ever use it
                if expired:
                    meta.with_suffix(".bin").unlink(missing_ok=True)
                    meta.unlink(missing_ok=True)
                    removed += 1
            for tmp in folder.glob("*.tmp-*"):  # left by a crash mid-write
                try:
                    if now - tmp.stat().st_mtime > self.ttl_s:
                        tmp.unlink(missing_ok=True)
                except FileNotFoundError:
                    continue
        return removed

    def _load(self, tag: str, object_id: str) -> dict[str, Any] | None:
        if not _TAG_RE.fullmatch(tag) or not _ID_RE.fullmatch(object_id):
            return None
        meta, _ = self._paths(tag, object_id)
        try:
            record = json.loads(meta.read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return record if isinstance(record, dict) else None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
