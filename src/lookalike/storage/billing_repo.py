"""Billing rows in SQL: the billing store port (lookalike.service.billing.ports) on SQLite and PostgreSQL.

`SqlBillingStore.writing()` hands out one `BillingRecords` bound to one write transaction, so an order, its
ledger entry, the subscription change and the idempotency record are durable together or not at all."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookalike.domain.billing_records import (
    DuplicateRecord,
    InstanceTerms,
    StoredResponse,
    Subscription,
    SweepCandidate,
)
from lookalike.domain.catalogue import Package
from lookalike.domain.models import ServiceType
from lookalike.storage.accounts_repo import insert_instance
from lookalike.storage.db import write_transaction
from lookalike.storage.images_repo import purge_instance_rows
from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import (
    accounts,
    events,
    idempotency_keys,
    instances,
    ledger,
    orders,
    private_packages,
    settings_table,
    subscriptions,
    trial_claims,
)

TRIAL_SEATS_TOTAL = "trial_seats_total"
TRIAL_SEATS_USED = "trial_seats_used"


class SqlBillingStore:
    """Opens billing transactions on one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def reading(self) -> Iterator[BillingRecords]:
        with self._engine.connect() as conn:
            yield BillingRecords(conn)

    @contextmanager
    def writing(self) -> Iterator[BillingRecords]:
        """One write transaction holding the write lock from its first statement (SQLite: BEGIN IMMEDIATE;
        PostgreSQL: rows locked with the `lock_*` methods). A unique key taken by a concurrent writer raises
        DuplicateRecord, and nothing of the transaction stays."""
        try:
            with write_transaction(self._engine) as conn:
                yield BillingRecords(conn)
        except IntegrityError:
            raise DuplicateRecord() from None


def _subscription(row: Any) -> Subscription:
    return Subscription(
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


def _order_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "account_id": r.account_id,
        "instance_id": r.instance_id,
        "kind": r.kind,
        "amount": int(r.amount),
        "currency": r.currency,
        "receipt": json.loads(r.receipt),
        "created_at": as_utc(r.created_at).isoformat(),
    }


def _event_json(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "account_id": r.account_id,
        "instance_id": r.instance_id,
        "kind": r.kind,
        "data": json.loads(r.data),
        "created_at": as_utc(r.created_at).isoformat(),
    }


