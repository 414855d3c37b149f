"""A replica's cached AccessKey expires, so a key disabled through another replica stops here too."""

from __future__ import annotations

import pytest

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.service.container import Services, build_account_service


def test_a_key_disabled_on_another_replica_stops_within_the_cache_ttl(services: Services) -> None:
    now = [0.0]
    replica_b = build_account_service(
        services.settings, services.engine, services.clock, key_cache_ttl_s=5.0, monotonic=lambda: now[0]
    )
    account, key = services.accounts.create_account("shop")
    assert replica_b.authenticate(key.access_key_id, key.access_key_secret).id == account.id
    services.accounts.set_access_key_disabled(key.access_key_id, True)  # "replica A"
    now[0] = 4.9
    replica_b.authenticate(key.access_key_id, key.access_key_secret)  # still cached
    now[0] = 5.0
    with pytest.raises(LookalikeError) as refused:
        replica_b.authenticate(key.access_key_id, key.access_key_secret)
    assert refused.value.code == e.ACCESS_KEY_DISABLED

    other, other_key = services.accounts.create_account("shop-2")
    replica_b.authenticate(other_key.access_key_id, other_key.access_key_secret)
    services.accounts.set_account_disabled(other.id, True)
    now[0] = 10.0
    with pytest.raises(LookalikeError):
        replica_b.authenticate(other_key.access_key_id, other_key.access_key_secret)

