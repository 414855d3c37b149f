"""The SDK's `*_advance` methods, served by Lookalike itself (reference §6, captures J, K, L).

`add_image_advance`, `search_image_by_pic_advance` and `compare_similar_by_image_advance` take a file object
and, instead of sending base64, do three things:

1. ``AuthorizeFileUpload`` (open platform, version 2019-12-19) -> :func:`authorize_file_upload`
   (authorize.py), registered in the action table like every other action, so it is signed and verified like
   them. It is sent to ``client._open_platform_endpoint`` (a private attribute:
   ``Config.open_platform_endpoint`` is ignored by tea-openapi), which a migrating client sets to the
   Lookalike API's host:port.
2. An OSS PostObject to ``https://{Bucket}.{Endpoint}/`` (HTTPS is hard-coded in the SDK) ->
   :func:`create_upload_app` (post_object.py), an ASGI app served over TLS by :class:`UploadListener`
   (listener.py, ``lookalike serve --upload-port``). The certificate is the operator's or a self-signed one
   from :func:`ensure_tls_files` (tls.py); clients trust it with ``RuntimeOptions(ignore_ssl=True)`` or
   ``RuntimeOptions(ca=<cert.pem>)``.
3. The real action with ``PicContent = "http://{Bucket}.{Endpoint}/{ObjectKey}"`` ->
   :func:`resolve_upload_url` (authorize.py), appended to ``pic_content.URL_RESOLVERS``. It claims a URL only
   when it names the configured upload host and an object of the CALLING account that is still live;
   anything else is left unclaimed, which the action answers with ``InvalidPicUrl``. Nothing is ever fetched
   over the network (no SSRF).

The answer's ``AccessKeyId`` is a per-upload token id and ``Signature`` an HMAC of the policy under a
server-side key (service/uploads.py); no tenant secret ever leaves the server.
"""

from lookalike.api.alibaba.upload.authorize import (
    OPEN_PLATFORM_VERSION,
    UPLOAD_DISABLED,
    authorize_file_upload,
    resolve_upload_url,
)
from lookalike.api.alibaba.upload.listener import UploadListener
from lookalike.api.alibaba.upload.post_object import create_upload_app
from lookalike.api.alibaba.upload.tls import ensure_tls_files

__all__ = [
    "OPEN_PLATFORM_VERSION",
    "UPLOAD_DISABLED",
    "UploadListener",
    "authorize_file_upload",
    "create_upload_app",
    "ensure_tls_files",
    "resolve_upload_url",
]
