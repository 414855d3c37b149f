"""GET /metrics in the Prometheus text format, read in process: what each kind of request adds to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import Tenant, make_tenant
from lookalike.api.app import create_app
from lookalike.clock import ManualClock
from lookalike.observability.http import dialect_of
from lookalike.service.container import Services
from lookalike.storage.tasks_repo import DUMP, TaskRepository
from photos import encode, load_photo


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, close_on_shutdown=False)) as test_client:
        yield test_client


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def auth(tenant: Tenant) -> tuple[str, str]:
    return (tenant.key_id, tenant.secret)


def add(client: TestClient, tenant: Tenant, product: str, picture: bytes) -> int:
    response = client.post(
        f"/v1/instances/{tenant.instance.name}/images",
        auth=auth(tenant),
        data={"product_id": product, "pic_name": "p.jpg"},
        files={"picture": ("p.jpg", picture)},
    )
    return response.status_code


def search(client: TestClient, tenant: Tenant, picture: bytes) -> int:
    response = client.post(
        f"/v1/instances/{tenant.instance.name}/search/picture",
        auth=auth(tenant),
        files={"picture": ("q.jpg", picture)},
    )
    return response.status_code


def test_requests_are_counted_per_route_template_dialect_and_status_class(
    client: TestClient, tenant: Tenant
) -> None:
    for name in ("shop", "no-such-instance", "another-missing"):
        client.get(f"/v1/instances/{name}", auth=auth(tenant))
    client.get("/no/route/here")
    samples = scrape(client)
    route = "/v1/instances/{name}"
    requests = "lookalike_http_requests_total"
    assert value(samples, requests, dialect="rest", route=route, method="GET", status="2xx") == 1
    assert value(samples, requests, dialect="rest", route=route, method="GET", status="4xx") == 2
    assert value(samples, requests, dialect="other", route="unmatched", method="GET", status="4xx") == 1
    # No raw path becomes a label: ids in paths cannot add series.
    assert not any("no-such-instance" in v for _, labels in samples for _, v in labels)
    timed = "lookalike_http_request_duration_seconds_count"
    assert value(samples, timed, dialect="rest", route=route, method="GET") == 3
    # /metrics is in no OpenAPI document and needs no credentials (it was read above without any).
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_each_dialect_is_labelled_by_its_route(client: TestClient) -> None:
    client.post("/", data={"Action": "SearchImage"})  # Alibaba RPC, unsigned: refused in its dialect
    client.post("/v2/image/search", data={})  # Alibaba ROA
    client.get("/console/sign-in")
    client.get("/console/static/console.css")
    client.get("/v1/health")
    client.get("/openapi.json")
    labelled = {
        (labels["dialect"], labels["route"])
        for (name, label_items) in scrape(client)
        if name == "lookalike_http_requests_total"
        for labels in [dict(label_items)]
    }
    assert {
        ("alibaba", "/"),
        ("alibaba", "/v2/image/search"),
        ("console", "/console/sign-in"),
        ("console", "/console/static"),
        ("rest", "/v1/health"),
        ("other", "/openapi.json"),
    } <= labelled
    assert (dialect_of("/v1/instances/{name}"), dialect_of("/console"), dialect_of("/metrics")) == (
        "rest",
        "console",
        "other",
    )


def test_searches_adds_and_the_model_are_counted_per_instance(client: TestClient, tenant: Tenant) -> None:
    coffee = encode(load_photo("coffee"))
    assert add(client, tenant, "sku-1", coffee) == 200
    assert search(client, tenant, coffee) == 200
    assert search(client, tenant, coffee) == 200
    samples = scrape(client)
    assert value(samples, "lookalike_searches_total", instance_id=tenant.instance.id) == 2
    # The add and both searches ran the model at least once each (several views per search).
    assert value(samples, "lookalike_inference_seconds_count") >= 3
    assert value(samples, "lookalike_inference_batch_pictures_sum") >= 3
    assert value(samples, "lookalike_index_vectors", instance_id=tenant.instance.id) == 1
    assert value(samples, "lookalike_index_mode", instance_id=tenant.instance.id, mode="exact") == 1
    assert value(samples, "lookalike_index_unsaved", instance_id=tenant.instance.id) == 1
    assert value(samples, "lookalike_indexes_open") >= 1
    assert value(samples, "lookalike_pictures", instance_id=tenant.instance.id) == 1


def test_rejections_by_rate_limit_capacity_and_state(
    client: TestClient, services: Services, clock: ManualClock
) -> None:
    tight = make_tenant(services, "tight", "small", capacity=1, qps=1)
    coffee = encode(load_photo("coffee"))
    rocket = encode(load_photo("rocket"))
    statuses = [search(client, tight, coffee) for _ in range(4)]  # one second of burst at 1 QPS
    refused = statuses.count(429)
    assert refused >= 1 and statuses.count(200) >= 1
    assert add(client, tight, "a", coffee) == 200
    assert add(client, tight, "b", rocket) == 409  # InstanceOverQuota: the package holds one picture
    clock.advance(400 * 86400)  # past the grant: the instance is no longer active
    assert search(client, tight, coffee) == 409  # InstanceStatusError
    samples = scrape(client)
    instance = tight.instance.id
    rejections = "lookalike_rejections_total"
    assert value(samples, rejections, instance_id=instance, operation="search", reason="qps") == refused
    assert value(samples, rejections, instance_id=instance, operation="add", reason="capacity") == 1
    assert value(samples, rejections, instance_id=instance, operation="search", reason="state") == 1
    assert value(samples, "lookalike_searches_total", instance_id=instance) == statuses.count(200)


def test_ledger_writes_count_committed_entries(
    client: TestClient, services: Services, tenant: Tenant
) -> None:
    operator = services.accounts.create_access_key(services.accounts.list_accounts()[0].id)
    before = value(scrape(client), "lookalike_ledger_writes_total", kind="topup")
    for _ in range(2):  # the replay of the same idempotency key writes nothing
        response = client.post(
            "/v1/admin/topups",
            auth=(operator.access_key_id, operator.access_key_secret),
            json={"account_id": tenant.account.id, "amount": "500.00"},
            headers={"Idempotency-Key": "pay-1"},
        )
        assert response.status_code == 200, response.text
    assert value(scrape(client), "lookalike_ledger_writes_total", kind="topup") == before + 1


def test_task_queue_depth_and_oldest_age(
    client: TestClient, services: Services, tenant: Tenant, clock: ManualClock
) -> None:
    samples = scrape(client)
    assert value(samples, "lookalike_tasks_unfinished", kind="dump", state="waiting") == 0
    assert value(samples, "lookalike_task_oldest_age_seconds", kind="dump") == 0
    # A task row as the DumpMeta action writes it; the fixture's services run no worker to take it.
    TaskRepository(services.engine).create(
        kind=DUMP, account_id=tenant.account.id, instance_id=tenant.instance.id, now=clock.now()
    )
    clock.advance(90)
    samples = scrape(client)
    assert value(samples, "lookalike_tasks_unfinished", kind="dump", state="waiting") == 1
    assert value(samples, "lookalike_task_oldest_age_seconds", kind="dump") == pytest.approx(90, abs=1)
