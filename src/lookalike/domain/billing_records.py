"""What billing keeps about subscriptions, idempotent calls and instances, as plain values.

The billing services read and write these through the billing store port; the SQL store builds them from its
rows, so neither side knows the other's types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Subscription:
    """One package held by an instance from `effective_from` to `effective_to`, inside its billing cycle."""

    id: int  # 0 before it is stored
    instance_id: str
    order_id: str
    package_id: str
    capacity: int
    qps: int
    cycle_price: int
    currency: str
    cycle_start: datetime
    cycle_end: datetime
    period_unit: str
    period_count: int
    effective_from: datetime
    effective_to: datetime


@dataclass(frozen=True)
class StoredResponse:
    """The recorded answer of an idempotent call, replayed to a retry with the same key."""

    request_hash: str
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class InstanceTerms:
    """An instance's billing columns as read under its row lock."""

    status: str
    paid_until: datetime | None
    auto_renew: bool


@dataclass(frozen=True)
class SweepCandidate:
    """An unreleased instance, as the lifecycle sweep reads it."""

    id: str
    account_id: str
    name: str
    status: str
    paid_until: datetime | None
    auto_renew: bool
    auto_renew_unit: str | None
    auto_renew_count: int | None


class DuplicateRecord(Exception):
    """A unique key (an idempotency key, a package id) that a concurrent writer took first; the store raises
    it instead of its driver's integrity error."""
