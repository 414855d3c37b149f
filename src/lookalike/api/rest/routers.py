"""The native API's routers (all under /v1), in the order the composition root mounts them."""

from __future__ import annotations

from fastapi import APIRouter

from lookalike.api.rest import billing_routes, duplicate_routes, routes, task_routes, text_routes

ROUTERS: list[APIRouter] = [
    routes.router,
    billing_routes.router,
    task_routes.router,
    text_routes.router,
    duplicate_routes.router,
]
