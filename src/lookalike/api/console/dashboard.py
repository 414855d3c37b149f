"""The tenant's dashboard: balance, and every instance with its state, package, cycle and usage (pictures
stored against capacity, search QPS used against the limit over the last hour)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from lookalike.api.console.charts import qps_chart, qps_summary
from lookalike.api.console.web import ConsoleRoute, SessionDep, money, render
from lookalike.api.shared.dependencies import Accounts, Billing, ClockDep, Usage
from lookalike.domain.lifecycle import days_left
from lookalike.domain.models import Instance
from lookalike.domain.usage import UsageWindow

router = APIRouter(prefix="/console", route_class=ConsoleRoute)

CHART_MINUTES = 60


@router.get("/dashboard", include_in_schema=False)
def dashboard(
    request: Request,
    session: SessionDep,
    accounts: Accounts,
    billing: Billing,
    usage_meter: Usage,
    clock: ClockDep,
) -> Response:
    instances = accounts.list_instances(session.account)
    usage = usage_meter.window([i.id for i in instances], CHART_MINUTES)
    now = clock.now()
    cards = [
        card(instance, billing.subscriptions.instance_status(instance), usage[instance.id], now)
        for instance in instances
    ]
    balance = money(billing, billing.payments.balance(session.account.id))
    released = accounts.list_released(session.account)
    context = {"nav": "dashboard", "cards": cards, "balance": balance, "released": released}
    return render(request, "dashboard.html", context)


def card(instance: Instance, status: dict[str, Any], usage: UsageWindow, now: datetime) -> dict[str, Any]:
    capacity, stored = int(status["capacity"]), int(status["usage"])
    percent = min(100.0, 100.0 * stored / capacity) if capacity else 0.0
    qps = status["qps"] or instance.search_qps
    release_at = datetime.fromisoformat(status["release_at"]) if status["release_at"] else None
    summary = qps_summary(usage, qps)
    return {
        "instance": instance,
        "status": status,
        "pictures_percent": round(percent, 1),
        "days_to_release": days_left(now, release_at)
        if status["state"] == "expired" and release_at
        else None,
        "release_at": release_at,
        "qps": qps,
        "chart_summary": summary,
        "chart": qps_chart(usage, qps, label=summary),
        "throttled": usage.throttled,
    }
