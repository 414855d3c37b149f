"""Duplicate reports (issue 13): grouping (pure, hypothesis), the scan through the real model, index and SQL,
its resume after a lost worker, the REST routes, the CSV export and "keep one"."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import update

from alibaba_live import live_server
from conftest import Tenant, make_settings, make_tenant
from lookalike.api.rest.app import create_app
from lookalike.cli import main as cli_main
from lookalike.clock import ManualClock
from lookalike.domain.duplicates import Pair, group_pairs, pair, validate_threshold
from lookalike.domain.errors import LookalikeError
from lookalike.service.container import Services, build_services
from lookalike.service.task_runner import TaskSlice
from lookalike.storage.tables import instances
from lookalike.storage.tasks_repo import FAIL, PROCESSING, SUCCESS
from photos import PHOTO_NAMES, crop_70, encode, grayscale, jpeg_q20, load_photo, resize_50
from test_milvus_index import _drop_collections, require_milvus_uri

# --- grouping: pure ---
pairs_strategy = st.lists(
    st.tuples(st.integers(1, 40), st.integers(1, 40), st.floats(0.5, 1.0)).filter(lambda t: t[0] != t[1]),
    max_size=60,
)


@given(pairs_strategy)
def test_every_member_is_a_copy_of_its_groups_centre(raw: list[tuple[int, int, float]]) -> None:
    pairs = [pair(a, b, s) for a, b, s in raw]
    best: dict[tuple[int, int], float] = {}
    for p in pairs:
        best[p.first, p.second] = max(p.score, best.get((p.first, p.second), p.score))
    groups = group_pairs(pairs)
    where = {m.image_id: n for n, g in enumerate(groups) for m in g.members}
    assert sum(g.size for g in groups) == len(where)  # disjoint
    assert all(g.size >= 2 for g in groups)
    for g in groups:
        centre, *others = g.members
        assert centre.score == 1.0
        assert [m.image_id for m in others] == sorted(m.image_id for m in others)
        for m in others:  # paired directly with the centre, at that pair's score
            assert m.score == best[min(m.image_id, centre.image_id), max(m.image_id, centre.image_id)]
        assert g.best_score == max(m.score for m in others)
    # Maximal: no two pictures left out of every group were paired.
    assert not any(p.first not in where and p.second not in where for p in pairs)
    assert [g.size for g in groups] == sorted((g.size for g in groups), reverse=True)


def test_a_chain_of_look_alikes_is_not_one_group_but_a_densified_component_is() -> None:
    chain = [pair(i, i + 1, 0.9) for i in range(1, 10)]  # 1-2-3-...-10: neighbours only
    groups = group_pairs(chain)
    assert all(g.size <= 3 for g in groups) and sum(g.size for g in groups) >= 8
    # Ten uploads of one picture, each scan keeping only its next neighbour: scored in full, one group.
    everyone = lambda ids: [pair(a, b, 1.0) for a in ids for b in ids if a < b]  # noqa: E731
    (one,) = group_pairs(chain, densify=everyone)
    assert [m.image_id for m in one.members] == list(range(1, 11))
    assert len(group_pairs(chain, densify=everyone, dense_max=5)) > 1  # too big to score in full


@given(pairs_strategy, st.randoms())
def test_grouping_does_not_depend_on_the_order_of_the_pairs(raw: list[tuple[int, int, float]], rnd) -> None:  # type: ignore[no-untyped-def]
    pairs = [pair(a, b, s) for a, b, s in raw]
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    assert group_pairs(pairs) == group_pairs(shuffled)


def test_pair_and_threshold_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        pair(3, 3, 1.0)
    assert pair(9, 2, 0.9) == Pair(2, 9, 0.9)
    for bad in (0.49, 1.01, float("nan"), float("inf"), "lots", "1e400", True, [0.8], {"a": 1}):
        with pytest.raises(ValueError):
            validate_threshold(bad)
    assert validate_threshold(None) == validate_threshold("  ") == 0.75
    assert validate_threshold("0.9") == validate_threshold(0.9) == 0.9 and validate_threshold(1) == 1.0


# --- the scan, through the real model, index and SQL ---
ORIGINALS = PHOTO_NAMES[:8]
UNRELATED = PHOTO_NAMES[8:16]
EDITS = (crop_70, jpeg_q20, resize_50, grayscale)


@cache
def jpeg_of(name: str, edit: int | None = None) -> bytes:
    image: Image.Image = load_photo(name)
    if edit is not None:
        image = EDITS[edit](image)
    return encode(image)


def load_catalogue(services: Services, tenant: Tenant) -> dict[str, set[str]]:
    """Eight photos each with two edited copies (planted groups) and eight photos without any; returns each
    planted group's PicNames."""
    planted: dict[str, set[str]] = {}
    for n, name in enumerate(ORIGINALS):
        names = {f"{name}.jpg"}
        services.images.add_image(
            tenant.account,
            tenant.instance.name,
            product_id=f"p-{name}",
            pic_name=f"{name}.jpg",
            picture=jpeg_of(name),
        )
        for edit in (n % len(EDITS), (n + 1) % len(EDITS)):
            pic = f"{name}-copy{edit}.jpg"
            names.add(pic)
            services.images.add_image(
                tenant.account,
                tenant.instance.name,
                product_id=f"q-{name}-{edit}",
                pic_name=pic,
                picture=jpeg_of(name, edit),
            )
        planted[name] = names
    for name in UNRELATED:
        services.images.add_image(
            tenant.account,
            tenant.instance.name,
            product_id=f"u-{name}",
            pic_name=f"{name}.jpg",
            picture=jpeg_of(name),
        )
    return planted


