"""The scriptable CLI (admin --json) and the resumable bulk import against a live server."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from conftest import make_settings
from imagegen import make_photo
from lookalike.clock import SystemClock
from lookalike.domain.errors import LookalikeError
from lookalike.service.console_auth import ConsoleAuthService
from lookalike.service.container import build_console_auth, build_control_plane
from lookalike.storage.tables import metadata
from server import LOOKALIKE, ServerProcess, with_database
from server import cli_json as cli_plain


def stored_bytes(data_dir: Path, database_url: str | None) -> bytes:
    """Everything the database holds: the SQLite file's bytes, or every row of every table."""
    if database_url is None:
        return (data_dir / "lookalike.db").read_bytes()
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return b"\n".join(
                repr(tuple(row)).encode()
                for table in metadata.sorted_tables
                for row in conn.execute(sa.select(table))
            )
    finally:
        engine.dispose()


def test_admin_commands_print_ids_and_secrets_as_json(tmp_path: Path, database_url: str | None) -> None:
    data_dir = tmp_path / "data"
    cli_json = partial(cli_plain, database_url=database_url)
    account = cli_json(data_dir, "admin", "create-account", "acme")
    assert set(account) == {"account_id", "name", "access_key_id", "access_key_secret"}
    instance = cli_json(
        data_dir,
        "admin",
        "create-instance",
        "shop",
        "--account",
        account["account_id"],
        "--capacity",
        "100000",
        "--qps",
        "5",
    )
    assert (instance["name"], instance["capacity"], instance["qps"]) == ("shop", 100000, 5)
    key = cli_json(data_dir, "admin", "create-key", account["account_id"])
    assert key["access_key_id"] != account["access_key_id"]
    listed = cli_json(data_dir, "admin", "list-accounts")
    assert [a["name"] for a in listed["accounts"]] == ["acme"]
    # The secret is not stored in clear text anywhere in the database.
    stored = stored_bytes(data_dir, database_url)
    assert account["access_key_id"].encode() in stored  # (the check below can see what was stored)
    assert account["access_key_secret"].encode() not in stored
    duplicate = subprocess.run(
        [
            *LOOKALIKE,
            "admin",
            "create-instance",
            "shop",
            "--account",
            account["account_id"],
            "--capacity",
            "1",
            "--qps",
            "1",
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=with_database(None, database_url),
    )
    assert duplicate.returncode == 1 and json.loads(duplicate.stdout)["code"] == "InstanceAlreadyExists"


@contextmanager
def console_auth_of(data_dir: Path, database_url: str | None) -> Iterator[ConsoleAuthService]:
    """The console's sign-in service on the same database the CLI wrote to."""
    settings = make_settings(data_dir, database_url)
    control = build_control_plane(settings, SystemClock())
    try:
        yield build_console_auth(settings, control.engine, control.accounts, SystemClock())
    finally:
        control.engine.dispose()  # PostgreSQL: the test's database is dropped afterwards


def signs_in(auth: ConsoleAuthService, name: str, password: str) -> bool:
    try:
        auth.sign_in(name, password)
    except LookalikeError as exc:
        assert exc.http_status == 401, exc.message
        return False
    return True


def test_admin_set_password_generates_one_or_reads_it_from_stdin(
    tmp_path: Path, database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    cli_json = partial(cli_plain, database_url=database_url)
    account = cli_json(data_dir, "admin", "create-account", "acme")
    generated = cli_json(data_dir, "admin", "set-password", "acme")
    assert set(generated) == {"account_id", "name", "password"}
    assert generated["account_id"] == account["account_id"]
    with console_auth_of(data_dir, database_url) as auth:
        assert signs_in(auth, "acme", generated["password"])
        assert not signs_in(auth, "acme", generated["password"] + "x")

    def set_from_stdin(who: str, text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *LOOKALIKE,
                "admin",
                "set-password",
                who,
                "--password-stdin",
                "--data-dir",
                str(data_dir),
                "--json",
            ],
            input=text,
            capture_output=True,
            text=True,
            env=with_database(None, database_url),
        )

    chosen = "a long chosen passphrase"
    typed = set_from_stdin(account["account_id"], chosen + "\n")  # by id this time
    assert typed.returncode == 0, typed.stderr
    assert json.loads(typed.stdout) == {"account_id": account["account_id"], "name": "acme"}  # nothing echoed
    too_short = set_from_stdin("acme", "short\n")
    assert too_short.returncode == 1 and json.loads(too_short.stdout)["code"] == "InvalidParameter"
    with console_auth_of(data_dir, database_url) as auth:
        assert signs_in(auth, "acme", chosen)  # the refused one after it changed nothing
        assert not signs_in(auth, "acme", generated["password"])  # the old one no longer works
    unknown = set_from_stdin("nobody", chosen + "\n")
    assert unknown.returncode != 0 and "no account named 'nobody'" in unknown.stderr


@pytest.mark.slow
def test_import_resumes_after_a_crash_without_duplicates(
    tmp_path: Path, model_cache: Path, database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    cli_json = partial(cli_plain, database_url=database_url)
    tenant = cli_json(data_dir, "admin", "create-account", "importer")
    cli_json(
        data_dir,
        "admin",
        "create-instance",
        "cat",
        "--account",
        tenant["account_id"],
        "--capacity",
        "1000",
        "--qps",
        "50",
        "--add-qps",
        "1000",
    )
    source = tmp_path / "catalogue"
    for i in range(24):
        product = source / f"sku-{i // 3}"
        product.mkdir(parents=True, exist_ok=True)
        (product / f"view-{i % 3}.jpg").write_bytes(make_photo(300, 240, seed=100 + i))

    server = ServerProcess(data_dir, model_cache, tmp_path / "server.log", database_url)
    # A GPU asked for on a machine without one (CI has none): the server starts on the CPU and says so.
    server.env["LOOKALIKE_DEVICE"] = "cuda"
    server.start()
    try:
        assert "image model on cpu (setting device = cuda)" in (tmp_path / "server.log").read_text()
        # The first start created the operator, printed its console password and saved it (mode 0600).
        saved = json.loads((data_dir / "admin-credentials.json").read_text())
        assert (data_dir / "admin-credentials.json").stat().st_mode & 0o777 == 0o600
        assert saved["console_password"] in (tmp_path / "server.log").read_text()
        with console_auth_of(data_dir, database_url) as auth:
            assert signs_in(auth, saved["console_user"], saved["console_password"])
        command = [
            *LOOKALIKE,
            "import",
            str(source),
            "--instance",
            "cat",
            "--url",
            server.url,
            "--key-id",
            tenant["access_key_id"],
            "--secret",
            tenant["access_key_secret"],
            "--data-dir",
            str(data_dir),
            "--workers",
            "1",
            "--no-progress",
            "--json",
        ]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        state = data_dir / "import-state"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            journals = list(state.glob("*.jsonl")) if state.exists() else []
            if journals and len(journals[0].read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        done_before = len(next(state.glob("*.jsonl")).read_text().splitlines())
        assert 5 <= done_before < 24

        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        summary = json.loads(second.stdout)
        assert second.returncode == 0, second.stderr
        assert summary["total"] == 24 and summary["failed"] == 0
        assert summary["skipped"] == done_before and summary["added"] == 24 - done_before

        with httpx.Client(
            base_url=server.url, auth=(tenant["access_key_id"], tenant["access_key_secret"])
        ) as client:
            detail = client.get("/v1/instances/cat").json()
            assert detail["total_count"] == 24  # resumed, nothing duplicated
            hit = client.post(
                "/v1/instances/cat/search/picture",
                files={"picture": ("q.jpg", make_photo(300, 240, seed=107))},
            ).json()["results"][0]
            assert (hit["product_id"], hit["pic_name"]) == ("sku-2", "view-1.jpg")
    finally:
        server.stop()
