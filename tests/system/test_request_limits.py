"""Hostile bodies and headers against a real `lookalike serve` on loopback (issue 12, point 1).

Every route and dialect bounds a body while reading it, before parsing or authentication: a 300 MB chunked
body without credentials is refused in the dialect's shape and the server's memory barely moves; form bombs
are parsed off the event loop with a field limit, so other requests stay fast; oversized headers are refused
by the HTTP parser. HTTP-level only, so SQLite suffices (the PostgreSQL pass skips it).
"""

from __future__ import annotations

import base64
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server import ServerProcess, cli_json

pytestmark = pytest.mark.sqlite_only

MB = 1024 * 1024
BODY_LIMIT = 2 * 4 * MB + MB  # twice the 4 MB picture limit plus 1 MiB (RequestLimits.body_bytes)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("limits")
    tenant = cli_json(root / "data", "admin", "create-account", "acme")
    cli_json(root / "data", "admin", "create-instance", "shop", "--account", tenant["account_id"],
             "--capacity", "1000", "--qps", "10")
    process = ServerProcess(root / "data", model_cache, root / "server.log")
    process.basic_auth = "Basic " + base64.b64encode(  # type: ignore[attr-defined]
        f"{tenant['access_key_id']}:{tenant['access_key_secret']}".encode()
    ).decode()
    process.start()
    yield process
    process.stop()
    log = (root / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]  # client mistakes are not crashes


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the one response on `sock` (the server closes after it)."""
    data = b""
    sock.settimeout(30)
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data[:200]
    return int(head.split()[1]), body


def send_chunked(
    server: ServerProcess,
    path: str,
    content_type: str,
    total: int,
    prefix: bytes = b"",
    chunk: int = MB,
    auth: str | None = None,
) -> tuple[int, bytes, int]:
    """POST `total` bytes as a chunked body; stop sending once the server answers. (status, body, sent)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    extra = f"Authorization: {auth}\r\n" if auth else ""
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{extra}"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    filler = prefix + b"a" * (chunk - len(prefix))
    sent = 0
    try:
        while sent < total:
            piece = filler if sent == 0 else b"a" * chunk
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
            sock.setblocking(False)
            try:
                peeked = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                peeked = b""
            finally:
                sock.setblocking(True)
            if peeked:
                break  # the server has answered: it is not reading the rest
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, body = read_response(sock)
    sock.close()
    return status, body, sent


@pytest.mark.parametrize(
    ("path", "content_type", "signed", "marker"),
    [
        ("/", "application/x-www-form-urlencoded", False, b'"Code":"InvalidPicContent"'),
        ("/v2/image/add", "application/x-www-form-urlencoded", False, b'"Code":"InvalidPicContent"'),
        # Without credentials the native API refuses before reading; with them, the limit cuts the body.
        ("/v1/instances/shop/images", "application/json", False, b'"code":"MissingCredentials"'),
        ("/v1/instances/shop/images", "application/json", True, b'"code":"InvalidPicContent"'),
        ("/v1/instances/shop/images", "multipart/form-data; boundary=xx", True, b'"InvalidPicContent"'),
        ("/console/sign-in", "multipart/form-data; boundary=xx", False, b"Upload too large"),
    ],
)
def test_300_mb_chunked_body_is_refused_while_read_and_memory_stays_flat(
    server: ServerProcess, path: str, content_type: str, signed: bool, marker: bytes
) -> None:
    assert server.process is not None
    pid = server.process.pid
    before = rss_mb(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.append(rss_mb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    prefix = b'--xx\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\n'
    try:
        status, body, sent = send_chunked(
            server,
            path,
            content_type,
            300 * MB,
            prefix if "multipart" in content_type else b"",
            auth=server.basic_auth if signed else None,  # type: ignore[attr-defined]
        )
    finally:
        done.set()
        sampler.join()
    assert status in (400, 401, 413), body[:300]  # the Alibaba dialect answers InvalidPicContent with 400
    assert marker in body, body[:300]
    assert sent < 100 * MB  # refused long before the end: the server stopped reading
    assert max(peak) - before < 100, (before, max(peak))
    assert httpx.get(f"{server.url}/v1/health").status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/v2/image/search", "/v1/instances/shop/search/picture", "/console/sign-in"]
)
def test_declared_oversized_body_is_refused_before_a_byte_is_read(server: ServerProcess, path: str) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {10 * 1024 * MB}\r\n\r\n".encode()
    )
    status, body = read_response(sock)  # answered without sending any body
    sock.close()
    assert status in (400, 413) and b"exceeds" in body, body[:300]


def test_a_body_just_under_the_limit_is_read(server: ServerProcess) -> None:
    # Unauthenticated, so refused, but for its signature: the body itself passed the limit.
    response = httpx.post(
        f"{server.url}/", content=b"Action=SearchImage&x=" + b"a" * (BODY_LIMIT - 64),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in (400, 403, 404)
    assert response.json()["Code"] != "InvalidPicContent", response.text


def test_invalid_content_length_is_400(server: ServerProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    status, _ = read_response(sock)
    sock.close()
    assert 400 <= status < 500


def form_bomb(fields: int = 2_000_000) -> bytes:
    return b"&".join([b"a=b"] * fields)[: 8 * MB]


def test_health_stays_fast_while_form_bombs_are_parsed(server: ServerProcess) -> None:
    bomb = form_bomb()
    answers: list[int] = []

    def throw(path: str) -> None:
        for _ in range(3):
            response = httpx.post(
                f"{server.url}{path}",
                content=bomb,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=60,
            )
            answers.append(response.status_code)

    bombers = [threading.Thread(target=throw, args=(p,)) for p in ("/", "/console/sign-in")]
    for bomber in bombers:
        bomber.start()
    latencies = []
    with httpx.Client(base_url=server.url) as client:
        while any(b.is_alive() for b in bombers):
            t0 = time.perf_counter()
            assert client.get("/v1/health").status_code == 200
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    for bomber in bombers:
        bomber.join()
    assert answers and all(400 <= s < 500 for s in answers), answers
    assert len(latencies) >= 3
    # Parsing runs off the event loop, so health checks stay fast. The median says so; the maximum only
    # catches a loop held for a whole parse (one scheduling hiccup on a loaded 2-core machine took 77 ms).
    assert statistics.median(latencies) < 50, (statistics.median(latencies), max(latencies))
    assert max(latencies) < 500, (statistics.median(latencies), max(latencies))


def test_rpc_form_with_too_many_fields_is_refused_with_an_alibaba_error(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/",
        content=form_bomb(5000),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["Code"] == "InvalidParameter"
    assert "more than 1000 fields" in response.json()["Message"]


def test_console_form_parser_errors_are_pages_not_json(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/console/sign-in",
        content=form_bomb(5000),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "Too many fields" in response.text


def test_huge_header_is_refused_by_the_parser(server: ServerProcess) -> None:
    assert server.process is not None
    before = rss_mb(server.process.pid)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    try:
        while sent < 100 * MB:
            sock.sendall(b"a" * MB)
            sent += MB
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.close()
    assert sent < 100 * MB  # the server hung up long before 100 MB of header
    assert rss_mb(server.process.pid) - before < 50
    assert httpx.get(f"{server.url}/v1/health").status_code == 200


def test_too_many_headers_is_431(server: ServerProcess) -> None:
    headers = {f"x-h{i}": "1" for i in range(150)}
    response = httpx.get(f"{server.url}/v1/health", headers=headers)
    assert response.status_code == 431
    assert response.json()["code"] == "InvalidParameter"
