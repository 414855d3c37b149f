"""The tenant's dashboard: balance, and every instance with its state, package, cycle and usage (pictures
stored against capacity, search QPS used against the limit over the last hour)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from lookalike.api.console.charts import MinutePoint, qps_chart, qps_summary
from lookalike.api.console.web import ConsoleRoute, SessionDep, money, render, services
from lookalike.domain.models import Instance
from lookalike.service.usage import UsageWindow

router = APIRouter(prefix="/console", route_class=ConsoleRoute)

CHART_MINUTES = 60


@router.get("/dashboard", include_in_schema=False)
def dashboard(request: Request, session: SessionDep) -> Response:
    svc = services(request)
    instances = svc.accounts.list_instances(session.account)
    usage = svc.usage.window([i.id for i in instances], CHART_MINUTES)
    now = svc.clock.now()
    cards = [
        card(instance, svc.billing.instance_status(instance), usage[instance.id], now)
        for instance in instances
    ]
    balance = money(svc, svc.billing.balance(session.account.id))
    released = svc.accounts.list_released(session.account)
    context = {"nav": "dashboard", "cards": cards, "balance": balance, "released": released}
    return render(request, "dashboard.html", context)


def card(instance: Instance, status: dict[str, Any], usage: UsageWindow, now: datetime) -> dict[str, Any]:
    capacity, stored = int(status["capacity"]), int(status["usage"])
    percent = min(100.0, 100.0 * stored / capacity) if capacity else 0.0
    points = [MinutePoint(m.minute, m.peak_per_second, m.searches, m.throttled) for m in usage.minutes]
    qps = status["qps"] or instance.search_qps
    release_at = datetime.fromisoformat(status["release_at"]) if status["release_at"] else None
    return {
        "instance": instance,
        "status": status,
        "pictures_percent": round(percent, 1),
        "days_to_release": days_left(release_at, now)
        if status["state"] == "expired" and release_at
        else None,
        "release_at": release_at,
        "qps": qps,
        "chart": qps_chart(points, qps),
        "chart_summary": qps_summary(points, qps),
        "throttled": usage.throttled,
    }


def days_left(moment: datetime, now: datetime) -> int:
    """Whole days until `moment`, a started day counting as one (released in 1 day, never in 0 days)."""
    return max(0, math.ceil((moment - now) / timedelta(days=1)))
