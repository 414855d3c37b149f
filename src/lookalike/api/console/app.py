"""Mount the console on the FastAPI application: its pages under /console, its own static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from lookalike.api.console import auth_pages, dashboard
from lookalike.api.console.web import HERE

# Each page module owns one area of the console and exports `router`.
PAGE_MODULES = [auth_pages, dashboard]


def install_console(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    for module in PAGE_MODULES:
        app.include_router(module.router)
