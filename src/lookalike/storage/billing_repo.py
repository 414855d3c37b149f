"""Billing rows in SQL. Every function takes the caller's Connection, so the billing service can put an
order, its ledger entry, the subscription change and the idempotency record into ONE transaction:
either all of a money-changing call is durable, or none of it."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import (
    events,
    idempotency_keys,
    instances,
    job_leases,
    ledger,
    orders,
    private_packages,
    settings_table,
    subscriptions,
    trial_claims,
)

TRIAL_SEATS_TOTAL = "trial_seats_total"
TRIAL_SEATS_USED = "trial_seats_used"
CLOCK_OFFSET = "clock_offset_seconds"


def new_order_id() -> str:
    return f"ord-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
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


def _subscription(row: Any) -> SubscriptionRow:
    return SubscriptionRow(
        id=int(row.id),
        instance_id=row.instance_id,
        order_id=row.order_id,
        package_id=row.package_id,
        capacity=int(row.capacity),
        qps=int(row.qps),
        cycle_price=int(row.cycle_price),
        currency=row.currency,
        cycle_start=as_utc(row.cycle_start),
        cycle_end=as_utc(row.cycle_end),
        period_unit=row.period_unit,
        period_count=int(row.period_count),
        effective_from=as_utc(row.effective_from),
        effective_to=as_utc(row.effective_to),
    )


# --- idempotency ---
@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status: int
    body: dict[str, Any]


def find_idempotent(conn: Connection, account_id: str, key: str) -> StoredResponse | None:
    row = conn.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
        )
    ).first()
    if row is None:
        return None
    return StoredResponse(row.request_hash, int(row.status), json.loads(row.response))


def store_idempotent(
    conn: Connection,
    account_id: str,
    key: str,
    request_hash: str,
    status: int,
    body: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        insert(idempotency_keys).values(
            account_id=account_id,
            key=key,
            request_hash=request_hash,
            response=json.dumps(body, sort_keys=True),
            status=status,
            created_at=now,
        )
    )


# --- ledger ---
def balance(conn: Connection, account_id: str, currency: str) -> int:
    value = conn.execute(
        select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
            ledger.c.account_id == account_id, ledger.c.currency == currency
        )
    ).scalar_one()
    return int(value)


def append_ledger(
    conn: Connection,
    *,
    account_id: str,
    kind: str,
    amount: int,
    currency: str,
    order_id: str | None,
    now: datetime,
    reference: str | None = None,
) -> int:
    result = conn.execute(
        insert(ledger).values(
            account_id=account_id,
            kind=kind,
            amount=amount,
            currency=currency,
            order_id=order_id,
            reference=reference,
            created_at=now,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def ledger_entries(conn: Connection, account_id: str, limit: int = 200) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(ledger).where(ledger.c.account_id == account_id).order_by(ledger.c.id.desc()).limit(limit)
    ).all()
    return [
        {
            "id": int(r.id),
            "kind": r.kind,
            "amount": int(r.amount),
            "currency": r.currency,
            "order_id": r.order_id,
            "reference": r.reference,
            "created_at": as_utc(r.created_at).isoformat(),
        }
        for r in rows
    ]


# --- orders ---
def insert_order(
    conn: Connection,
    *,
    order_id: str,
    account_id: str,
    instance_id: str | None,
    kind: str,
    amount: int,
    currency: str,
    receipt: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        insert(orders).values(
            id=order_id,
            account_id=account_id,
            instance_id=instance_id,
            kind=kind,
            amount=amount,
            currency=currency,
            receipt=json.dumps(receipt, sort_keys=True),
            created_at=now,
        )
    )


def list_orders(conn: Connection, account_id: str | None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(orders).order_by(orders.c.created_at.desc(), orders.c.id).limit(limit)
    if account_id is not None:
        query = query.where(orders.c.account_id == account_id)
    return [
        {
            "id": r.id,
            "account_id": r.account_id,
            "instance_id": r.instance_id,
            "kind": r.kind,
            "amount": int(r.amount),
            "currency": r.currency,
            "receipt": json.loads(r.receipt),
            "created_at": as_utc(r.created_at).isoformat(),
        }
        for r in conn.execute(query).all()
    ]


def get_order(conn: Connection, order_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
    if row is None:
        return None
    return {
        "id": row.id,
        "account_id": row.account_id,
        "instance_id": row.instance_id,
        "kind": row.kind,
        "amount": int(row.amount),
        "currency": row.currency,
        "receipt": json.loads(row.receipt),
        "created_at": as_utc(row.created_at).isoformat(),
    }


# --- subscriptions ---
def insert_subscription(conn: Connection, row: SubscriptionRow) -> None:
    values = {k: v for k, v in row.__dict__.items() if k != "id"}
    conn.execute(insert(subscriptions).values(**values))


def subscriptions_of(conn: Connection, instance_id: str) -> list[SubscriptionRow]:
    rows = conn.execute(
        select(subscriptions)
        .where(subscriptions.c.instance_id == instance_id)
        .order_by(subscriptions.c.effective_from, subscriptions.c.id)
    ).all()
    return [_subscription(r) for r in rows]


def subscription_at(conn: Connection, instance_id: str, moment: datetime) -> SubscriptionRow | None:
    row = conn.execute(
        select(subscriptions)
        .where(
            subscriptions.c.instance_id == instance_id,
            subscriptions.c.effective_from <= moment,
            subscriptions.c.effective_to > moment,
        )
        .order_by(subscriptions.c.id.desc())
    ).first()
    return _subscription(row) if row else None


def last_subscription(conn: Connection, instance_id: str) -> SubscriptionRow | None:
    row = conn.execute(
        select(subscriptions)
        .where(subscriptions.c.instance_id == instance_id)
        .order_by(subscriptions.c.effective_to.desc(), subscriptions.c.id.desc())
    ).first()
    return _subscription(row) if row else None


def end_subscription(conn: Connection, subscription_id: int, moment: datetime) -> None:
    conn.execute(
        update(subscriptions).where(subscriptions.c.id == subscription_id).values(effective_to=moment)
    )


# --- instances (billing columns) ---
def lock_instance(conn: Connection, instance_id: str) -> Any:
    return conn.execute(select(instances).where(instances.c.id == instance_id).with_for_update()).first()


def set_paid_until(conn: Connection, instance_id: str, paid_until: datetime, status: str) -> None:
    conn.execute(
        update(instances).where(instances.c.id == instance_id).values(expires_at=paid_until, status=status)
    )


def set_status(conn: Connection, instance_id: str, from_status: str, to_status: str, now: datetime) -> bool:
    """Conditional transition: only one of several racing processes sees rowcount 1."""
    values: dict[str, Any] = {"status": to_status}
    if to_status == "released":
        values["released_at"] = now
    result = conn.execute(
        update(instances)
        .where(instances.c.id == instance_id, instances.c.status == from_status)
        .values(**values)
    )
    return result.rowcount == 1


def set_auto_renew(
    conn: Connection, instance_id: str, enabled: bool, unit: str | None, count: int | None
) -> None:
    conn.execute(
        update(instances)
        .where(instances.c.id == instance_id)
        .values(auto_renew=enabled, auto_renew_unit=unit, auto_renew_count=count)
    )


@dataclass(frozen=True)
class SweepRow:
    id: str
    account_id: str
    name: str
    status: str
    paid_until: datetime | None
    auto_renew: bool
    auto_renew_unit: str | None
    auto_renew_count: int | None


def instances_to_sweep(conn: Connection) -> list[SweepRow]:
    rows = conn.execute(select(instances).where(instances.c.status != "released")).all()
    return [
        SweepRow(
            id=r.id,
            account_id=r.account_id,
            name=r.name,
            status=r.status,
            paid_until=as_utc(r.expires_at) if r.expires_at else None,
            auto_renew=bool(r.auto_renew),
            auto_renew_unit=r.auto_renew_unit,
            auto_renew_count=r.auto_renew_count,
        )
        for r in rows
    ]


# --- private packages ---
def insert_private_package(
    conn: Connection,
    *,
    package_id: str,
    account_id: str,
    capacity: int,
    qps: int,
    monthly: int,
    yearly: int,
    currency: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(private_packages).values(
            id=package_id,
            account_id=account_id,
            capacity=capacity,
            qps=qps,
            monthly=monthly,
            yearly=yearly,
            currency=currency,
            created_at=now,
        )
    )


def private_packages_for(conn: Connection, account_id: str | None) -> list[Any]:
    query = select(private_packages).order_by(private_packages.c.created_at)
    if account_id is not None:
        query = query.where(private_packages.c.account_id == account_id)
    return list(conn.execute(query).all())


# --- trials and settings ---
def get_setting(conn: Connection, key: str, default: int) -> int:
    value = conn.execute(
        select(settings_table.c.value).where(settings_table.c.key == key)
    ).scalar_one_or_none()
    return default if value is None else int(value)


def put_setting(conn: Connection, key: str, value: int) -> None:
    updated = conn.execute(update(settings_table).where(settings_table.c.key == key).values(value=value))
    if updated.rowcount == 0:
        conn.execute(insert(settings_table).values(key=key, value=value))


def claim_trial_seat(conn: Connection, default_total: int) -> bool:
    """Take one seat if any is left: a conditional increment, atomic under concurrent claims."""
    total = get_setting(conn, TRIAL_SEATS_TOTAL, default_total)
    if (
        conn.execute(select(settings_table.c.key).where(settings_table.c.key == TRIAL_SEATS_USED)).first()
        is None
    ):
        conn.execute(insert(settings_table).values(key=TRIAL_SEATS_USED, value=0))
    result = conn.execute(
        update(settings_table)
        .where(settings_table.c.key == TRIAL_SEATS_USED, settings_table.c.value < total)
        .values(value=settings_table.c.value + 1)
    )
    return result.rowcount == 1


def has_trial(conn: Connection, account_id: str) -> bool:
    return (
        conn.execute(select(trial_claims.c.account_id).where(trial_claims.c.account_id == account_id)).first()
        is not None
    )


def record_trial(conn: Connection, account_id: str, instance_id: str, now: datetime) -> None:
    conn.execute(insert(trial_claims).values(account_id=account_id, instance_id=instance_id, created_at=now))


# --- events ---
def add_event(
    conn: Connection,
    *,
    account_id: str,
    instance_id: str | None,
    kind: str,
    data: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
) -> bool:
    """Append an event; with a dedupe key a repeat is silently skipped (sweeps are idempotent)."""
    if dedupe_key is not None:
        exists = conn.execute(select(events.c.id).where(events.c.dedupe_key == dedupe_key)).first()
        if exists is not None:
            return False
    try:
        with conn.begin_nested():
            conn.execute(
                insert(events).values(
                    account_id=account_id,
                    instance_id=instance_id,
                    kind=kind,
                    data=json.dumps(data, sort_keys=True),
                    dedupe_key=dedupe_key,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False  # another process recorded the same event first
    return True


def _event_json(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "account_id": r.account_id,
        "instance_id": r.instance_id,
        "kind": r.kind,
        "data": json.loads(r.data),
        "created_at": as_utc(r.created_at).isoformat(),
    }


def list_events(
    conn: Connection, account_id: str | None, after_id: int = 0, limit: int = 200
) -> list[dict[str, Any]]:
    query = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
    if account_id is not None:
        query = query.where(events.c.account_id == account_id)
    return [_event_json(r) for r in conn.execute(query).all()]


def recent_events(conn: Connection, account_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` events, newest first (list_events pages forward from the oldest)."""
    query = select(events).order_by(events.c.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(events.c.account_id == account_id)
    return [_event_json(r) for r in conn.execute(query).all()]


# --- leases ---
def try_lease(conn: Connection, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Claim or extend a named lease; True when `holder` owns it until `until`."""
    row = conn.execute(select(job_leases).where(job_leases.c.name == name).with_for_update()).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(job_leases).values(name=name, holder=holder, lease_until=until))
        except IntegrityError:
            return False
        return True
    result = conn.execute(
        update(job_leases)
        .where(
            job_leases.c.name == name,
            and_(
                (job_leases.c.holder == holder) | (job_leases.c.lease_until <= now),
            ),
        )
        .values(holder=holder, lease_until=until)
    )
    return result.rowcount == 1
