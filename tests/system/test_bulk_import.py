"""The bulk import on Ray (`lookalike import --engine ray`, lookalike.bulk): the stored analysis is the add's,
upsert_many keeps upsert's guarantees, and the Ray engine imports the same rows as the local one, refuses an
over-quota import before writing, reports bad rows, and finishes after a killed worker or driver with no row
lost or doubled.

The Ray tests share the session's local cluster on loopback (tests/ray_cluster.py).
Vector tolerance: the stored float16 vectors of the two paths differ only by the model's batch composition
(float32 rounding), so every stored value is within VECTOR_TOLERANCE and cosines are >= 0.9999; everything
else (category, Region, MultiRegion, keypoints, thumbnail bytes, attributes) is equal.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from conftest import Tenant, grant_instance, make_tenant
from lookalike.api.app import create_app
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain.errors import INSTANCE_OVER_QUOTA, LookalikeError
from lookalike.domain.models import Attributes, ServiceType
from lookalike.importer import run_import
from lookalike.service.container import Services, build_services
from lookalike.service.picture_analysis import PictureRequest, analyze_many, stored_picture
from lookalike.storage.images_repo import NewImage, NewPicture, blob_to_vector
from lookalike.storage.tables import changes, images, keypoints, thumbnails
from lookalike.vectors.reduction import packaged as packaged_reduction
from lookalike.vision.embedder import EfficientNetEmbedder
from photos import load_photo
from ray_cluster import RayCluster
from server import LOOKALIKE

VECTOR_TOLERANCE = 2e-3  # largest difference of any stored (float16) vector value between the two paths
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "horse",
    "camera",
    "immunohistochemistry",
)


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_manifest(root: Path, count: int, *, bad_rows: bool = True) -> Path:
    """`count` good pictures (real photos, each size-jittered) with varied add options, plus (bad_rows) a
    corrupt file, a missing file and a bad attribute."""
    root.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, object]] = []
    for n in range(count):
        photo = load_photo(PHOTOS[n % len(PHOTOS)])
        scale = 0.6 + 0.05 * (n // len(PHOTOS))
        photo = photo.resize((max(120, round(photo.width * scale)), max(120, round(photo.height * scale))))
        (root / f"p{n}.jpg").write_bytes(jpeg(photo))
        line: dict[str, object] = {
            "path": f"p{n}.jpg",
            "product_id": f"sku-{n // 3}",
            "pic_name": f"view-{n}.jpg",
            "int_attr": n,
            "str_attr": f"s{n % 2}",
            "custom_content": f"picture {n}",
        }
        if n % 4 == 1:
            line["crop"] = False
        if n % 4 == 2:
            line["category_id"] = 3
        if n % 4 == 3:
            line["region"] = "10,110,20,100"
        lines.append(line)
    if bad_rows:
        (root / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
        lines.append({"path": "corrupt.jpg", "product_id": "bad", "pic_name": "corrupt"})
        lines.append({"path": "missing.jpg", "product_id": "bad", "pic_name": "missing"})
        lines.append({"path": "p0.jpg", "product_id": "bad", "pic_name": "attr", "int_attr": "many"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


@dataclass(frozen=True)
class Stored:
    category_id: int
    region: str
    attributes: tuple[object, ...]
    custom_content: str
    views: np.ndarray
    thumbnail: bytes | None
    features: bytes | None


def stored_rows(services: Services, instance_id: str) -> dict[tuple[str, str], Stored]:
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(images).where(images.c.instance_id == instance_id)).all()
        thumbs = {int(r.image_id): bytes(r.data) for r in conn.execute(sa.select(thumbnails))}
        features = {int(r.image_id): bytes(r.data) for r in conn.execute(sa.select(keypoints))}
    out: dict[tuple[str, str], Stored] = {}
    for row in rows:
        views = [blob_to_vector(row.embedding)]
        if row.aux_embedding is not None:
            views.append(blob_to_vector(row.aux_embedding))
        out[(row.product_id, row.pic_name)] = Stored(
            row.category_id,
            row.region,
            (row.int_attr, row.int_attr2, row.str_attr, row.str_attr2),
            row.custom_content,
            np.stack(views),
            thumbs.get(row.id),
            features.get(row.id),
        )
    return out


def assert_same_pictures(left: dict[tuple[str, str], Stored], right: dict[tuple[str, str], Stored]) -> None:
    assert sorted(left) == sorted(right)
    for key, a in left.items():
        b = right[key]
        assert (a.category_id, a.region, a.attributes, a.custom_content) == (
            b.category_id,
            b.region,
            b.attributes,
            b.custom_content,
        ), key
        assert a.views.shape == b.views.shape, key
        va, vb = a.views.astype(np.float32), b.views.astype(np.float32)
        assert float(np.abs(va - vb).max()) <= VECTOR_TOLERANCE, key
        cosines = np.sum(va * vb, axis=1)
        assert float(cosines.min()) >= 0.9999, key
        assert a.thumbnail == b.thumbnail and a.features == b.features, key


# ---------------------------------------------------------------- the analysis and the bulk write (no Ray)


def test_bulk_analysis_stores_what_add_image_stores(
    services: Services, tenant: Tenant, tmp_path: Path
) -> None:
    """analyze_many (one model call for a whole batch, as a Ray worker runs it) + stored_picture gives the
    rows add_image writes: same category, Region, keypoints and thumbnail, vectors within tolerance."""
    manifest = write_manifest(tmp_path / "pics", 8, bad_rows=False)
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    for entry in entries:
        services.images.add_image(
            tenant.account,
            "shop",
            product_id=entry["product_id"],
            pic_name=entry["pic_name"],
            picture=(manifest.parent / entry["path"]).read_bytes(),
            category_id=entry.get("category_id"),
            crop=entry.get("crop", True),
            region=entry.get("region"),
            attributes=Attributes(int_attr=entry["int_attr"], str_attr=entry["str_attr"]),
            custom_content=entry["custom_content"],
        )
    embedder = EfficientNetEmbedder(services.settings.models_dir)
    reduction = packaged_reduction()
    requests = [
        PictureRequest(
            (manifest.parent / entry["path"]).read_bytes(),
            entry.get("region"),
            entry.get("crop", True),
            entry.get("category_id"),
        )
        for entry in entries
    ]
    analyses = analyze_many(
        [*requests, PictureRequest(b"corrupt")],
        limits=services.settings.image_limits,
        embed=embedder.embed,
        reduce=reduction.reduce,
        service_type=ServiceType.PRODUCT,
    )
    assert isinstance(analyses[-1], LookalikeError)  # a bad picture is its own row's error
    expected = stored_rows(services, tenant.instance.id)
    computed: dict[tuple[str, str], Stored] = {}
    for entry, analysis in zip(entries, analyses, strict=False):
        assert not isinstance(analysis, LookalikeError)
        picture = stored_picture(
            analysis,
            product_id=entry["product_id"],
            pic_name=entry["pic_name"],
            attributes=Attributes(int_attr=entry["int_attr"], str_attr=entry["str_attr"]),
            custom_content=entry["custom_content"],
            model_id=services.indexes.model_id,
            thumbnail_size=services.settings.thumbnail_size,
        )
        views = [blob_to_vector(_blob(picture.image.embedding))]
        if picture.image.aux_embedding is not None:
            views.append(blob_to_vector(_blob(picture.image.aux_embedding)))
        attrs = picture.image.attributes
        computed[(entry["product_id"], entry["pic_name"])] = Stored(
            picture.image.category_id,
            picture.image.region,
            (attrs.int_attr, attrs.int_attr2, attrs.str_attr, attrs.str_attr2),
            picture.image.custom_content,
            np.stack(views),
            picture.thumbnail,
            picture.local_features,
        )
    assert_same_pictures(expected, computed)
    assert any(p.views.shape[0] == 2 for p in computed.values())  # a crop/Region row stores both views


def _blob(vector: np.ndarray) -> bytes:
    from lookalike.storage.images_repo import vector_to_blob

    return vector_to_blob(vector)


def _picture(n: int, *, thumbnail: bytes | None = b"thumb", features: bytes | None = b"feat") -> NewPicture:
    rng = np.random.default_rng(n)
    vector = rng.normal(size=256).astype(np.float32)
    return NewPicture(
        NewImage(
            product_id=f"p{n // 2}",
            pic_name=f"n{n}",
            category_id=n % 5,
            attributes=Attributes(int_attr=n, str_attr=f"s{n}"),
            custom_content=f"c{n}",
            region="0,10,0,10",
            embedding=vector / np.linalg.norm(vector),
            model_id="m",
        ),
        thumbnail=None if thumbnail is None else thumbnail + bytes([n]),
        local_features=None if features is None else features + bytes([n]),
    )


def test_upsert_many_keeps_upserts_guarantees(services: Services, tenant: Tenant) -> None:
    """Same rows, count, change log and extras as one upsert per picture; overwrites replace (or drop) the
    thumbnail and features and do not count; an over-capacity batch writes nothing."""
    repo = services.images._images
    now = services.clock.now()
    other = grant_instance(services, tenant.account.id, "other", capacity=100, qps=10)
    first = [_picture(n) for n in range(10)]
    written = repo.upsert_many(tenant.instance.id, first, capacity=100, now=now)
    for picture in first:
        repo.upsert(
            other.id,
            picture.image,
            capacity=100,
            now=now,
            thumbnail=picture.thumbnail,
            local_features=picture.local_features,
        )
    assert [w.created for w in written] == [True] * 10
    seqs = [w.seq for w in written]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    # Overwrite 3 (one loses its thumbnail and features) and add 2 new ones, in one batch.
    second = [
        _picture(2, thumbnail=None, features=None),
        _picture(3),
        _picture(4),
        _picture(10),
        _picture(11),
    ]
    again = repo.upsert_many(tenant.instance.id, second, capacity=100, now=now)
    for picture in second:
        repo.upsert(
            other.id,
            picture.image,
            capacity=100,
            now=now,
            thumbnail=picture.thumbnail,
            local_features=picture.local_features,
        )
    assert [w.created for w in again] == [False, False, False, True, True]
    assert {w.image_id for w in again[:3]} == {written[n].image_id for n in (2, 3, 4)}
    assert min(w.seq for w in again) > max(seqs)
    assert repo.stored_count(tenant.instance.id) == repo.recount(tenant.instance.id) == 12
    assert_same_pictures(stored_rows(services, other.id), stored_rows(services, tenant.instance.id))
    with services.engine.connect() as conn:
        logged = conn.execute(
            sa.select(sa.func.count()).select_from(changes).where(changes.c.instance_id == tenant.instance.id)
        ).scalar_one()
    assert logged == 15
    # The faiss index catches up from the change log: 12 vectors.
    assert len(services.indexes.get(tenant.instance.id)) == 12
    # Over capacity: nothing of the batch is written.
    with pytest.raises(LookalikeError) as refused:
        repo.upsert_many(tenant.instance.id, [_picture(20), _picture(21), _picture(3)], capacity=13, now=now)
    assert refused.value.code == INSTANCE_OVER_QUOTA
    assert repo.stored_count(tenant.instance.id) == 12 and repo.get(tenant.instance.id, "p10", "n20") is None


# ---------------------------------------------------------------- the Ray engine


def _descendants(root: int) -> list[int]:
    """Pids of every live process below `root` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = [], [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_ray_import_stores_what_the_local_import_stores(
    services: Services, tenant: Tenant, tmp_path: Path, ray_cluster: RayCluster
) -> None:
    """The same manifest through `--engine local` (the API, here in-process) into one instance and through
    `--engine ray` into another: the same rows, vectors within tolerance, the same per-row errors."""
    from lookalike.bulk.ray_engine import run_ray_import

    manifest = write_manifest(tmp_path / "pics", 10)
    grant_instance(services, tenant.account.id, "viaray", capacity=1000, qps=10)
    with TestClient(create_app(services, close_on_shutdown=False)) as client:
        client.auth = (tenant.key_id, tenant.secret)
        local = run_import(
            source=manifest,
            instance="shop",
            url="http://testserver",
            key_id=tenant.key_id,
            secret=tenant.secret,
            state_dir=tmp_path / "local-state",
            workers=2,
            progress=False,
            client=client,
        )
    summary = run_ray_import(
        settings=services.settings,
        source=manifest,
        instance="viaray",
        state_dir=tmp_path / "ray-state",
        address=ray_cluster.address,
        workers=2,
        batch_size=4,
        write_batch=4,
        progress=False,
    )
    assert (local["added"], local["failed"]) == (10, 3)
    assert (summary["added"], summary["failed"], summary["total"]) == (10, 3, 13)
    errors = [json.loads(line) for line in Path(summary["result_file"]).read_text().splitlines()]
    by_name = {entry["pic_name"]: entry["error"] for entry in errors}
    assert by_name.keys() == {"corrupt", "missing", "attr"}
    assert by_name["corrupt"].startswith("UnsupportedPicFormat")
    assert by_name["missing"].startswith("PicNotExist")
    assert by_name["attr"].startswith("InvalidIntAttr")
    local_errors = {f["pic_name"]: f["error"].split(":")[0] for f in local["failures"]}
    assert local_errors["corrupt"] == by_name["corrupt"].split(":")[0]
    viaray = services.instances_repo.get_by_name("viaray")
    assert viaray is not None
    assert_same_pictures(stored_rows(services, tenant.instance.id), stored_rows(services, viaray.id))
    # The server's index catches up from the change log; a re-run is idempotent (everything skipped).
    assert len(services.indexes.get(viaray.id)) == 10
    rerun = run_ray_import(
        settings=services.settings,
        source=manifest,
        instance="viaray",
        state_dir=tmp_path / "ray-state",
        address=ray_cluster.address,
        progress=False,
    )
    assert (rerun["skipped"], rerun["added"]) == (10, 0)
    assert services.images._images.stored_count(viaray.id) == 10


def test_ray_import_over_quota_is_refused_before_writing(
    services: Services, tenant: Tenant, tmp_path: Path
) -> None:
    """Held + the manifest's new keys over the capacity: refused before any row (and before Ray starts);
    keys the instance already holds do not count."""
    from lookalike.bulk.ray_engine import run_ray_import

    small = grant_instance(services, tenant.account.id, "small", capacity=5, qps=10)
    manifest = write_manifest(tmp_path / "pics", 6, bad_rows=False)
    with pytest.raises(LookalikeError) as refused:
        run_ray_import(
            settings=services.settings,
            source=manifest,
            instance="small",
            state_dir=tmp_path / "state",
            address="127.0.0.1:1",  # never reached
            progress=False,
        )
    assert refused.value.code == INSTANCE_OVER_QUOTA
    with services.engine.connect() as conn:
        for table in (images, changes):
            count = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.instance_id == small.id)
            ).scalar_one()
            assert count == 0


