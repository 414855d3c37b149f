"""Debian's Prometheus (/usr/bin/prometheus, installed by scripts/test-servers) scrapes a real
`lookalike serve` on loopback; the series are read back through Prometheus's HTTP API, and every panel of the
Grafana dashboard (deploy/grafana/lookalike-dashboard.json) is a query that Prometheus accepts, over metrics
the server exposes.

The server runs with --log-format json: its access lines carry the request ids of the responses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import fresh_database_url
from photos import encode, load_photo
from server import ServerProcess, cli_json, free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "lookalike-dashboard.json"
PROMETHEUS = Path("/usr/bin/prometheus")
JOB = "lookalike"
SCRAPED_WITHIN_S = 60.0
# Names Prometheus makes itself: no server exposes them.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# Grafana's variables, as Grafana would fill them in for this job.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": JOB}


@dataclass
class Stack:
    server: ServerProcess
    prometheus: str  # base URL of its HTTP API
    auth: tuple[str, str]
    instance_id: str
    instance: str


def prometheus_binary() -> Path:
    if not PROMETHEUS.exists():
        message = "Debian's prometheus is missing (scripts/test-servers installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PROMETHEUS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Stack]:
    binary = prometheus_binary()
    root = tmp_path_factory.mktemp("prometheus")
    with fresh_database_url() as database_url:
        tenant = cli_json(root / "data", "admin", "create-account", "acme", database_url=database_url)
        created = cli_json(
            root / "data", "admin", "create-instance", "shop", "--account", tenant["account_id"],
            "--capacity", "1000", "--qps", "50", "--add-qps", "50", database_url=database_url,
        )
        server = ServerProcess(
            root / "data", model_cache, root / "server.log", database_url, extra_args=("--log-format", "json")
        )
        server.env["LOOKALIKE_LOG_FORMAT"] = "text"  # the command line's option wins over the environment
        server.start()
        port = free_port()
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{server.port}']\n"
        )
        prometheus = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=(root / "prometheus.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, prometheus, root / "prometheus.log")
            yield Stack(
                server,
                url,
                (tenant["access_key_id"], tenant["access_key_secret"]),
                created["instance_id"],
                "shop",
            )
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)
            server.stop()
    assert "Traceback" not in (root / "server.log").read_text()


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"prometheus did not start: {log.read_text()[-3000:]}")


def query(stack: Stack, expr: str) -> dict[str, Any]:
    """Prometheus's answer to an instant query (status and data), whatever the status."""
    response = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body: dict[str, Any] = response.json()
    return body


def scalar(stack: Stack, expr: str) -> float | None:
    """The value of a query that yields one series, None while it yields none."""
    answer = query(stack, expr)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def wait_for(stack: Stack, expr: str, expected: float) -> float | None:
    """Poll until the query yields `expected` (Prometheus scrapes every second) or the time is up."""
    deadline = time.monotonic() + SCRAPED_WITHIN_S
    found = scalar(stack, expr)
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found = scalar(stack, expr)
    return found


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def exposed_names(stack: Stack) -> set[str]:
    """Every series name the server's GET /metrics declares, with or without samples yet (a labelled counter
    nothing has counted shows only its HELP and TYPE): histograms as _bucket, _sum and _count."""
    response = httpx.get(f"{stack.server.url}/metrics", timeout=10)
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def test_prometheus_scrapes_the_server_and_reads_the_series_back(stack: Stack) -> None:
    assert wait_for(stack, f'up{{job="{JOB}"}}', 1.0) == 1.0
    picture = encode(load_photo("coffee"))
    added = httpx.post(
        f"{stack.server.url}/v1/instances/{stack.instance}/images",
        auth=stack.auth,
        data={"product_id": "sku-1", "pic_name": "front.jpg"},
        files={"picture": ("front.jpg", picture)},
        timeout=60,
    )
    assert added.status_code == 200, added.text
    searched = httpx.post(
        f"{stack.server.url}/v1/instances/{stack.instance}/search/picture",
        auth=stack.auth,
        files={"picture": ("query.jpg", picture)},
        timeout=60,
    )
    assert searched.status_code == 200, searched.text
    assert searched.json()["results"][0]["product_id"] == "sku-1"

    searches = f'lookalike_searches_total{{job="{JOB}", instance_id="{stack.instance_id}"}}'
    assert wait_for(stack, searches, 1.0) == 1.0
    adds = (
        f'sum(lookalike_http_requests_total{{job="{JOB}", dialect="rest", method="POST", status="2xx", '
        'route="/v1/instances/{name}/images"})'
    )
    assert wait_for(stack, adds, 1.0) == 1.0
    search_route = 'route="/v1/instances/{name}/search/picture"'
    timed = f"sum(lookalike_http_request_duration_seconds_count{{{search_route}}})"
    assert wait_for(stack, timed, 1.0) == 1.0
    assert wait_for(stack, f'lookalike_pictures{{instance_id="{stack.instance_id}"}}', 1.0) == 1.0
    runs = scalar(stack, "sum(lookalike_inference_seconds_count)")
    assert runs is not None and runs >= 2  # the add's model run and the search's
    # The request counters are per route template: the instance's name is in no label.
    routes = query(stack, "count by (route) (lookalike_http_requests_total)")["data"]["result"]
    assert all("shop" not in series["metric"]["route"] for series in routes)

    # The access log of the search, one JSON object, with the id the response carried.
    log = stack.server.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "lookalike.access"]
    ids = {line["request_id"] for line in access if line["route"] == "/v1/instances/{name}/search/picture"}
    assert ids == {searched.headers["x-request-id"]}


def panel_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows included, Grafana's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "Lookalike" and dashboard["uid"]
    panels = []
    for panel in dashboard["panels"]:
        panels += [panel, *panel.get("panels", [])]
    found = []
    for panel in panels:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, (panel["title"], expr)  # no variable the dashboard does not define
            found.append((panel["title"], expr))
    return found


def test_every_dashboard_panel_is_a_query_prometheus_accepts(stack: Stack) -> None:
    assert wait_for(stack, f'up{{job="{JOB}"}}', 1.0) == 1.0
    expressions = panel_expressions()
    assert len(expressions) >= 20
    exposed = exposed_names(stack)
    with_data = 0
    for title, expr in expressions:
        answer = query(stack, expr)
        assert answer["status"] == "success", (title, expr, answer)
        with_data += bool(answer["data"]["result"])
        names = {
            name
            for name in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)", expr)
            if name not in {"by", "without", "on", "ignoring"}
        }
        assert names, (title, expr)
        assert names <= exposed | SYNTHETIC, (title, names - exposed)
    # Most panels have data at once: the server is up, indexes and the task queue are reported when idle.
    assert with_data >= len(expressions) // 2


def test_metrics_needs_no_credentials_and_is_not_in_the_openapi_document(stack: Stack) -> None:
    assert httpx.get(f"{stack.server.url}/metrics", timeout=10).status_code == 200
    paths = httpx.get(f"{stack.server.url}/openapi.json", timeout=10).json()["paths"]
    assert "/metrics" not in paths


def test_the_dashboard_is_well_formed() -> None:
    """What Grafana needs to import it: unique panel ids on the grid, and only variables it defines."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    panels = [p for panel in dashboard["panels"] for p in [panel, *panel.get("panels", [])]]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and all(t["refId"] for t in panel["targets"]), panel["title"]
