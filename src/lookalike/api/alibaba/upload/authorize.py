"""Steps 1 and 3 of an Advance call: AuthorizeFileUpload, and PicContent as a URL into our own store."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from lookalike.api.alibaba.dispatch import Context, action
from lookalike.api.alibaba.pic_content import URL_RESOLVERS
from lookalike.api.alibaba.request import AcsRequest
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.service.uploads import UploadRefused, UploadsDisabled

OPEN_PLATFORM_VERSION: Final = "2019-12-19"
UPLOAD_DISABLED: Final = "Forbidden.UploadDisabled"


# --- step 1: AuthorizeFileUpload ---


@action(OPEN_PLATFORM_VERSION, "AuthorizeFileUpload")
def authorize_file_upload(ctx: Context, req: AcsRequest) -> dict[str, Any]:
    product = req.text("Product")
    if product is not None and product != "ImageSearch":
        raise LookalikeError(
            e.INVALID_PARAMETER, f"Uploads are for Product ImageSearch, not {product[:40]!r}."
        )
    try:
        grant = ctx.services.uploads.authorize(ctx.account.id)
    except UploadsDisabled:
        raise LookalikeError(
            UPLOAD_DISABLED,
            "This server does not accept Advance uploads (the operator has not started the upload listener: "
            "lookalike serve --upload-port). Send PicContent as base64 instead.",
            status=403,
        ) from None
    except UploadRefused as refused:
        raise LookalikeError(refused.code, refused.message, status=refused.status) from None
    return {
        "AccessKeyId": grant.token_id,
        "Bucket": grant.bucket,
        "Endpoint": grant.endpoint,
        "ObjectKey": grant.object_key,
        "EncodedPolicy": grant.encoded_policy,
        "Signature": grant.signature,
        "UseAccelerate": False,
    }


# --- step 3: PicContent as a URL into our own store ---


def resolve_upload_url(ctx: Context, url: str) -> bytes | None:
    """The bytes behind `url` if it is ``http(s)://{upload public host}/{key}`` of a live object of the
    calling account; None (-> InvalidPicUrl) for every other URL. Never opens a connection."""
    store = ctx.services.uploads
    if store.public_host is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.query or parts.fragment:
        return None
    if parts.netloc.lower() != store.public_host.strip().lower():  # also refuses user:pass@ forms
        return None
    key = store.key_from_url_path(parts.path)
    if key is None:
        return None
    return store.read(ctx.account.id, key)


if resolve_upload_url not in URL_RESOLVERS:
    URL_RESOLVERS.append(resolve_upload_url)
