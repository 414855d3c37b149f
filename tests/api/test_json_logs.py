"""JSON logs: every line a request causes names its request id, the one its response carries."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Tenant
from lookalike.api.app import create_app
from lookalike.config import ConfigError, Settings
from lookalike.observability.logs import JsonFormatter, configure_logging, formatter
from lookalike.service.container import Services

probe_log = logging.getLogger("lookalike.tests.probe")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the root logger writes in the JSON format while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app(services, close_on_shutdown=False)

    # Probes that log from inside a request: an async route (on the event loop) and a sync one (FastAPI runs
    # it in a worker thread, with a copy of the request's context).
    async def logs_on_the_loop() -> dict[str, str]:
        probe_log.warning("inside the async route", extra={"where": "loop"})
        return {}

    def logs_in_a_thread() -> dict[str, str]:
        probe_log.info("inside the sync route")
        return {}

    def crashes() -> dict[str, str]:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/test-probe/async", logs_on_the_loop, methods=["GET"])
    app.add_api_route("/v1/test-probe/sync", logs_in_a_thread, methods=["GET"])
    app.add_api_route("/v1/test-probe/crash", crashes, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_of_a_request_names_the_request_id_of_its_response(
    client: TestClient, log_lines: io.StringIO
) -> None:
    first = client.get("/v1/test-probe/async")
    second = client.get("/v1/test-probe/sync")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert ids[0] != ids[1]
    lines = records(log_lines)
    inside = [line for line in lines if line["logger"] == "lookalike.tests.probe"]
    assert [(line["message"], line["request_id"]) for line in inside] == [
        ("inside the async route", ids[0]),
        ("inside the sync route", ids[1]),
    ]
    assert inside[0]["level"] == "WARNING" and inside[0]["where"] == "loop"  # `extra` fields kept
    assert inside[0]["time"].endswith("+00:00")
    access = [line for line in lines if line["logger"] == "lookalike.access"]
    assert [(a["method"], a["route"], a["status"], a["request_id"]) for a in access] == [
        ("GET", "/v1/test-probe/async", 200, ids[0]),
        ("GET", "/v1/test-probe/sync", 200, ids[1]),
    ]
    assert all(isinstance(a["duration_ms"], float) and a["dialect"] == "rest" for a in access)


def test_refusals_and_errors_are_logged_with_their_id(
    client: TestClient, tenant: Tenant, log_lines: io.StringIO
) -> None:
    refused = client.get("/v1/instances/shop", auth=(tenant.key_id, "wrong secret"))
    assert refused.status_code == 401
    body_id = refused.json()["request_id"]
    assert body_id == refused.headers["x-request-id"]
    (access,) = [line for line in records(log_lines) if line["logger"] == "lookalike.access"]
    assert (access["status"], access["request_id"], access["route"]) == (401, body_id, "/v1/instances/{name}")


def test_a_crash_is_logged_with_the_id_of_its_answer(client: TestClient, log_lines: io.StringIO) -> None:
    crashed = client.get("/v1/test-probe/crash")
    assert crashed.status_code == 500
    request_id = crashed.json()["request_id"]
    lines = records(log_lines)
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["request_id"] == request_id and "RuntimeError: a bug" in error["exception"]
    (access,) = [line for line in lines if line["logger"] == "lookalike.access"]
    assert (access["status"], access["request_id"]) == (500, request_id)
    # The next request, and a line after it, name only their own ids.
    ok = client.get("/v1/test-probe/sync")
    probe_log.info("between requests")
    later = records(log_lines)[len(lines) :]
    inside = [line for line in later if line["logger"] in ("lookalike.tests.probe", "lookalike.access")]
    assert [(line["message"].split()[0], line.get("request_id")) for line in inside] == [
        ("inside", ok.headers["x-request-id"]),
        ("GET", ok.headers["x-request-id"]),
        ("between", None),
    ]


def test_a_line_outside_any_request_has_no_request_id(log_lines: io.StringIO) -> None:
    probe_log.info("at start-up, %d things", 3)
    try:
        raise ValueError("boom")
    except ValueError:
        probe_log.exception("failed")
    start, failed = records(log_lines)
    assert start["message"] == "at start-up, 3 things" and "request_id" not in start
    assert failed["level"] == "ERROR" and "ValueError: boom" in failed["exception"]


def test_text_is_the_default_and_json_is_a_setting(tmp_path: Any) -> None:
    assert Settings().log_format == "text"
    assert Settings.from_env({"LOOKALIKE_LOG_FORMAT": "json"}).log_format == "json"
    config = tmp_path / "lookalike.toml"
    config.write_text('log_format = "json"\naccess_log = false\n')
    from_file = Settings.load({}, config)
    assert (from_file.log_format, from_file.access_log) == ("json", False)
    assert Settings.load({"LOOKALIKE_LOG_FORMAT": "text"}, config).log_format == "text"  # env over file
    with pytest.raises(ConfigError, match="LOOKALIKE_LOG_FORMAT"):
        Settings.from_env({"LOOKALIKE_LOG_FORMAT": "yaml"})


def test_configure_logging_writes_the_chosen_format() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        for log_format in ("text", "json"):
            stream = io.StringIO()
            configure_logging(log_format, stream=stream)
            probe_log.info("hello")
            line = stream.getvalue().strip()
            if log_format == "json":
                assert json.loads(line)["message"] == "hello"
                assert isinstance(root.handlers[0].formatter, JsonFormatter)
            else:
                assert line.endswith("INFO lookalike.tests.probe: hello")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_no_access_log_when_it_is_off(services: Services, log_lines: io.StringIO) -> None:
    from dataclasses import replace

    services.settings = replace(services.settings, access_log=False)
    with TestClient(create_app(services, close_on_shutdown=False)) as quiet:
        assert quiet.get("/v1/health").status_code == 200
    assert not [line for line in records(log_lines) if line["logger"] == "lookalike.access"]
