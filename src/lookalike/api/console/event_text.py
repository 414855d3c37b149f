"""The account's event feed (billing.receipts.events) as sentences a tenant reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from lookalike.api.console.web import when
from lookalike.domain.lifecycle import release_at

Money = Callable[[int], str]


def describe(event: Mapping[str, Any], names: Mapping[str, str], money: Money) -> str:
    """One event as a sentence; `names` maps instance ids to names, `money` formats minor units."""
    kind: str = event["kind"]
    data: Mapping[str, Any] = event.get("data") or {}
    instance = data.get("name") or names.get(event.get("instance_id") or "", "an instance")
    order = f" (order {data['order_id']})" if data.get("order_id") else ""
    if kind == "charged":
        return f"Charged {money(int(data['amount']))}{order}."
    if kind == "refunded":
        return f"Refunded {money(int(data['amount']))} to the balance{order}."
    if kind == "topped_up":
        return f"Balance topped up by {money(int(data['amount']))}{order}."
    if kind == "instance_created":
        return f"Instance {instance} created with package {data.get('package_id')}{order}."
    if kind == "package_changed":
        return f"{instance}: package changed from {data.get('from')} to {data.get('to')}{order}."
    if kind == "renewed":
        how = "Auto-renewed" if data.get("automatic") else "Renewed"
        return (
            f"{how} {instance} with {data.get('package_id')}: "
            f"{when(data.get('cycle_start'))} to {when(data.get('cycle_end'))}{order}."
        )
    if kind.startswith("expiring_in_") and kind.endswith("d"):
        days = kind.removeprefix("expiring_in_").removesuffix("d")
        unit = "day" if days == "1" else "days"
        return f"{instance} expires in {days} {unit}, at {when(data.get('paid_until'))}. Renew to keep it."
    if kind == "expired":
        paid_until = data.get("paid_until")
        release = release_at(datetime.fromisoformat(paid_until)) if paid_until else None
        return f"{instance} expired; it is kept until {when(release)}, then released unless renewed."
    if kind == "released":
        return f"{instance} was released: its pictures are deleted and its name is free."
    if kind == "auto_renew_failed":
        return f"Auto-renew of {instance} failed: {data.get('message', data.get('code', 'unknown reason'))}"
    return f"{kind.replace('_', ' ').capitalize()}: {instance}."
