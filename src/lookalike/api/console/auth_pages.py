"""Sign in, sign up (when the operator allows it) and sign out."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from lookalike.api.console.web import (
    COOKIE_NAME,
    CSRF_FIELD,
    ConsoleRoute,
    FormDep,
    SessionDep,
    field,
    read_form,
    redirect,
    render,
)
from lookalike.api.shared.dependencies import ConsoleAuth, SettingsDep
from lookalike.config import Settings
from lookalike.domain.errors import LookalikeError
from lookalike.service.console_auth import NewSession

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


def _safe_next(target: str) -> str:
    """Only console paths of this server: an open redirect would make the sign-in page a phishing aid."""
    if target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/dashboard"


def _with_cookie(config: Settings, response: Response, new: NewSession) -> Response:
    response.set_cookie(
        COOKIE_NAME,
        new.token,
        max_age=int(config.console_session_ttl_s),
        path="/console",
        secure=config.console_secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


# Before there is a session, the sign-in and sign-up forms are guarded by a double-submit token: a random
# value in a SameSite=Strict cookie that the form must repeat. Another site can make a browser post the form
# but can neither read nor set that cookie, so it cannot sign a visitor into an account of its choosing.
FORM_COOKIE = "lookalike_form"
FORM_EXPIRED = "The form expired or came from another site; it has been renewed, please try again."


def _form_token(request: Request) -> str:
    existing = request.cookies.get(FORM_COOKIE)
    return existing if existing and len(existing) <= 64 else secrets.token_urlsafe(32)


def _form_page(
    request: Request, config: Settings, template: str, context: dict[str, Any], *, status: int = 200
) -> Response:
    """A pre-session form page carrying the token of the form cookie (set here if missing)."""
    token = _form_token(request)
    page = render(request, template, {**context, "form_token": token}, status=status)
    page.set_cookie(
        FORM_COOKIE,
        token,
        max_age=24 * 3600,
        path="/console",
        secure=config.console_secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return page


def _form_token_matches(request: Request, form: FormData) -> bool:
    cookie, sent = request.cookies.get(FORM_COOKIE), form.get(CSRF_FIELD)
    if not cookie or not isinstance(sent, str):
        return False
    return hmac.compare_digest(cookie.encode(), sent.encode())


@router.get("", include_in_schema=False)
def console_home(request: Request, auth: ConsoleAuth) -> Response:
    session = auth.session(request.cookies.get(COOKIE_NAME))
    return RedirectResponse("/console/dashboard" if session else "/console/sign-in", status_code=303)


@router.get("/sign-in", include_in_schema=False)
def sign_in_form(request: Request, config: SettingsDep, next: str = "/console/dashboard") -> Response:
    return _form_page(request, config, "sign_in.html", {"next": _safe_next(next), "name": ""})


@router.post("/sign-in", include_in_schema=False)
async def sign_in(request: Request, auth: ConsoleAuth, config: SettingsDep) -> Response:
    form = await read_form(request)
    name, password = field(form, "name"), form.get("password")
    target = _safe_next(field(form, "next", "/console/dashboard"))
    if not _form_token_matches(request, form):
        context = {"next": target, "name": name, "error": FORM_EXPIRED}
        return _form_page(request, config, "sign_in.html", context, status=403)
    try:
        new = auth.sign_in(name, password if isinstance(password, str) else "")
    except LookalikeError as exc:
        context = {"next": target, "name": name, "error": exc.message}
        return _form_page(request, config, "sign_in.html", context, status=exc.http_status)
    return _with_cookie(config, RedirectResponse(target, status_code=303), new)


@router.get("/sign-up", include_in_schema=False)
def sign_up_form(request: Request, config: SettingsDep) -> Response:
    return _form_page(request, config, "sign_up.html", {"name": ""})


@router.post("/sign-up", include_in_schema=False)
async def sign_up(request: Request, auth: ConsoleAuth, config: SettingsDep) -> Response:
    form = await read_form(request)
    name = field(form, "name")
    password, confirm = form.get("password"), form.get("confirm")
    if not _form_token_matches(request, form):
        return _form_page(request, config, "sign_up.html", {"name": name, "error": FORM_EXPIRED}, status=403)
    try:
        if password != confirm:
            raise LookalikeError("InvalidParameter", "The two passwords differ.")
        _account, key, new = auth.sign_up(name, password if isinstance(password, str) else "")
    except LookalikeError as exc:
        context = {"name": name, "error": exc.message}
        return _form_page(request, config, "sign_up.html", context, status=exc.http_status)
    request.state.console_session = new.session
    page = render(request, "key_created.html", {"key": key, "welcome": True}, status=201)
    return _with_cookie(config, page, new)


@router.post("/sign-out", include_in_schema=False)
def sign_out(request: Request, session: SessionDep, _form: FormDep, auth: ConsoleAuth) -> Response:
    auth.sign_out(session)
    response = redirect(request, "/console/sign-in")
    response.delete_cookie(COOKIE_NAME, path="/console")
    return response
