"""Accounts, access keys and instances in SQL."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookalike.domain.errors import INSTANCE_ALREADY_EXISTS, INVALID_PARAMETER, LookalikeError
from lookalike.domain.models import AccessKey, Account, Instance, ServiceType
from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import access_keys, accounts, instances


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def _account(row: Any) -> Account:
    return Account(row.id, row.name, bool(row.is_admin), bool(row.disabled), as_utc(row.created_at))


def _instance(row: Any) -> Instance:
    return Instance(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        service_type=ServiceType(row.service_type),
        capacity=int(row.capacity),
        search_qps=int(row.search_qps),
        add_qps=row.add_qps,
        delete_qps=row.delete_qps,
        update_qps=row.update_qps,
        status=row.status,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
    )


def insert_instance(
    conn: Connection,
    *,
    account_id: str,
    name: str,
    service_type: ServiceType,
    capacity: int,
    search_qps: int,
    paid_until: datetime,
    now: datetime,
) -> str:
    """Insert an instance inside the caller's transaction (billing opens instances); capacity/QPS mirror
    its first package."""
    instance_id = _new_id("ins")
    taken = conn.execute(
        select(instances.c.id).where(instances.c.name == name, instances.c.status != "released")
    ).first()
    if taken is not None:
        raise LookalikeError(INSTANCE_ALREADY_EXISTS, f"An instance named {name!r} already exists.")
    try:
        with conn.begin_nested():
            conn.execute(
                insert(instances).values(
                    id=instance_id,
                    account_id=account_id,
                    name=name,
                    service_type=int(service_type),
                    capacity=capacity,
                    search_qps=search_qps,
                    status="active",
                    created_at=now,
                    expires_at=paid_until,
                    auto_renew=False,
                )
            )
    except IntegrityError as exc:
        raise LookalikeError(INSTANCE_ALREADY_EXISTS, f"An instance named {name!r} already exists.") from exc
    return instance_id


class AccountRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- accounts ---
    def create_account(self, name: str, *, is_admin: bool, now: datetime) -> Account:
        account_id = _new_id("acc")
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(accounts).values(
                        id=account_id, name=name, is_admin=is_admin, disabled=False, created_at=now
                    )
                )
        except IntegrityError as exc:
            raise LookalikeError(INVALID_PARAMETER, f"An account named {name!r} already exists.") from exc
        return Account(account_id, name, is_admin, False, now)

    def get_account(self, account_id: str) -> Account | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        return _account(row) if row else None

    def find_admin(self) -> Account | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(accounts).where(accounts.c.is_admin.is_(True)).order_by(accounts.c.created_at)
            ).first()
        return _account(row) if row else None

    def list_accounts(self) -> list[Account]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(accounts).order_by(accounts.c.created_at)).all()
        return [_account(r) for r in rows]

    def find_by_name(self, name: str) -> Account | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
        return _account(row) if row else None

    def set_account_disabled(self, account_id: str, disabled: bool) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(
                update(accounts).where(accounts.c.id == account_id).values(disabled=disabled)
            )
        return result.rowcount > 0

    # --- access keys ---
    def add_access_key(self, key_id: str, account_id: str, ciphertext: bytes, now: datetime) -> AccessKey:
        with self._engine.begin() as conn:
            conn.execute(
                insert(access_keys).values(
                    id=key_id,
                    account_id=account_id,
                    secret_ciphertext=ciphertext,
                    disabled=False,
                    created_at=now,
                )
            )
        return AccessKey(key_id, account_id, False, now)

    def get_access_key(self, key_id: str) -> tuple[AccessKey, bytes] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(access_keys).where(access_keys.c.id == key_id)).first()
        if row is None:
            return None
        key = AccessKey(row.id, row.account_id, bool(row.disabled), as_utc(row.created_at))
        return key, bytes(row.secret_ciphertext)

    def set_access_key_disabled(self, key_id: str, disabled: bool) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(
                update(access_keys).where(access_keys.c.id == key_id).values(disabled=disabled)
            )
        return result.rowcount > 0

    def delete_access_key(self, key_id: str) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(delete(access_keys).where(access_keys.c.id == key_id))
        return result.rowcount > 0

    def list_access_keys(self, account_id: str) -> list[AccessKey]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(access_keys)
                .where(access_keys.c.account_id == account_id)
                .order_by(access_keys.c.created_at)
            ).all()
        return [AccessKey(r.id, r.account_id, bool(r.disabled), as_utc(r.created_at)) for r in rows]


class InstanceRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def set_operation_limits(
        self, instance_id: str, *, add_qps: int | None, delete_qps: int | None, update_qps: int | None
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(instances)
                .where(instances.c.id == instance_id)
                .values(add_qps=add_qps, delete_qps=delete_qps, update_qps=update_qps)
            )

    def get(self, instance_id: str) -> Instance | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(instances).where(instances.c.id == instance_id)).first()
        return _instance(row) if row else None

    def get_by_name(self, name: str) -> Instance | None:
        """The live instance of that name; a released one has given its name up."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(instances).where(instances.c.name == name, instances.c.status != "released")
            ).first()
        return _instance(row) if row else None

    def list_for_account(self, account_id: str | None) -> list[Instance]:
        query = select(instances).where(instances.c.status != "released").order_by(instances.c.created_at)
        if account_id is not None:
            query = query.where(instances.c.account_id == account_id)
        with self._engine.connect() as conn:
            return [_instance(r) for r in conn.execute(query).all()]

    def list_released(self, account_id: str | None, limit: int = 20) -> list[tuple[Instance, datetime]]:
        """Released instances, newest release first, with when they were released (their data is gone)."""
        query = (
            select(instances)
            .where(instances.c.status == "released")
            .order_by(instances.c.released_at.desc())
            .limit(limit)
        )
        if account_id is not None:
            query = query.where(instances.c.account_id == account_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(_instance(r), as_utc(r.released_at or r.expires_at or r.created_at)) for r in rows]

    def list_all_ids(self) -> list[str]:
        with self._engine.connect() as conn:
            return [r.id for r in conn.execute(select(instances.c.id)).all()]

    def count_images(self, instance_id: str) -> int:
        with self._engine.connect() as conn:
            value = conn.execute(
                select(instances.c.image_count).where(instances.c.id == instance_id)
            ).scalar_one_or_none()
        return int(value or 0)
