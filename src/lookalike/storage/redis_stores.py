"""Redis-backed stores shared by every replica: GCRA rate limits and signature nonces (locks: locks.py).

Selected by `Settings.redis_url`; without it each process keeps these in memory. Every operation is one
round trip and atomic on the server, so N replicas behave like one process:

* rate limits: a Lua script runs the same GCRA as `lookalike.domain.ratelimit.gcra`, bit for bit;
* nonces: `SET key 1 NX PX ttl`, which is exactly "remember if new".

Redis failures (down, timed out) surface as `LookalikeError(InternalError, status 503)` so a request fails
fast with a clear message instead of hanging or being let through unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.ratelimit import RateDecision

T = TypeVar("T")

# A replica that cannot reach Redis within this fails the request; the limits, nonces and locks must not be
# skipped (that would lift every tenant's rate limit or allow replays), and waiting longer only piles up
# requests behind it.
SOCKET_TIMEOUT_S: Final = 2.0
CONNECT_TIMEOUT_S: Final = 2.0


def connect(url: str, *, max_connections: int = 64) -> redis.Redis:
    """The one client (and connection pool) of a process. Thread-safe; requests share its pool.

    One retry without backoff absorbs a dropped idle connection (e.g. after a Redis restart); redis-py's
    default of several retries with exponential backoff would make a request hang ~10 s when Redis is down.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
        max_connections=max_connections,
        decode_responses=False,
    )


def unavailable(what: str, exc: Exception) -> LookalikeError:
    return LookalikeError(
        e.INTERNAL_ERROR,
        f"The shared {what} store (Redis) is unavailable; try again later. ({type(exc).__name__})",
        status=503,
    )


def call_redis(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except redis.RedisError as exc:
        raise unavailable(what, exc) from exc


# GCRA, mirroring lookalike.domain.ratelimit.gcra operation for operation so that IEEE-754 doubles (Lua 5.1
# numbers are doubles, like Python floats) give the very same results. Keep the two in step.
#   KEYS[1]  the key holding the TAT (a "%.17g" string, which round-trips a double exactly)
#   ARGV     now, rate, burst_seconds (Python repr() strings: exact), expiry slack in ms
#   returns  {allowed 0|1, new_tat, retry_after, remaining, reset_after}; floats as "%.17g" strings because
#            Redis truncates Lua numbers to integers in replies.
# The TAT is written only when the request is allowed (a refusal changes nothing), with a PX expiry for when
# it falls into the past (then it is equivalent to no entry), plus slack: see RedisRateLimitStore.
GCRA_LUA: Final = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst_seconds = tonumber(ARGV[3])
local slack_ms = tonumber(ARGV[4])

local function ulp(x)
  x = math.abs(x)
  if x < 2.2250738585072014e-308 then
    return math.ldexp(1, -1074)  -- zero and subnormals, as Python's math.ulp
  end
  local _, exp = math.frexp(x)  -- x = m * 2^exp, 0.5 <= m < 1
  return math.ldexp(1, exp - 53)
end

local function fmt(x)
  return string.format('%.17g', x)
end

local interval = 1.0 / rate
local burst = math.max(1.0, rate * burst_seconds)
local tolerance = interval * (burst - 1)
local stored = redis.call('GET', KEYS[1])
local tat0 = now
if stored then
  local tat = tonumber(stored)
  if tat ~= nil and not (tat < now) then
    tat0 = tat
  end
end
local allow_at = tat0 - tolerance
if now < allow_at then
  local retry_after = allow_at - now
  if retry_after > math.max(1e-9, math.min(burst * ulp(tat0), interval / 2)) then
    return {0, fmt(tat0), fmt(retry_after), 0, fmt(tat0 - now)}
  end
end
local new_tat = tat0 + interval
local r = (now + tolerance - (new_tat - interval)) / interval + 1e-9
if r >= 0 then r = math.floor(r) else r = math.ceil(r) end  -- Python int(): toward zero
if r < 0 then r = 0 end
-- %d: a plain integer even where Lua's default number format would print an exponent.
local px = string.format('%d', math.ceil((new_tat - now) * 1000) + slack_ms)
redis.call('SET', KEYS[1], fmt(new_tat), 'PX', px)
return {1, fmt(new_tat), fmt(0.0), r, fmt(new_tat - now)}
"""


class RedisRateLimitStore:
    """GCRA state in Redis: one key per (instance, operation), one EVALSHA per decision.

    The caller's `now` (the injected clock) is used, not Redis TIME: tests stay deterministic and the
    arithmetic matches the in-memory store exactly. Replicas therefore agree as long as their clocks do (NTP
    keeps them within milliseconds, a small fraction of a request interval at the package rates). A replica
    whose clock is behind sees others' TATs further in the future and is slightly stricter, never laxer by
    more than the skew.

    Keys expire when their TAT is in the past (measured by Redis's clock) plus `expiry_slack_s`, which covers
    skew between caller and Redis clocks: an entry that expired early would grant one burst too many, one
    kept longer costs only memory.
    """

    def __init__(
        self, client: redis.Redis, prefix: str = "lookalike:rl:", expiry_slack_s: float = 2.0
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._slack_ms = str(max(0, math.ceil(expiry_slack_s * 1000)))
        # register_script: EVALSHA, and on NOSCRIPT (a restarted or failed-over Redis) SCRIPT LOAD + retry.
        self._script = client.register_script(GCRA_LUA)

    def acquire(self, key: str, rate: float, now: float, burst_seconds: float = 1.0) -> RateDecision:
        if rate <= 0:
            raise ValueError("rate must be positive")  # as gcra(); Lua would divide by zero
        args = [repr(float(now)), repr(float(rate)), repr(float(burst_seconds)), self._slack_ms]
        reply: list[Any] = call_redis(
            "rate-limit", lambda: self._script(keys=[self._prefix + key], args=args)
        )
        allowed, new_tat, retry_after, remaining, reset_after = reply
        return RateDecision(
            allowed=int(allowed) == 1,
            new_tat=float(new_tat),
            retry_after=float(retry_after),
            remaining=int(remaining),
            reset_after=float(reset_after),
        )


class RedisNonceStore:
    """Seen signature nonces, shared by every replica: `SET key 1 NX PX ttl` is atomic "remember if new".

    `now` is not needed: the TTL is relative, and Redis expires the key by its own clock.
    """

    def __init__(self, client: redis.Redis, prefix: str = "lookalike:nonce:") -> None:
        self._client = client
        self._prefix = prefix

    def remember(self, nonce: str, now: float, ttl: float) -> bool:
        px = max(1, math.ceil(ttl * 1000))
        created = call_redis("nonce", lambda: self._client.set(self._prefix + nonce, b"1", nx=True, px=px))
        return bool(created)
