from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain.models import Account, Instance
from lookalike.service.container import Services, build_services

os.environ.setdefault("HYPOTHESIS_PROFILE", "default")

# Browser fixtures of the web console tests (chromium, console): tests/browser.py. The session's loopback
# Ray cluster (ray_cluster) of the Ray engine's tests: tests/ray_cluster.py.
pytest_plugins = ["browser", "ray_cluster"]

# Set (scripts/test's second pass) to a PostgreSQL server URL: every test that builds Services then gets a
# database of its own on that server instead of the SQLite file in its data directory.
TEST_DATABASE_URL = os.environ.get("LOOKALIKE_TEST_DATABASE_URL") or None


@contextmanager
def fresh_database_url() -> Iterator[str | None]:
    """A URL of a new, empty PostgreSQL database, dropped afterwards; None on SQLite (the data dir's file).

    A database per test, not a schema or a truncate, so each test sees exactly what a fresh install sees
    (Alembic from zero, ids from 1) and nothing a previous test left, and tests may run in parallel."""
    if TEST_DATABASE_URL is None:
        yield None
        return
    import sqlalchemy as sa

    admin_url = sa.make_url(TEST_DATABASE_URL)
    name = f"lookalike_test_{uuid.uuid4().hex[:16]}"
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            # FORCE: a server subprocess killed mid-test may still hold connections.
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Also without `-m "not sqlite_only"`: a plain pytest run on PostgreSQL must not fail on those tests.
    if TEST_DATABASE_URL is None:
        return
    skip = pytest.mark.skip(reason="SQLite-only test (LOOKALIKE_TEST_DATABASE_URL is set)")
    for item in items:
        if item.get_closest_marker("sqlite_only") is not None:
            item.add_marker(skip)


def make_settings(data_dir: Path, database_url: str | None, **overrides: Any) -> Settings:
    """The one way tests build Settings, so the PostgreSQL pass reaches every test's database."""
    return Settings(data_dir=data_dir, database_url=database_url, **overrides)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted ONNX graph for the whole run (conversion is the slow part of start-up)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def database_url() -> Iterator[str | None]:
    """The test's own PostgreSQL database under LOOKALIKE_TEST_DATABASE_URL, else None (SQLite)."""
    with fresh_database_url() as url:
        yield url


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, model_cache: Path, database_url: str | None
) -> Settings:
    # @pytest.mark.settings(name=value, ...) on a test overrides those settings.
    marker = request.node.get_closest_marker("settings")
    overrides = marker.kwargs if marker is not None else {}
    return make_settings(tmp_path / "data", database_url, model_cache_dir=model_cache, **overrides)


@pytest.fixture
def services(settings: Settings, clock: ManualClock) -> Iterator[Services]:
    built = build_services(settings, clock=clock, background=False)
    yield built
    built.close()


@dataclass
class Tenant:
    account: Account
    key_id: str
    secret: str
    instance: Instance


def make_tenant(
    services: Services,
    name: str,
    instance_name: str,
    *,
    capacity: int = 1_000_000,
    qps: int = 1000,
    **qps_overrides: int,
) -> Tenant:
    account, key = services.accounts.create_account(name)
    instance = grant_instance(
        services, account.id, instance_name, capacity=capacity, qps=qps, **qps_overrides
    )
    return Tenant(account, key.access_key_id, key.access_key_secret, instance)


def grant_instance(
    services: Services, account_id: str, name: str, *, capacity: int, qps: int, **qps_overrides: int
) -> Instance:
    """An operator-granted instance; add/delete/update limits default high so tests are not throttled."""
    instance = services.billing.orders.grant(account_id, name, capacity=capacity, qps=qps)
    services.instances_repo.set_operation_limits(
        instance.id,
        add_qps=qps_overrides.get("add_qps", 1000),
        delete_qps=qps_overrides.get("delete_qps", 1000),
        update_qps=qps_overrides.get("update_qps", 1000),
    )
    return instance


@pytest.fixture
def tenant(services: Services) -> Tenant:
    return make_tenant(services, "acme", "shop")
