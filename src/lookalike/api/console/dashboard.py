"""The tenant's dashboard: every instance with its state, package, cycle and usage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from lookalike.api.console.web import ConsoleRoute, SessionDep, render, services

router = APIRouter(prefix="/console", route_class=ConsoleRoute)


@router.get("/dashboard", include_in_schema=False)
def dashboard(request: Request, session: SessionDep) -> Response:
    svc = services(request)
    cards: list[dict[str, Any]] = []
    for instance in svc.accounts.list_instances(session.account):
        status = svc.billing.instance_status(instance)
        cards.append({"instance": instance, "status": status})
    return render(request, "dashboard.html", {"nav": "dashboard", "cards": cards})
