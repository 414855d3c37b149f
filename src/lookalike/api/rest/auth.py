"""Authentication of the native API: HTTP Basic (RFC 7617) with AccessKeyId as user and secret as password.

Basic over TLS is what every HTTP client speaks without a library; the Alibaba dialect keeps its own
signature schemes. Terminate TLS in front of Lookalike when it leaves loopback.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account
from lookalike.service.container import Services


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def parse_basic(header: str | None) -> tuple[str, str]:
    if not header:
        raise LookalikeError(
            e.MISSING_CREDENTIALS, "Send 'Authorization: Basic base64(AccessKeyId:AccessKeySecret)'."
        )
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise LookalikeError(e.MISSING_CREDENTIALS, "Only the Basic scheme is accepted on the native API.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise LookalikeError(e.MISSING_CREDENTIALS, "The Basic credentials are not valid base64.") from None
    key_id, sep, secret = decoded.partition(":")
    if not sep or not key_id:
        raise LookalikeError(
            e.MISSING_CREDENTIALS, "The Basic credentials need 'AccessKeyId:AccessKeySecret'."
        )
    return key_id, secret


def current_account(request: Request) -> Account:
    key_id, secret = parse_basic(request.headers.get("authorization"))
    return services(request).accounts.authenticate(key_id, secret)


def admin_account(request: Request) -> Account:
    account = current_account(request)
    if not account.is_admin:
        raise LookalikeError(e.NO_PERMISSION, "This operation needs the operator (admin) account.")
    return account
