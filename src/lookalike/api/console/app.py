"""The console's pages under /console (`router`) and its own static files (`static_files`), which
lookalike.api.app mounts on the application."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.staticfiles import StaticFiles

from lookalike.api.console import (
    auth_pages,
    billing_pages,
    buy_pages,
    dashboard,
    duplicates_pages,
    instance_pages,
    keys_pages,
    operator_accounts,
    operator_pages,
    pictures_pages,
    search_pages,
)
from lookalike.api.console.web import HERE, ConsoleRoute, render
from lookalike.api.limits import Refusal
from lookalike.api.shared.dependencies import settings

# Each page module owns one area of the console and exports `router`.
PAGE_MODULES = [
    auth_pages,
    dashboard,
    operator_accounts,
    operator_pages,
    buy_pages,
    instance_pages,
    billing_pages,
    pictures_pages,
    search_pages,
    duplicates_pages,
    keys_pages,
]


def static_files() -> StaticFiles:
    """The console's scripts, styles and icons: mount at /console/static, before `router`."""
    return StaticFiles(directory=str(HERE / "static"))


_not_found = APIRouter(prefix="/console", route_class=ConsoleRoute)


@_not_found.get("/{rest:path}", include_in_schema=False)
def no_such_page(request: Request, rest: str) -> Response:
    context = {"title": "No such page", "message": f"There is no console page at /console/{rest}."}
    return render(request, "error.html", context, status=404)


router = APIRouter()
for _module in PAGE_MODULES:
    router.include_router(_module.router)
router.include_router(_not_found)  # last: only paths no page claimed


def console_refusal(request: Request, refusal: Refusal) -> Response:
    """The page for a request refused by its size, before a byte of it was parsed."""
    if refusal.status == 413:
        megabytes = settings(request).image_limits.max_bytes / (1024 * 1024)
        context = {
            "title": "Upload too large",
            "message": f"{refusal.reason} Pictures are at most {megabytes:.0f} MB.",
            "code": "InvalidPicContent",
        }
    else:
        context = {"title": "Request refused", "message": refusal.reason, "code": "InvalidParameter"}
    return render(request, "error.html", context, status=refusal.status)