def found_groups(services: Services, tenant: Tenant, report_id: int) -> list[set[str]]:
    page = services.duplicates.groups(tenant.account, tenant.instance.name, report_id, page_size=100)
    return [{m.record.pic_name for m in g.members} for g in page.groups]


@pytest.fixture
def catalogue(services: Services, tenant: Tenant) -> dict[str, set[str]]:
    return load_catalogue(services, tenant)


def test_report_finds_the_planted_groups_and_nothing_else(
    services: Services, tenant: Tenant, catalogue: dict[str, set[str]]
) -> None:
    services.tasks._wake.clear()
    report = services.duplicates.start(tenant.account, tenant.instance.name)
    assert report.status == PROCESSING and report.progress == 0.0 and report.threshold == 0.75
    assert services.tasks._wake.is_set()  # the worker starts it now, not at its next poll
    assert services.tasks.run_pending() == 1
    done = services.duplicates.report(tenant.account, tenant.instance.name, rate_limited=False)
    assert done is not None and done.status == SUCCESS
    assert done.scanned == 32 and done.progress == 1.0
    groups = found_groups(services, tenant, done.task.id)
    expected = list(catalogue.values())
    assert sorted(map(sorted, groups)) == sorted(map(sorted, expected))
    assert (done.groups, done.pictures) == (8, 24)
    page = services.duplicates.groups(tenant.account, tenant.instance.name, None, page_size=3)
    assert len(page.groups) == 3
    for group in page.groups:  # the original (added first) is the suggested keeper; copies score high
        assert group.members[0].record.pic_name.count("-copy") == 0
        assert all(0.75 <= m.score <= 1.0 for m in group.members)


