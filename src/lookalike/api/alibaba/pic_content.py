"""`PicContent` (and `PrimaryPicContent` / `SecondaryPicContent`) as the Alibaba SDKs send it.

Two forms arrive (reference §4.0, §6):

* **base64 text** — what every plain SDK call sends. Decoding is strict about the alphabet, lenient
  about transport damage only where the reading cannot be ambiguous:
  - the standard (`+/`) and the URL-safe (`-_`) alphabets are both accepted (they share no
    character, so a value means the same thing either way);
  - missing `=` padding is restored;
  - ASCII line breaks and tabs are dropped (MIME-style encoders wrap at 76 characters);
  - a space is read as `+`: base64 never contains a space, and a space is what a `+` becomes when a
    hand-written client forgets to percent-encode the form value;
  - any other character, or a length that no padding can repair, is `InvalidPicContent`.
* **an http(s) URL** — what the SDK's `*_advance` methods send after uploading through
  `AuthorizeFileUpload` + OSS PostObject. Lookalike never fetches a URL itself (no SSRF): each
  function in :data:`URL_RESOLVERS` may claim the URL (return the bytes it stores for it) or pass
  (return None); the upload store registers one. A URL no resolver claims is `InvalidPicUrl`.

An absent or empty value is `NoSpecifiedPicContent`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Final

from lookalike.api.alibaba.dispatch import Context
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError

INVALID_PIC_URL: Final = "InvalidPicUrl"

UrlResolver = Callable[[Context, str], bytes | None]

# Appended to by whoever serves uploads (the Advance path); tried in order, first claim wins.
URL_RESOLVERS: list[UrlResolver] = []

_URL_PREFIXES: Final = ("http://", "https://")
_DROPPED: Final = str.maketrans("", "", "\r\n\t")
# Both alphabets onto the standard one; a space is an unescaped '+'.
_TO_STANDARD: Final = str.maketrans("-_ ", "+/+")
_STANDARD_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def is_pic_url(value: str) -> bool:
    return value[:8].lower().startswith(_URL_PREFIXES)


def decode_pic_content(ctx: Context, value: str | None, field: str = "PicContent") -> bytes:
    """The picture bytes a request carries in `field`; raises the Alibaba error for each refusal."""
    if value is None or value == "":
        raise LookalikeError(e.NO_SPECIFIED_PIC_CONTENT, f"The parameter {field} no specified.")
    if is_pic_url(value):
        return _resolve_url(ctx, value, field)
    data = decode_base64(value, field)
    if not data:
        raise LookalikeError(e.NO_SPECIFIED_PIC_CONTENT, f"The parameter {field} no specified.")
    return data


def decode_base64(value: str, field: str = "PicContent") -> bytes:
    text = value.translate(_DROPPED).translate(_TO_STANDARD)
    if not _STANDARD_BASE64.fullmatch(text):
        raise LookalikeError(e.INVALID_PIC_CONTENT, f"The specified parameter {field} is not valid base64.")
    body = text.rstrip("=")
    if len(body) % 4 == 1:  # no padding makes 4k+1 characters whole
        raise LookalikeError(e.INVALID_PIC_CONTENT, f"The specified parameter {field} is not valid base64.")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise LookalikeError(
            e.INVALID_PIC_CONTENT, f"The specified parameter {field} is not valid base64."
        ) from None


def _resolve_url(ctx: Context, url: str, field: str) -> bytes:
    for resolver in URL_RESOLVERS:
        data = resolver(ctx, url)
        if data is not None:
            if not data:
                raise LookalikeError(e.NO_SPECIFIED_PIC_CONTENT, f"The picture at {field} is empty.")
            return data
    raise LookalikeError(INVALID_PIC_URL, "The search picture does not exist at the specific url.")
