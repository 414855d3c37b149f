"""Access keys: the signed-in account's own AccessKeys; create (the secret shown once), disable, enable,
delete (after a confirm page). Only the account's own keys: see service/tenant_keys.py."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response

from lookalike.api.console.web import ConsoleRoute, FormDep, SessionDep, redirect, render
from lookalike.api.shared.dependencies import Accounts
from lookalike.service.tenant_keys import TenantKeys

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


def tenant_keys(accounts: Accounts) -> TenantKeys:
    return TenantKeys(accounts)


Keys = Annotated[TenantKeys, Depends(tenant_keys)]


@router.get("/keys", include_in_schema=False)
def keys_page(request: Request, session: SessionDep, own_keys: Keys) -> Response:
    keys = own_keys.list(session.account)
    enabled = sum(1 for k in keys if not k.disabled)
    return render(request, "keys.html", {"nav": "keys", "keys": keys, "enabled": enabled})


@router.post("/keys", include_in_schema=False)
def create_key(request: Request, session: SessionDep, _form: FormDep, keys: Keys) -> Response:
    # Rendered by the POST itself, not redirected: the secret exists in plaintext only in this response
    # (no-store), and no later page can show it again.
    key = keys.create(session.account)
    return render(request, "key_created.html", {"key": key, "welcome": False, "nav": "keys"}, status=201)


@router.post("/keys/{key_id}/disable", include_in_schema=False)
def disable_key(request: Request, key_id: str, session: SessionDep, _form: FormDep, keys: Keys) -> Response:
    keys.set_disabled(session.account, key_id, True)
    notice = f"AccessKey {key_id} is disabled: requests signed with it are refused."
    if keys.enabled_count(session.account) == 0:
        notice += " No enabled key is left, so the API refuses every request until you enable or create one."
    return redirect(request, "/console/keys", notice)


@router.post("/keys/{key_id}/enable", include_in_schema=False)
def enable_key(request: Request, key_id: str, session: SessionDep, _form: FormDep, keys: Keys) -> Response:
    keys.set_disabled(session.account, key_id, False)
    return redirect(request, "/console/keys", f"AccessKey {key_id} is enabled again.")


@router.get("/keys/{key_id}/delete", include_in_schema=False)
def confirm_delete(request: Request, key_id: str, session: SessionDep, keys: Keys) -> Response:
    key = keys.get(session.account, key_id)
    context = {
        "nav": "keys",
        "key": key,
        "last_enabled": keys.is_last_enabled(session.account, key_id),
        "action": f"/console/keys/{quote(key_id, safe='')}/delete",
    }
    return render(request, "key_delete.html", context)


@router.post("/keys/{key_id}/delete", include_in_schema=False)
def delete_key(request: Request, key_id: str, session: SessionDep, _form: FormDep, keys: Keys) -> Response:
    keys.delete(session.account, key_id)
    return redirect(request, "/console/keys", f"AccessKey {key_id} is deleted.")
