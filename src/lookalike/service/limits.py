"""Per-instance rate limits (GCRA, one second of burst) by operation class."""

from __future__ import annotations

from enum import Enum

from lookalike.clock import Clock
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Instance
from lookalike.service.usage import SearchUsageMeter
from lookalike.storage.ratelimit_store import RateLimitStore

SMALL_PACKAGE_CAPACITY = 100_000  # the documented add limit is 1 QPS up to this capacity, else 5
DEFAULT_DELETE_QPS = 20
DEFAULT_UPDATE_QPS = 20
DETAIL_QPS = 1


class Operation(Enum):
    SEARCH = "search"
    ADD = "add"
    DELETE = "delete"
    UPDATE = "update"
    DETAIL = "detail"


def rate_for(instance: Instance, operation: Operation) -> float:
    if operation is Operation.SEARCH:
        return instance.search_qps
    if operation is Operation.ADD:
        if instance.add_qps is not None:
            return instance.add_qps
        return 1 if instance.capacity <= SMALL_PACKAGE_CAPACITY else 5
    if operation is Operation.DELETE:
        return instance.delete_qps or DEFAULT_DELETE_QPS
    if operation is Operation.UPDATE:
        return instance.update_qps or DEFAULT_UPDATE_QPS
    return DETAIL_QPS


class RateLimiter:
    def __init__(self, store: RateLimitStore, clock: Clock, meter: SearchUsageMeter | None = None) -> None:
        self._store = store
        self._clock = clock
        self._meter = meter

    def check(self, instance: Instance, operation: Operation) -> None:
        rate = rate_for(instance, operation)
        now = self._clock.timestamp()
        decision = self._store.acquire(f"{instance.id}:{operation.value}", rate, now)
        if operation is Operation.SEARCH and self._meter is not None:
            # Every search of every dialect passes here: the dashboard's usage chart counts them all.
            self._meter.record(instance.id, now, decision.allowed)
        if not decision.allowed:
            raise LookalikeError(
                e.DENIED_REQUEST,
                "Your request was denied due to instance flow control "
                f"({operation.value}: {rate:g} per second).",
                retry_after=decision.retry_after,
            )
