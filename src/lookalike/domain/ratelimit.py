"""GCRA (generic cell rate algorithm): the pure decision, no storage.

GCRA keeps one number per key, the theoretical arrival time (TAT), which makes
it cheap to keep in memory or in Redis and exact under bursts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    new_tat: float
    retry_after: float  # seconds until the next request would pass (0 when allowed)
    remaining: int  # requests still allowed right now
    reset_after: float  # seconds until the bucket is full again


def gcra(tat: float | None, now: float, rate: float, burst_seconds: float = 1.0) -> RateDecision:
    """Decide one request at `now` for `rate` requests/second with `burst_seconds` of burst.

    Burst of one second means up to `rate` back-to-back requests pass (at least one).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    interval = 1.0 / rate
    burst = max(1.0, rate * burst_seconds)
    tolerance = interval * (burst - 1)
    tat0 = now if tat is None or tat < now else tat
    allow_at = tat0 - tolerance
    if now < allow_at:
        # Small epsilon keeps float noise from rejecting a request that is exactly on time. TATs are epoch
        # seconds (~1.8e9, ulp ~2.4e-7) and a full burst adds `interval` up to `burst` times, so the noise
        # scales with burst * ulp(tat); a fixed 1e-9 refused the 5th of 5 back-to-back requests at rate 5.
        # Capped at half an interval, so an extra request never slips in (exact up to ~1400 per second).
        retry_after = allow_at - now
        if retry_after > max(1e-9, min(burst * math.ulp(tat0), interval / 2)):
            return RateDecision(False, tat0, retry_after, 0, tat0 - now)
    new_tat = tat0 + interval
    remaining = int((now + tolerance - (new_tat - interval)) / interval + 1e-9)
    return RateDecision(True, new_tat, 0.0, max(0, remaining), new_tat - now)
