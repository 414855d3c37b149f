"""Console passwords and sessions in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update

from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import console_passwords, console_sessions


@dataclass(frozen=True)
class SessionRow:
    token_hash: str
    account_id: str
    csrf_token: str
    expires_at: datetime


class ConsoleRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- passwords ---
    def set_password(self, account_id: str, password_hash: str, now: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(console_passwords).where(console_passwords.c.account_id == account_id))
            conn.execute(
                insert(console_passwords).values(
                    account_id=account_id, password_hash=password_hash, updated_at=now
                )
            )

    def password_hash(self, account_id: str) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                select(console_passwords.c.password_hash).where(console_passwords.c.account_id == account_id)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def has_password(self, account_id: str) -> bool:
        return self.password_hash(account_id) is not None

    # --- sessions ---
    def create_session(
        self, token_hash: str, account_id: str, csrf_token: str, now: datetime, expires_at: datetime
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(console_sessions).values(
                    token_hash=token_hash,
                    account_id=account_id,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    def get_session(self, token_hash: str) -> SessionRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(console_sessions).where(console_sessions.c.token_hash == token_hash)
            ).first()
        if row is None:
            return None
        return SessionRow(row.token_hash, row.account_id, row.csrf_token, as_utc(row.expires_at))

    def delete_session(self, token_hash: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash))

    def delete_sessions_of(self, account_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.account_id == account_id))

    def delete_expired(self, now: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))

    def set_flash(self, token_hash: str, message: str | None) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(console_sessions)
                .where(console_sessions.c.token_hash == token_hash)
                .values(flash=message)
            )

    def pop_flash(self, token_hash: str) -> str | None:
        with self._engine.begin() as conn:
            value = conn.execute(
                select(console_sessions.c.flash).where(console_sessions.c.token_hash == token_hash)
            ).scalar_one_or_none()
            if value is not None:
                conn.execute(
                    update(console_sessions)
                    .where(console_sessions.c.token_hash == token_hash)
                    .values(flash=None)
                )
        return None if value is None else str(value)