def test_a_scan_resumes_after_its_worker_is_lost_and_loses_no_pair(
    services: Services, tenant: Tenant, catalogue: dict[str, set[str]]
) -> None:
    """A worker that commits two batches and dies (its lease runs out) leaves the rest to the next one: the
    result equals an uninterrupted scan's."""
    reports = services.duplicates
    task = reports.start(tenant.account, tenant.instance.name).task
    repo = services.tasks._repo  # the lease is the task table's: take it as a worker would
    now = services.clock.now()
    assert repo.claim(task.id, "doomed", now, now) is not None
    small = type(reports)(
        repo=reports._repo,
        tasks=repo,
        images=services.images,
        instances=services.instances_repo,
        clock=services.clock,
        batch=5,
    )
    commits = iter(range(100))

    def die_after_two() -> None:
        if next(commits) >= 1:
            raise KeyboardInterrupt  # the process dies here: nothing after the second commit runs

    with pytest.raises(KeyboardInterrupt):
        small.run_slice(
            repo.get(task.id),  # type: ignore[arg-type]
            TaskSlice("doomed", services.clock.now, services.clock.now, die_after_two),
        )
    partial = repo.get(task.id)
    assert partial is not None and partial.status == PROCESSING and partial.succeeded == 10
    services.clock.advance(1)  # the dead worker's lease (until `now`) has run out
    assert services.tasks.run_pending() == 1
    final = reports.report(tenant.account, tenant.instance.name, rate_limited=False)
    assert final is not None and final.status == SUCCESS and final.scanned == 32
    assert sorted(map(sorted, found_groups(services, tenant, task.id))) == sorted(
        map(sorted, catalogue.values())
    )


def test_keep_one_deletes_the_others_and_the_group_disappears(
    services: Services, tenant: Tenant, catalogue: dict[str, set[str]]
) -> None:
    reports = services.duplicates
    task = reports.start(tenant.account, tenant.instance.name).task
    services.tasks.run_pending()
    page = reports.groups(tenant.account, tenant.instance.name, task.id, page_size=100)
    group = page.groups[0]
    keep = group.members[-1].record  # not the suggestion: the user may keep any of them
    deleted = reports.keep_one(tenant.account, tenant.instance.name, task.id, group.group_no, keep.id)
    assert {r.pic_name for r in deleted} == {m.record.pic_name for m in group.members} - {keep.pic_name}
    left = {r.pic_name for r in services.images.list_pictures(tenant.account, tenant.instance.name).records}
    assert keep.pic_name in left and not ({r.pic_name for r in deleted} & left)
    assert len(found_groups(services, tenant, task.id)) == 7
    # One delete call whatever the group's size: an instance allowed 1 delete a second still keeps one.
    assert len(deleted) == len(group.members) - 1
    with pytest.raises(LookalikeError) as missing:  # the group is gone now
        reports.keep_one(tenant.account, tenant.instance.name, task.id, group.group_no, keep.id)
    assert missing.value.http_status == 404
    other = reports.groups(tenant.account, tenant.instance.name, task.id).groups[0]
    stranger = next(m for g in page.groups[1:] for m in g.members if g.group_no != other.group_no)
    with pytest.raises(LookalikeError, match="not in this group"):
        reports.keep_one(tenant.account, tenant.instance.name, task.id, other.group_no, stranger.record.id)


def test_keep_one_is_one_delete_call_against_the_delete_qps(services: Services) -> None:
    slow = make_tenant(services, "careful", "slow", delete_qps=1)
    load_catalogue(services, slow)
    task = services.duplicates.start(slow.account, "slow").task
    services.tasks.run_pending()
    first, second = services.duplicates.groups(slow.account, "slow", task.id).groups[:2]
    keep = first.members[0].record.id
    deleted = services.duplicates.keep_one(slow.account, "slow", task.id, first.group_no, keep)
    assert len(deleted) == len(first.members) - 1 >= 2  # all of them, on one unit of 1 delete/s
    with pytest.raises(LookalikeError) as throttled:  # the next call within the second waits its turn
        services.duplicates.keep_one(
            slow.account, "slow", task.id, second.group_no, second.members[0].record.id
        )
    assert throttled.value.http_status == 429
    assert len(services.duplicates.groups(slow.account, "slow", task.id).groups) == 7  # nothing half-done
    services.clock.advance(1.1)
    services.duplicates.keep_one(slow.account, "slow", task.id, second.group_no, second.members[0].record.id)


