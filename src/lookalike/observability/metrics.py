"""The Prometheus metrics of one Lookalike process, in a registry of its own.

A registry per application rather than prometheus_client's global one: several applications in one process
(the test suite builds hundreds) never share or collide on series. Counters and histograms are updated
where the work happens (requests, searches, refusals, model runs, ledger writes); gauges of state (index
sizes, the task queue, pictures per instance) are read at scrape time by the collectors in
observability/collectors.py.

Each process counts what it served: with several replicas Prometheus scrapes each one (deploy/prometheus.yml)
and the dashboard sums over them. An instance of the service is labelled `instance_id`: Prometheus's own
`instance` label names the scraped replica.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from lookalike import __version__
from lookalike.service.metrics import Rejection

# The *_created series double the series count and no panel reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# A health check answers in a millisecond, a search in tens to hundreds, an upload of a large picture in
# seconds.
REQUEST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One model run: ~7 ms a picture on two CPU cores, a batch of 16 a few hundred ms; a GPU is faster.
INFERENCE_BUCKETS: Final = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64)
# The classic text format, which every Prometheus release reads (prometheus_client's newest default names
# version 1.0.0, unknown to the 2.x servers operators still run); our names need none of its escaping.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# The HTTP methods that are counted by name; anything else is "other", so a client cannot add series.
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_class(status: int) -> str:
    """200 -> "2xx": the label the request counter carries instead of the code (fewer series)."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class Metrics:
    """One process's metrics; implements the service layer's port (lookalike.service.metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lookalike_http_requests",
            "HTTP requests served, by dialect, route template, method and status class.",
            ["dialect", "route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "lookalike_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its response.",
            ["dialect", "route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.searches = Counter(
            "lookalike_searches",
            "Searches that passed their instance's gate (state, rate limit), by instance id.",
            ["instance_id"],
            registry=r,
        )
        self.rejections = Counter(
            "lookalike_rejections",
            "Operations an instance refused: reason qps (rate limit), capacity (package full) or state "
            "(instance not active).",
            ["instance_id", "operation", "reason"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            "lookalike_inference_seconds",
            "One run of the image model over a batch of pictures (preprocessing, forward pass, pooling).",
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.inference_batch = Histogram(
            "lookalike_inference_batch_pictures",
            "Pictures in one run of the image model (micro-batching coalesces concurrent requests).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.ledger_writes = Counter(
            "lookalike_ledger_writes",
            "Ledger entries this process committed, by kind (topup, charge, refund, trial, ...).",
            ["kind"],
            registry=r,
        )
        Gauge(
            "lookalike_build_info", "The running version (always 1).", ["version"], registry=r
        ).labels(__version__).set(1)
        ProcessCollector(registry=r)  # CPU seconds, resident memory, open files
        PlatformCollector(registry=r)  # the Python version
        GCCollector(registry=r)

    # --- the service layer's port ---
    def searched(self, instance_id: str) -> None:
        self.searches.labels(instance_id).inc()

    def rejected(self, instance_id: str, operation: str, reason: Rejection) -> None:
        self.rejections.labels(instance_id, operation, reason.value).inc()

    # --- the model, the ledger, HTTP ---
    def inference_ran(self, pictures: int, seconds: float) -> None:
        self.inference_seconds.observe(seconds)
        self.inference_batch.observe(pictures)

    def ledger_written(self, kind: str) -> None:
        self.ledger_writes.labels(kind).inc()

    def request_served(self, dialect: str, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(dialect, route, method, status_class(status)).inc()
        self.request_seconds.labels(dialect, route, method).observe(seconds)

    def register(self, collector: Collector) -> None:
        """Add a scrape-time collector (observability/collectors.py)."""
        self.registry.register(collector)

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of GET /metrics (Prometheus text format 0.0.4)."""
        return generate_latest(self.registry), CONTENT_TYPE