def _analyzers(cluster: RayCluster) -> list[int]:
    return [pid for pid in _descendants(cluster.pid) if "MapWorker(MapBatches(Analyzer))" in _cmdline(pid)]


def test_ray_import_survives_a_killed_worker_and_a_killed_driver(
    services: Services, tenant: Tenant, tmp_path: Path, ray_cluster: RayCluster
) -> None:
    """A worker actor killed mid-import is restarted and the import finishes; a driver killed mid-import
    (kill -9 of the CLI) is re-run and finishes: every picture once, none doubled."""
    from lookalike.bulk.ray_engine import run_ray_import

    count = 24
    manifest = write_manifest(tmp_path / "pics", count, bad_rows=False)
    killed: list[int] = []

    def kill_a_worker(written: int) -> None:
        if not killed:
            pids = _analyzers(ray_cluster)
            assert pids, "no analysis actor found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    summary = run_ray_import(
        settings=services.settings,
        source=manifest,
        instance="shop",
        state_dir=tmp_path / "state",
        address=ray_cluster.address,
        workers=2,
        batch_size=2,
        write_batch=2,
        progress=False,
        on_batch=kill_a_worker,
    )
    assert killed and summary["added"] == count and summary["failed"] == 0
    repo = services.images._images
    assert repo.stored_count(tenant.instance.id) == repo.recount(tenant.instance.id) == count

    # The driver: a CLI import into a second instance, killed once it has journaled a batch, then re-run.
    second = grant_instance(services, tenant.account.id, "second", capacity=1000, qps=10)
    settings = services.settings
    env = {**os.environ, "LOOKALIKE_MODEL_CACHE_DIR": str(settings.models_dir), "RAY_AUTH_MODE": "disabled"}
    if settings.database_url:
        env["LOOKALIKE_DATABASE_URL"] = settings.database_url
    command = [
        *LOOKALIKE,
        "import",
        str(manifest),
        "--instance",
        "second",
        "--engine",
        "ray",
        "--ray-address",
        ray_cluster.address,
        "--data-dir",
        str(settings.data_dir),
        "--batch-size",
        "2",
        "--write-batch",
        "2",
        "--no-progress",
        "--json",
    ]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    state = settings.data_dir / "import-state"
    deadline = time.monotonic() + 180
    journal: list[Path] = []
    while time.monotonic() < deadline and driver.poll() is None:
        journal = list(state.glob("second-*.ray.jsonl")) if state.exists() else []
        if journal and len(journal[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert journal, driver.stderr.read().decode() if driver.stderr else "no journal"
    done_before = len(journal[0].read_text().splitlines())
    assert 2 <= done_before < count
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = json.loads(rerun.stdout)
    assert result["skipped"] == done_before and result["added"] == count - done_before
    assert repo.stored_count(second.id) == repo.recount(second.id) == count
    assert_same_pictures(stored_rows(services, tenant.instance.id), stored_rows(services, second.id))
    assert len(services.indexes.get(second.id)) == count


def test_import_engine_defaults_to_local() -> None:
    """`--engine local` stays the default (the API, an AccessKey, 4 requests at a time) and needs no Ray."""
    from lookalike.cli import build_parser

    args = build_parser().parse_args(["import", "pics", "--instance", "shop"])
    assert args.engine == "local" and args.workers is None and args.ray_address is None
    out = subprocess.run(
        [*LOOKALIKE, "import", "pics", "--instance", "shop"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_ACCESS_KEY")},
    )
    assert out.returncode == 2 and "import needs --key-id/--secret" in out.stderr
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, lookalike.cli, lookalike.importer; print('ray' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"  # the local engine never imports Ray


def test_bulk_writer_applies_each_batch_to_a_shared_milvus_index(
    settings: Settings, clock: ManualClock
) -> None:
    """On Milvus (a shared index) each written batch is caught up inside IndexManager.writing, as an add is:
    the shared watermark reaches the last seq and a search on the service finds the pictures."""
    from lookalike.bulk.writer import BulkWriter
    from test_milvus_index import _drop_collections, require_milvus_uri

    uri = require_milvus_uri()
    prefix = f"bulk_{uuid.uuid4().hex[:8]}_"
    on_milvus = dataclasses.replace(
        settings,
        vector_backend="milvus",
        milvus_uri=uri,
        milvus_collection_prefix=prefix,
        milvus_consistency="Strong",
    )
    services = build_services(on_milvus, clock=clock, background=False)
    try:
        tenant = make_tenant(services, "acme", "shop")
        writer = BulkWriter.from_settings(on_milvus, clock)
        try:
            target = writer.instance("shop")
            pictures = [_picture(n) for n in range(20)]
            writer.write(target, pictures[:12])
            writer.write(target, pictures[12:])
        finally:
            writer.close()
        repo = services.images._images
        assert repo.stored_count(tenant.instance.id) == 20
        index = services.indexes.get(tenant.instance.id)
        assert index.applied_seq == repo.last_seq(tenant.instance.id)
        wanted = pictures[15].image
        found = services.images.search_by_name(tenant.account, "shop", wanted.product_id, wanted.pic_name)
        assert found.hits[0].record.pic_name == wanted.pic_name
    finally:
        services.close()
        _drop_collections(uri, prefix)


def test_manifest_rows_parse_as_the_api_does(tmp_path: Path) -> None:
    """A manifest's fields become an add's options (strings or JSON values alike); a bad one is that row's
    error; a key given twice keeps its last line (what adds in order would leave)."""
    from lookalike.bulk.rows import AddRow, add_row, last_of_each_key
    from lookalike.importer import ImportItem

    item = ImportItem(
        tmp_path / "a.jpg",
        "sku",
        "a.jpg",
        {
            "int_attr": "7",
            "int_attr2": 8,
            "str_attr": "red",
            "crop": "false",
            "category_id": "3",
            "region": "",
        },
    )
    row = add_row(item)
    assert (row.attributes.int_attr, row.attributes.int_attr2, row.attributes.str_attr) == (7, 8, "red")
    assert (row.crop, row.category_id, row.region) == (False, 3, None)
    for fields, code in (
        ({"int_attr": "x"}, "InvalidIntAttr"),
        ({"int_attr3": 1.5}, "InvalidIntAttr3"),
        ({"crop": "maybe"}, "InvalidParameter"),
        ({"category_id": 999}, "InvalidCategory"),
        ({"str_attr": "x" * 200}, "InvalidStrAttr"),
    ):
        with pytest.raises(LookalikeError) as bad:
            add_row(ImportItem(tmp_path / "a.jpg", "sku", "a.jpg", fields))
        assert bad.value.code == code, fields
    with pytest.raises(LookalikeError):
        add_row(ImportItem(tmp_path / "a.jpg", "", "a.jpg"))
    twice = [
        ImportItem(tmp_path / "1.jpg", "p", "x", {"int_attr": 1}),
        ImportItem(tmp_path / "2.jpg", "p", "y"),
        ImportItem(tmp_path / "3.jpg", "p", "x", {"int_attr": 3}),
    ]
    kept = last_of_each_key(twice)
    assert [(i.pic_name, i.path.name) for i in kept] == [("y", "2.jpg"), ("x", "3.jpg")]
    assert AddRow.from_json(row.to_json()) == row  # what travels to the workers