def test_reports_are_the_tenants_own_and_one_runs_at_a_time(
    services: Services, tenant: Tenant, catalogue: dict[str, set[str]]
) -> None:
    reports = services.duplicates
    first = reports.start(tenant.account, tenant.instance.name)
    services.clock.advance(1.1)  # starting is a console action: 1 per second per instance
    with pytest.raises(LookalikeError) as running:
        reports.start(tenant.account, tenant.instance.name)
    assert running.value.http_status == 409
    with pytest.raises(LookalikeError) as early:  # no groups before the scan ends
        reports.groups(tenant.account, tenant.instance.name, first.task.id)
    assert early.value.http_status == 400
    services.tasks.run_pending()
    other = make_tenant(services, "rival", "theirs")
    with pytest.raises(LookalikeError) as foreign:  # another tenant names our report on its own instance
        reports.groups(other.account, "theirs", first.task.id)
    assert foreign.value.http_status == 404
    with pytest.raises(LookalikeError):  # ... or on ours
        reports.groups(other.account, tenant.instance.name, first.task.id)
    for bad in (0.2, 1.5, float("nan")):
        services.clock.advance(1.1)
        with pytest.raises(LookalikeError, match="Threshold"):
            reports.start(tenant.account, tenant.instance.name, bad)


def test_a_new_report_replaces_the_old_one_and_a_stricter_threshold_finds_less(
    services: Services, tenant: Tenant, catalogue: dict[str, set[str]]
) -> None:
    reports = services.duplicates
    loose = reports.start(tenant.account, tenant.instance.name, 0.75).task
    services.tasks.run_pending()
    services.clock.advance(1.1)
    strict = reports.start(tenant.account, tenant.instance.name, 0.999).task
    services.tasks.run_pending()
    latest = reports.report(tenant.account, tenant.instance.name, rate_limited=False)
    assert latest is not None and latest.task.id == strict.id and latest.threshold == 0.999
    assert latest.pictures < 24
    with pytest.raises(LookalikeError, match="replaced") as replaced:  # the older report's rows are gone
        reports.groups(tenant.account, tenant.instance.name, loose.id, page_size=100)
    assert replaced.value.http_status == 404


def test_released_instance_fails_its_running_report(services: Services, tenant: Tenant) -> None:
    load_catalogue(services, tenant)
    report = services.duplicates.start(tenant.account, tenant.instance.name)
    with services.engine.begin() as conn:  # the lifecycle's end state, set directly
        conn.execute(update(instances).where(instances.c.id == tenant.instance.id).values(status="released"))
    services.tasks.run_pending()
    task = services.tasks._repo.get(report.task.id)
    assert task is not None and task.status == FAIL


# --- over HTTP ---
@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as c:
        yield c


def test_rest_start_progress_pages_csv_and_keep(
    services: Services, tenant: Tenant, catalogue: dict[str, set[str]], client: TestClient
) -> None:
    auth = (tenant.key_id, tenant.secret)
    base = f"/v1/instances/{tenant.instance.name}/duplicates"
    started = client.post(base, json={"threshold": 0.85}, auth=auth)
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["status"] == "PROCESSING" and body["threshold"] == 0.85
    report_id = body["id"]
    assert client.get(f"{base}/{report_id}/groups", auth=auth).status_code == 400  # still running
    services.tasks.run_pending()
    status = client.get(f"{base}/{report_id}", auth=auth).json()
    assert status["status"] == "SUCCESS" and status["progress"] == 1.0 and status["scanned"] == 32
    latest = client.get(base, auth=auth).json()
    assert latest["id"] == report_id
    page = client.get(f"{base}/{report_id}/groups", params={"page_size": 5}, auth=auth).json()
    assert page["total_groups"] == status["groups"] and len(page["groups"]) == 5
    first = page["groups"][0]
    assert {"product_id", "pic_name", "image_id", "score"} <= set(first["pictures"][0])
    services.clock.advance(1.1)  # the export is a console action: 1 per second per instance
    exported = client.get(f"{base}/{report_id}/csv", auth=auth)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["group", "suggested_keep", "product_id", "pic_name", "score"]
    assert len(rows) - 1 == status["pictures"]
    keep = first["pictures"][0]["image_id"]
    kept = client.post(f"{base}/{report_id}/groups/{first['group']}/keep", json={"image_id": keep}, auth=auth)
    assert kept.status_code == 200, kept.text
    assert len(kept.json()["deleted"]) == len(first["pictures"]) - 1
    # Hostile and odd requests: clear 4xx, never 5xx.
    services.clock.advance(1.1)
    for bad in ({"threshold": "lots"}, {"threshold": 2}, {"threshold": 1e400}, ["x"], "null"):
        r = client.post(
            base,
            content=json.dumps(bad) if not isinstance(bad, str) else bad,
            auth=auth,
            headers={"content-type": "application/json"},
        )
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)
    for url in (
        f"{base}/999999",
        f"{base}/abc",
        f"{base}/{report_id}/groups?page_size=0",
        f"{base}/{report_id}/groups?page=-1",
        "/v1/instances/nope/duplicates",
    ):
        r = client.get(url, auth=auth)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
    assert client.get(base).status_code == 401


