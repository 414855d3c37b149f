"""Named, expiring locks (leases) that keep two processes from running the same job at once.

`SqlLockStore` keeps them in the `job_leases` table (the embedded default, and fine for PostgreSQL too);
`RedisLockStore` keeps them in Redis when one is configured. Both expire on their own, so a process that
dies holding a lock blocks the job only until the TTL runs out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookalike.clock import Clock
from lookalike.storage.db import write_transaction
from lookalike.storage.tables import job_leases

if TYPE_CHECKING:
    import redis


class LockStore(Protocol):
    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Claim `name` for `holder` for `ttl_s`, or extend it if `holder` holds it already.

        True when `holder` now holds it; False when another holder's lock is still live."""
        ...

    def release(self, name: str, holder: str) -> None:
        """Give `name` back if `holder` still holds it; a lock another holder took over is left alone."""
        ...


class SqlLockStore:
    """`job_leases` rows; expiry is judged by the injected clock (so tests can move it)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        now = self._clock.now()
        with write_transaction(self._engine) as conn:
            return _try_lease(conn, name, holder, now, now + timedelta(seconds=ttl_s))

    def release(self, name: str, holder: str) -> None:
        now = self._clock.now()
        with write_transaction(self._engine) as conn:
            conn.execute(
                update(job_leases)
                .where(job_leases.c.name == name, job_leases.c.holder == holder)
                .values(lease_until=now)
            )


def _try_lease(conn: Connection, name: str, holder: str, now: datetime, until: datetime) -> bool:
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
            (job_leases.c.holder == holder) | (job_leases.c.lease_until <= now),
        )
        .values(holder=holder, lease_until=until)
    )
    return result.rowcount == 1


# Compare-and-extend: refresh the expiry only if `holder` still owns the key.
_EXTEND_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# Compare-and-delete: a holder whose lock expired and was taken over must not delete the new owner's lock.
_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLockStore:
    """`SET key holder NX PX ttl` to claim; Lua compare-and-extend / compare-and-delete for the holder.

    Expiry is Redis's clock, not the caller's: a lock is a real-time guard, unlike GCRA state.
    """

    def __init__(self, client: redis.Redis, prefix: str = "lookalike:lock:") -> None:
        self._client = client
        self._prefix = prefix
        self._extend = client.register_script(_EXTEND_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        # Imported here: redis is an optional dependency ([scale]) and this module is imported without it.
        from lookalike.storage.redis_stores import call_redis

        key, px = self._prefix + name, max(1, round(ttl_s * 1000))
        if call_redis("lock", lambda: self._client.set(key, holder, nx=True, px=px)):
            return True
        return bool(call_redis("lock", lambda: self._extend(keys=[key], args=[holder, px])))

    def release(self, name: str, holder: str) -> None:
        from lookalike.storage.redis_stores import call_redis

        call_redis("lock", lambda: self._release(keys=[self._prefix + name], args=[holder]))
