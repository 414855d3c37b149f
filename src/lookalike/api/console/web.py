"""What every console page shares: templates, the signed-in session, CSRF-checked forms, errors as pages.

Pages are rendered on the server (Jinja2) and every action is a plain HTML form that posts and redirects
(post/redirect/get), so the console works without JavaScript; the little script there is (static/*.js)
only adds conveniences such as drawing a search region. Each form carries the session's CSRF token, checked
on every POST before anything else runs; the session cookie is HttpOnly, SameSite=Lax and (by default)
Secure.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from lookalike.api.shared.dependencies import all_services, console_auth_service, settings
from lookalike.domain.errors import LookalikeError
from lookalike.domain.money import format_amount
from lookalike.domain.validation import MAX_INSTANCE_NAME
from lookalike.service.billing import Billing as BillingServices
from lookalike.service.console_auth import ConsoleSession
from lookalike.service.container import Services

COOKIE_NAME = "lookalike_session"
CSRF_FIELD = "csrf_token"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


class SignInRequired(Exception):
    """No live session: the page redirects to the sign-in form (and back afterwards)."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token."""


def _session_from_cookie(request: Request) -> ConsoleSession | None:
    return console_auth_service(request).session(request.cookies.get(COOKIE_NAME))


def signed_in(request: Request) -> ConsoleSession:
    session = _session_from_cookie(request)
    if session is None:
        raise SignInRequired()
    request.state.console_session = session
    return session


def operator(session: Annotated[ConsoleSession, Depends(signed_in)]) -> ConsoleSession:
    if not session.account.is_admin:
        raise LookalikeError("NoPermission", "This page is for the operator.", status=403)
    return session


SessionDep = Annotated[ConsoleSession, Depends(signed_in)]
OperatorDep = Annotated[ConsoleSession, Depends(operator)]


async def read_form(request: Request) -> FormData:
    """The posted form, with at most `request_limits.max_form_fields` fields (the body itself is bounded by
    lookalike.api.limits before it gets here); a malformed or oversized form is the page's error."""
    limit = settings(request).request_limits.max_form_fields
    try:
        return await request.form(max_fields=limit, max_files=limit)
    except StarletteHTTPException as exc:
        raise LookalikeError("InvalidParameter", f"The form could not be read: {exc.detail}") from None


async def checked_form(request: Request, session: SessionDep) -> FormData:
    """The posted form, after its CSRF token matched the session's (compared in constant time)."""
    form = await read_form(request)
    token = form.get(CSRF_FIELD)
    if not session.csrf_matches(token if isinstance(token, str) else None):
        raise CsrfRejected()
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def field(form: FormData, name: str, default: str = "") -> str:
    """A text field of a form, stripped; files and missing fields give `default`."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    if session is None:
        session = _session_from_cookie(request)
    # Every page's frame (session, flash, clock, category names): read here, not by each page.
    svc = all_services(request)
    flash = svc.console_auth.pop_flash(session) if session is not None else None
    base: dict[str, Any] = {
        "session": session,
        "account": session.account if session else None,
        "csrf_token": session.csrf_token if session else "",
        "flash": flash,
        "signup_allowed": svc.console_auth.signup_allowed,
        "demo_clock": svc.lifecycle.clock_can_move,
        "now": svc.clock.now(),
        "category_names": dict(svc.images.categories()),  # id -> name, for the picture tiles
    }
    response = templates.TemplateResponse(request, template, {**base, **(context or {})}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(request: Request, url: str, notice: str | None = None) -> RedirectResponse:
    """303 to `url` (post/redirect/get), with a one-shot notice for the next page."""
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    if notice and session is not None:
        console_auth_service(request).flash(session, notice)
    return RedirectResponse(url, status_code=303)


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/sign-in?next={quote(target, safe='')}", status_code=303)


def money(source: BillingServices | Services, minor: int) -> str:
    """An amount in the catalogue's currency; pages pass their billing services (tests the container)."""
    billing = source.billing if isinstance(source, Services) else source
    return format_amount(minor, billing.catalogues.currency, billing.catalogues.exponent)


# Only our own scripts, styles and pictures (data:/blob: for the search preview), never framed by another
# site (clickjacking), forms post only here. Inline style attributes carry computed widths (bars, boxes).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; style-src-attr 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class ConsoleRoute(APIRoute):
    """Console routes answer with pages: a refusal becomes the page's error, never a JSON body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response = await answer(request)
            response.headers.update(SECURITY_HEADERS)
            return response

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except CsrfRejected:
                return render(
                    request,
                    "error.html",
                    {
                        "title": "Form expired",
                        "message": "The form is stale or came from elsewhere. Reload the page and try again.",
                    },
                    status=403,
                )
            except StarletteHTTPException as exc:  # e.g. a form the parser refused, before any dependency ran
                return render(
                    request,
                    "error.html",
                    {"title": "That did not work", "message": str(exc.detail), "code": "InvalidParameter"},
                    status=exc.status_code if 400 <= exc.status_code < 500 else 400,
                )
            except LookalikeError as exc:
                status = exc.http_status if 400 <= exc.http_status < 600 else 400
                return render(
                    request,
                    "error.html",
                    {"title": "That did not work", "message": exc.message, "code": exc.code},
                    status=status,
                )

        return handle


def new_idempotency_key() -> str:
    """The key a money form carries, made when the form is drawn: resubmitting it replays the one order."""
    return f"console-{secrets.token_urlsafe(18)}"


def when(value: datetime | str | None) -> str:
    """Dates as the console shows them: UTC, to the minute."""
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _day(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d")


def _count(value: int) -> str:
    return f"{value:,}"


templates.env.filters["when"] = when
templates.env.filters["day"] = _day
templates.env.filters["count"] = _count
templates.env.globals["MAX_INSTANCE_NAME"] = MAX_INSTANCE_NAME