class BillingRecords:
    """Billing's reads and writes inside one transaction (the caller's `reading()` or `writing()`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @staticmethod
    def new_order_id() -> str:
        return f"ord-{secrets.token_hex(8)}"

    # --- locks ---
    def lock_account(self, account_id: str) -> None:
        """Serialize the account's money-changing calls (PostgreSQL: SELECT … FOR UPDATE; SQLite already
        holds the database's write lock)."""
        self._conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())

    def lock_instance(self, instance_id: str) -> InstanceTerms | None:
        """The instance's billing columns, its row locked until the transaction ends."""
        return self._terms(instance_id, lock=True)

    def instance_terms(self, instance_id: str) -> InstanceTerms | None:
        """The instance's billing columns, read without a lock."""
        return self._terms(instance_id, lock=False)

    def _terms(self, instance_id: str, *, lock: bool) -> InstanceTerms | None:
        query = select(instances.c.status, instances.c.expires_at, instances.c.auto_renew).where(
            instances.c.id == instance_id
        )
        row = self._conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        return InstanceTerms(
            status=row.status,
            paid_until=as_utc(row.expires_at) if row.expires_at else None,
            auto_renew=bool(row.auto_renew),
        )

    # --- idempotency ---
    def find_idempotent(self, account_id: str, key: str) -> StoredResponse | None:
        row = self._conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
            )
        ).first()
        if row is None:
            return None
        return StoredResponse(row.request_hash, int(row.status), json.loads(row.response))

    def store_idempotent(
        self, account_id: str, key: str, request_hash: str, status: int, body: dict[str, Any], now: datetime
    ) -> None:
        self._conn.execute(
            insert(idempotency_keys).values(
                account_id=account_id,
                key=key,
                request_hash=request_hash,
                response=json.dumps(body, sort_keys=True),
                status=status,
                created_at=now,
            )
        )

    # --- ledger (append-only) ---
    def balance(self, account_id: str, currency: str) -> int:
        value = self._conn.execute(
            select(func.coalesce(func.sum(ledger.c.amount), 0)).where(
                ledger.c.account_id == account_id, ledger.c.currency == currency
            )
        ).scalar_one()
        return int(value)

    def append_ledger(
        self,
        *,
        account_id: str,
        kind: str,
        amount: int,
        currency: str,
        order_id: str | None,
        now: datetime,
        reference: str | None = None,
    ) -> int:
        result = self._conn.execute(
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

    def ledger_entries(self, account_id: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._conn.execute(
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
        self,
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
        self._conn.execute(
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

    def list_orders(self, account_id: str | None, limit: int = 200) -> list[dict[str, Any]]:
        query = select(orders).order_by(orders.c.created_at.desc(), orders.c.id).limit(limit)
        if account_id is not None:
            query = query.where(orders.c.account_id == account_id)
        return [_order_json(r) for r in self._conn.execute(query).all()]

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(select(orders).where(orders.c.id == order_id)).first()
        return None if row is None else _order_json(row)

    # --- subscriptions ---
    def insert_subscription(self, row: Subscription) -> None:
        values = {k: v for k, v in row.__dict__.items() if k != "id"}
        self._conn.execute(insert(subscriptions).values(**values))

    def subscriptions_of(self, instance_id: str) -> list[Subscription]:
        rows = self._conn.execute(
            select(subscriptions)
            .where(subscriptions.c.instance_id == instance_id)
            .order_by(subscriptions.c.effective_from, subscriptions.c.id)
        ).all()
        return [_subscription(r) for r in rows]

    def subscription_at(self, instance_id: str, moment: datetime) -> Subscription | None:
        row = self._conn.execute(
            select(subscriptions)
            .where(
                subscriptions.c.instance_id == instance_id,
                subscriptions.c.effective_from <= moment,
                subscriptions.c.effective_to > moment,
            )
            .order_by(subscriptions.c.id.desc())
        ).first()
        return _subscription(row) if row else None

    def last_subscription(self, instance_id: str) -> Subscription | None:
        row = self._conn.execute(
            select(subscriptions)
            .where(subscriptions.c.instance_id == instance_id)
            .order_by(subscriptions.c.effective_to.desc(), subscriptions.c.id.desc())
        ).first()
        return _subscription(row) if row else None

    def end_subscription(self, subscription_id: int, moment: datetime) -> None:
        self._conn.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(effective_to=moment)
        )

    # --- instances (billing columns) ---
    def insert_instance(
        self,
        *,
        account_id: str,
        name: str,
        service_type: ServiceType,
        capacity: int,
        search_qps: int,
        paid_until: datetime,
        now: datetime,
    ) -> str:
        return insert_instance(
            self._conn,
            account_id=account_id,
            name=name,
            service_type=service_type,
            capacity=capacity,
            search_qps=search_qps,
            paid_until=paid_until,
            now=now,
        )

    def set_paid_until(self, instance_id: str, paid_until: datetime, status: str) -> None:
        self._conn.execute(
            update(instances)
            .where(instances.c.id == instance_id)
            .values(expires_at=paid_until, status=status)
        )

    def move_status(self, instance_id: str, from_status: str, to_status: str, now: datetime) -> bool:
        """Conditional transition: of several racing processes exactly one sees True."""
        values: dict[str, Any] = {"status": to_status}
        if to_status == "released":
            values["released_at"] = now
        result = self._conn.execute(
            update(instances)
            .where(instances.c.id == instance_id, instances.c.status == from_status)
            .values(**values)
        )
        return result.rowcount == 1

    def set_auto_renew(self, instance_id: str, enabled: bool, unit: str | None, count: int | None) -> None:
        self._conn.execute(
            update(instances)
            .where(instances.c.id == instance_id)
            .values(auto_renew=enabled, auto_renew_unit=unit, auto_renew_count=count)
        )

    def instances_to_sweep(self) -> list[SweepCandidate]:
        rows = self._conn.execute(select(instances).where(instances.c.status != "released")).all()
        return [
            SweepCandidate(
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

    def purge_instance_data(self, instance_id: str) -> None:
        """Delete a released instance's pictures, thumbnails, features and change log (orders and the ledger
        stay)."""
        purge_instance_rows(self._conn, instance_id)

    # --- private packages ---
    def insert_private_package(self, package: Package, now: datetime) -> None:
        assert package.private_for is not None
        self._conn.execute(
            insert(private_packages).values(
                id=package.id,
                account_id=package.private_for,
                capacity=package.capacity,
                qps=package.qps,
                monthly=package.monthly,
                yearly=package.yearly,
                currency=package.currency,
                created_at=now,
            )
        )

    def private_packages_for(self, account_id: str | None) -> list[Package]:
        query = select(private_packages).order_by(private_packages.c.created_at)
        if account_id is not None:
            query = query.where(private_packages.c.account_id == account_id)
        return [
            Package(
                id=row.id,
                capacity=int(row.capacity),
                qps=int(row.qps),
                monthly=int(row.monthly),
                yearly=int(row.yearly),
                currency=row.currency,
                private_for=row.account_id,
            )
            for row in self._conn.execute(query).all()
        ]

    # --- trials ---
    def _setting(self, key: str, default: int) -> int:
        value = self._conn.execute(
            select(settings_table.c.value).where(settings_table.c.key == key)
        ).scalar_one_or_none()
        return default if value is None else int(value)

    def trial_seats(self, default_total: int) -> tuple[int, int]:
        """(total, used) trial seats."""
        return self._setting(TRIAL_SEATS_TOTAL, default_total), self._setting(TRIAL_SEATS_USED, 0)

    def set_trial_seats_total(self, total: int) -> None:
        updated = self._conn.execute(
            update(settings_table).where(settings_table.c.key == TRIAL_SEATS_TOTAL).values(value=total)
        )
        if updated.rowcount == 0:
            self._conn.execute(insert(settings_table).values(key=TRIAL_SEATS_TOTAL, value=total))

    def claim_trial_seat(self, default_total: int) -> bool:
        """Take one seat if any is left: a conditional increment, atomic under concurrent claims."""
        total = self._setting(TRIAL_SEATS_TOTAL, default_total)
        used_row = self._conn.execute(
            select(settings_table.c.key).where(settings_table.c.key == TRIAL_SEATS_USED)
        ).first()
        if used_row is None:
            self._conn.execute(insert(settings_table).values(key=TRIAL_SEATS_USED, value=0))
        result = self._conn.execute(
            update(settings_table)
            .where(settings_table.c.key == TRIAL_SEATS_USED, settings_table.c.value < total)
            .values(value=settings_table.c.value + 1)
        )
        return result.rowcount == 1

    def has_trial(self, account_id: str) -> bool:
        found = self._conn.execute(
            select(trial_claims.c.account_id).where(trial_claims.c.account_id == account_id)
        ).first()
        return found is not None

    def record_trial(self, account_id: str, instance_id: str, now: datetime) -> None:
        self._conn.execute(
            insert(trial_claims).values(account_id=account_id, instance_id=instance_id, created_at=now)
        )

    # --- events ---
    def add_event(
        self,
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
            exists = self._conn.execute(select(events.c.id).where(events.c.dedupe_key == dedupe_key)).first()
            if exists is not None:
                return False
        try:
            with self._conn.begin_nested():
                self._conn.execute(
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

    def list_events(
        self, account_id: str | None, after_id: int = 0, limit: int = 200
    ) -> list[dict[str, Any]]:
        query = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
        if account_id is not None:
            query = query.where(events.c.account_id == account_id)
        return [_event_json(r) for r in self._conn.execute(query).all()]

    def recent_events(self, account_id: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` events, newest first (list_events pages forward from the oldest)."""
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        if account_id is not None:
            query = query.where(events.c.account_id == account_id)
        return [_event_json(r) for r in self._conn.execute(query).all()]
