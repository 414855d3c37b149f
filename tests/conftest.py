from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain.models import Account, Instance
from lookalike.service.container import Services, build_services

os.environ.setdefault("HYPOTHESIS_PROFILE", "default")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted ONNX graph for the whole run (conversion is the slow part of start-up)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path, model_cache: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", model_cache_dir=model_cache)


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
    instance = services.billing.grant(account_id, name, capacity=capacity, qps=qps)
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
