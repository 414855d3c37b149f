"""Engine creation and schema migration (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

# The handle the composition root passes to the repositories (SQLAlchemy's pooled engine). Code above the
# storage layer only hands it on: every statement is a repository's.
Database: TypeAlias = Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
IMMEDIATE_OPTION = "lookalike_immediate"
MIGRATION_LOCK_ID = 0x4C4F4F4B  # "LOOK": any constant shared by every Lookalike process


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'lookalike.db').resolve()}"


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL") -> Engine:
    """Create an engine; SQLite gets WAL so readers never block the single writer.

    WAL with synchronous=NORMAL keeps every committed transaction across a process
    crash (kill -9); FULL also survives power loss at the cost of an fsync per commit.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the sqlite3 module (it would BEGIN lazily, only before DML),
            # so SQLAlchemy's begin is a real BEGIN and writers can ask for BEGIN IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front: a read-then-write transaction (balance check,
            # capacity check) can then never be overtaken by another process between its read and write.
            immediate = connection.get_execution_options().get(IMMEDIATE_OPTION, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def write_transaction(engine: Engine) -> Any:
    """A transaction that holds the write lock from its first statement (SQLite: BEGIN IMMEDIATE;
    PostgreSQL callers lock rows with SELECT … FOR UPDATE inside it)."""
    return engine.execution_options(**{IMMEDIATE_OPTION: True}).begin()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together would race to create the schema: one migrates, the rest wait
            # here (a transaction-scoped advisory lock) and then find nothing left to do.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