# --- the CLI, against a live server with its task worker running ---
def test_cli_runs_a_report_to_the_end_and_writes_the_csv(
    services: Services,
    tenant: Tenant,
    catalogue: dict[str, set[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ticking = threading.Event()

    def tick() -> None:  # the server's clock moves on as a real one would (rate limits refill)
        while not ticking.wait(0.05):
            services.clock.advance(0.5)  # type: ignore[attr-defined]

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    services.tasks.start()
    try:
        with live_server(services) as endpoint:
            common = ["--url", f"http://{endpoint}", "--key-id", tenant.key_id, "--secret", tenant.secret]
            out = tmp_path / "dups.csv"
            code = cli_main(
                [
                    "duplicates",
                    "--instance",
                    tenant.instance.name,
                    "--csv",
                    str(out),
                    "--poll",
                    "0.2",
                    *common,
                ]
            )
            printed = capsys.readouterr().out
            assert code == 0, printed
            assert "8 groups of copies, 24 pictures in them" in printed
            assert printed.count("  keep ") == 8  # one suggested keeper per group shown
            rows = list(csv.reader(io.StringIO(out.read_text())))
            assert len(rows) == 25 and {r[3] for r in rows[1:]} == set().union(*catalogue.values())
            report_id = services.duplicates.report(tenant.account, tenant.instance.name, rate_limited=False)
            assert report_id is not None
            code = cli_main(
                [
                    "duplicates",
                    "--instance",
                    tenant.instance.name,
                    "--report",
                    str(report_id.task.id),
                    "--show",
                    "0",
                    "--json",
                    *common,
                ]
            )
            body = json.loads(capsys.readouterr().out)
            assert code == 0 and body["report"]["groups"] == 8 and body["groups"] == []
            code = cli_main(["duplicates", "--instance", "nope", *common])
            assert code == 1 and "InvalidInstance" in capsys.readouterr().err
    finally:
        ticking.set()
        services.tasks.stop()


# --- on the shared vector backend ---
def test_report_on_milvus_finds_the_same_groups(
    tmp_path: Path, model_cache: Path, database_url: str | None
) -> None:
    """The scan's batched neighbour search through Milvus (search_many) groups as the local index does."""
    uri = require_milvus_uri()
    prefix = f"lkdup_{uuid.uuid4().hex[:10]}_"
    settings = make_settings(
        tmp_path / "data",
        database_url,
        model_cache_dir=model_cache,
        vector_backend="milvus",
        milvus_uri=uri,
        milvus_collection_prefix=prefix,
        milvus_consistency="Strong",  # the scan reads right after the adds
    )
    services = build_services(settings, clock=ManualClock(), background=False)
    try:
        tenant = make_tenant(services, "acme", "shop")
        planted = load_catalogue(services, tenant)
        task = services.duplicates.start(tenant.account, "shop").task
        assert services.tasks.run_pending() == 1
        assert sorted(map(sorted, found_groups(services, tenant, task.id))) == sorted(
            map(sorted, planted.values())
        )
    finally:
        services.close()
        _drop_collections(uri, prefix)
