"""Authentication of the native API: HTTP Basic (RFC 7617) with AccessKeyId as user and secret as password.

Basic over TLS is what every HTTP client speaks without a library; the Alibaba dialect keeps its own
signature schemes. Terminate TLS in front of Lookalike when it leaves loopback.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from lookalike.api.shared.dependencies import Accounts
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account


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


def authenticated_account(request: Request, accounts: Accounts) -> Account:
    key_id, secret = parse_basic(request.headers.get("authorization"))
    return accounts.authenticate(key_id, secret)


def admin_account(account: Annotated[Account, Depends(authenticated_account)]) -> Account:
    if not account.is_admin:
        raise LookalikeError(e.NO_PERMISSION, "This operation needs the operator (admin) account.")
    return account


# What a route declares: `account: AccountDep` (a tenant or the operator), `_admin: AdminDep`.
AccountDep = Annotated[Account, Depends(authenticated_account)]
AdminDep = Annotated[Account, Depends(admin_account)]
