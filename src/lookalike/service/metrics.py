"""The metrics port of the service layer: what a use case reports about its work (searches, refusals).

The services call it and never know where the numbers go; the composition root attaches the Prometheus
implementation (lookalike.observability.metrics), so nothing under lookalike.service imports
prometheus_client. The default reports nowhere.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol


class Rejection(Enum):
    """Why an instance refused a call it was allowed to make."""

    QPS = "qps"  # the operation's rate limit (DeniedRequest)
    CAPACITY = "capacity"  # an add past the package's capacity (InstanceOverQuota)
    STATE = "state"  # the instance is not active: expired or overdue (InstanceStatusError)


class ServiceMetrics(Protocol):
    def searched(self, instance_id: str) -> None:
        """A search passed the instance's gate (state and rate limit) and runs."""

    def rejected(self, instance_id: str, operation: str, reason: Rejection) -> None:
        """The instance refused an operation ("search", "add", ...) for `reason`."""


class NoMetrics:
    """Reports nowhere: services built without a metrics backend (tests, the CLI's admin commands)."""

    def searched(self, instance_id: str) -> None:
        pass

    def rejected(self, instance_id: str, operation: str, reason: Rejection) -> None:
        pass


NO_METRICS: ServiceMetrics = NoMetrics()
