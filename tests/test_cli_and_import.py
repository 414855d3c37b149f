"""The scriptable CLI (admin --json) and the resumable bulk import against a live server."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from imagegen import make_photo
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
    server.start()
    try:
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
