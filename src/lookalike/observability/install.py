"""Wire the metrics into one application and the services under it (called by the composition root)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from lookalike.observability.collectors import IndexCollector, StoreCollector
from lookalike.observability.http import METRICS_PATH, ObservabilityMiddleware
from lookalike.observability.metrics import Metrics
from lookalike.service.container import Services
from lookalike.storage.committed_inserts import CommittedInserts
from lookalike.storage.monitoring_repo import MonitoringRepository
from lookalike.storage.tables import ledger


def install_metrics(app: FastAPI, services: Services) -> Metrics:
    """GET /metrics (Prometheus text format, outside the OpenAPI document, no authentication: keep it off
    the public network, see deploy/README.md), the request middleware (add it last: it must be outermost),
    and the reports of the services, the model and the ledger."""
    metrics = Metrics()
    services.images.metrics = metrics  # searches and refusals (the service layer's port)
    services.batcher.on_batch = metrics.inference_ran  # every run of the image model
    # Counted as the ledger's rows commit, whoever writes them (billing knows nothing of metrics). The
    # listeners live as long as the engine, which the services dispose of on shutdown.
    CommittedInserts(services.engine, ledger, "kind", metrics.ledger_written)
    metrics.register(IndexCollector(services.indexes))
    metrics.register(StoreCollector(MonitoringRepository(services.engine), services.clock))

    def scrape() -> Response:
        # A sync route: FastAPI runs it in a worker thread, so the collectors' SQL never blocks the loop.
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    app.add_api_route(METRICS_PATH, scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(
        ObservabilityMiddleware,
        metrics=metrics,
        routes=lambda: app.routes,
        access_log_enabled=services.settings.access_log,
    )
    app.state.metrics = metrics
    return metrics
