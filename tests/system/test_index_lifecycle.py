"""The index against real SQL (SQLite, and PostgreSQL on the second pass) through every stage of its life —
empty, exact, trained (IVF), retraining in the background — with adds, overwrites, deletes, filters,
replay of the change log, and a writer killed with SIGKILL in each stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from conftest import make_tenant
from index_writer import POLICY, vector_for, write
from lookalike.domain.filters import parse_filter
from lookalike.service.container import Services
from lookalike.storage.images_repo import ImageRepository
from lookalike.storage.tables import images
from lookalike.vectors.local_index import LocalIndex
from lookalike.vectors.manager import IndexManager
from lookalike.vectors.reduction import packaged

TESTS = Path(__file__).resolve().parents[1]  # tests/, where index_writer.py lives


def live_ids(services: Services, instance_id: str) -> set[int]:
    with services.engine.connect() as conn:
        return {
            int(r[0]) for r in conn.execute(select(images.c.id).where(images.c.instance_id == instance_id))
        }


def assert_matches_sql(services: Services, manager: IndexManager, instance_id: str) -> None:
    """The index holds exactly SQL's pictures, and each stored vector finds its own picture first."""
    repo = ImageRepository(services.engine)
    index = manager.get(instance_id)
    want = live_ids(services, instance_id)
    assert len(index) == len(want)
    ids, _ = index.search(
        np.ones(manager.dim, np.float32) / np.sqrt(manager.dim),
        max(len(want), 1) + 5,
        np.array(sorted(want), np.int64),
    )
    assert set(ids.tolist()) == want
    stored = repo.vectors_by_id(instance_id, sorted(want))
    for image_id in sorted(want)[:: max(1, len(want) // 25)]:
        top, score = index.search(stored[image_id], 1)
        assert int(top[0]) == image_id and float(score[0]) == pytest.approx(1.0, abs=2e-3)


def stage_of(manager: IndexManager, instance_id: str) -> str:
    index = manager.get(instance_id)
    assert isinstance(index, LocalIndex)
    return str(index.stats()["mode"])


def test_add_overwrite_delete_filter_and_replay_at_every_stage(services: Services, tmp_path: Path) -> None:
    tenant = make_tenant(services, "lifeco", "life")
    inst = tenant.instance.id
    repo = ImageRepository(services.engine)
    root = tmp_path / "idx"
    manager = IndexManager(root, repo, packaged(), policy=POLICY)
    assert len(manager.get(inst)) == 0  # empty
    seen_modes = set()
    n = 0
    for target in (20, 60, 200):  # exact, trained, retrained (2x growth)
        while n < target:
            write(repo, manager, inst, n)
            n += 1
        # Overwrite one (same id, new vector) and delete a few.
        victim = n - 3
        vector = vector_for(10_000 + n, manager.dim)
        record = repo.get(inst, f"p{victim}", f"{victim}.jpg")
        assert record is not None
        with manager.writing(inst) as index:
            from lookalike.storage.images_repo import NewImage

            written = repo.upsert(
                inst,
                NewImage(
                    f"p{victim}",
                    f"{victim}.jpg",
                    1,
                    record.attributes,
                    "",
                    record.region,
                    vector,
                    manager.model_id,
                ),
                capacity=10**9,
                now=datetime.now(UTC),
            )
            assert not written.created and written.image_id == record.id
            index.upsert(np.array([written.image_id]), vector[None], written.seq)
        top, _ = manager.get(inst).search(vector, 1)
        assert int(top[0]) == record.id
        with manager.writing(inst) as index:
            gone = repo.delete(inst, filter_node=parse_filter(f"int_attr = {n % 7}"))
            index.remove(np.array(gone.image_ids, np.int64), gone.seq)
        index = manager.get(inst)
        assert isinstance(index, LocalIndex)
        index.wait_for_maintenance()
        seen_modes.add(index.stats()["mode"])
        assert_matches_sql(services, manager, inst)
        # A filter through the port: exact (small match set) and through the IVF (large).
        for text in ("int_attr = 2", "int_attr != 2"):
            node = parse_filter(text)
            scope = manager.scope(inst, node, None)
            ids, _ = scope.top(vector_for(5, manager.dim), 10)
            assert scope.matched == len(repo.matching_ids(inst, node, None))
            rows = repo.hydrate(inst, ids.tolist())
            assert all(rows[i].attributes.int_attr == 2 for i in rows) == (text == "int_attr = 2")
        # Replay: a fresh manager over the saved index and the log written after the save.
        manager.save_dirty()
        write(repo, manager, inst, n)
        n += 1
        again = IndexManager(root, repo, packaged(), policy=POLICY)
        assert_matches_sql(services, again, inst)
        again.close()
    assert seen_modes == {"exact", "ivf"}
    # Retraining happened: trained on more than the first training's size.
    final = manager.get(inst)
    assert isinstance(final, LocalIndex) and int(final.stats()["trained_n"]) > POLICY.exact_below
    manager.close()


@pytest.mark.parametrize("stage", ["exact", "trained", "retraining"])
def test_kill9_writer_at_each_stage_loses_nothing(
    services: Services, tmp_path: Path, database_url: str | None, stage: str
) -> None:
    tenant = make_tenant(services, f"kill{stage}", f"kill{stage[:10]}")
    inst = tenant.instance.id
    url = database_url or f"sqlite:///{(services.settings.data_dir / 'lookalike.db').resolve()}"
    root = tmp_path / "idx"
    repo = ImageRepository(services.engine)
    before = {"exact": 5, "trained": 45, "retraining": 70}[stage]
    manager = IndexManager(root, repo, packaged(), policy=POLICY)
    for n in range(before):
        write(repo, manager, inst, n)
    manager.close()  # saved
    # The child keeps writing; kill it after some acknowledged writes (for "retraining": as it grows past
    # 2x the training size, so a background rebuild is running or just swapped).
    kill_after = {"exact": 12, "trained": 15, "retraining": 30}[stage]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, str(TESTS / "index_writer.py"), url, str(root), inst, str(before), "500", "3"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    acked = -1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith("acked"):
            acked = int(line.split()[1])
            if acked >= before + kill_after:
                break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert acked >= before + kill_after
    # Every acknowledged write is in SQL; the reopened index agrees with SQL exactly.
    have = {r.product_id for r in repo.list_filtered(inst, None, offset=0, limit=10_000)}
    assert f"p{acked}" in have
    reopened = IndexManager(root, repo, packaged(), policy=POLICY)
    assert_matches_sql(services, reopened, inst)
    index = reopened.get(inst)
    assert isinstance(index, LocalIndex)
    index.wait_for_maintenance()
    assert_matches_sql(services, reopened, inst)
    reopened.close()


def test_rows_stored_before_the_reduction_are_reencoded_and_found(services: Services, tmp_path: Path) -> None:
    """A picture written as 1280-d float32 features (the old form) is reduced at start-up and searchable."""
    from sqlalchemy import update

    from lookalike.vectors.reencode import reencode_raw_features

    tenant = make_tenant(services, "oldco", "old")
    inst = tenant.instance.id
    repo = ImageRepository(services.engine)
    reduction = packaged()
    manager = IndexManager(tmp_path / "idx", repo, reduction, policy=POLICY)
    write(repo, manager, inst, 1)
    write(repo, manager, inst, 2)
    manager.close()
    features = np.abs(np.random.default_rng(0).standard_normal((2, reduction.dim_in))).astype(np.float32)
    ids = sorted(live_ids(services, inst))
    with services.engine.begin() as conn:
        for image_id, f in zip(ids, features, strict=True):
            conn.execute(
                update(images)
                .where(images.c.id == image_id)
                .values(embedding=f.astype("<f4").tobytes(), model_id=reduction.source_model)
            )
        conn.execute(update(images).where(images.c.id == ids[1]).values(embedding=b"\x00" * 12))
    assert reencode_raw_features(repo, reduction) == 1  # the damaged one is left as it is
    assert reencode_raw_features(repo, reduction) == 0  # idempotent
    stored = repo.vectors_by_id(inst, [ids[0]])[ids[0]]
    np.testing.assert_allclose(stored, reduction.reduce(features[0]), atol=2e-3)
    with services.engine.connect() as conn:
        models = dict(
            conn.execute(select(images.c.id, images.c.model_id).where(images.c.instance_id == inst)).all()
        )
    assert models == {ids[0]: reduction.model_id(), ids[1]: reduction.source_model}


def test_vectors_of_the_previous_reduction_migrate_and_the_indexes_rebuild(
    services: Services, tmp_path: Path
) -> None:
    """Rows stored under pca256-v1 move to the whitened space without their pixels; the index, whose dim
    did not change, is dropped first and rebuilt from SQL, so it never serves the old space."""
    from sqlalchemy import update

    from lookalike.domain import vector_codec
    from lookalike.vectors.reduction import DATA_DIR, Reduction
    from lookalike.vectors.reencode import migrate_previous_reduction

    tenant = make_tenant(services, "v1co", "vone")
    inst = tenant.instance.id
    repo = ImageRepository(services.engine)
    reduction = packaged()
    assert reduction.previous is not None
    previous = Reduction.load(DATA_DIR / "reduction-pca256-v1.npz")
    assert reduction.previous_model_id() == previous.model_id()
    root = tmp_path / "idx"
    manager = IndexManager(root, repo, reduction, policy=POLICY)
    for i in range(3):
        write(repo, manager, inst, i)
    manager.close()
    features = np.abs(np.random.default_rng(1).standard_normal((3, reduction.dim_in))).astype(np.float32)
    old = previous.reduce(features)
    ids = sorted(live_ids(services, inst))
    with services.engine.begin() as conn:
        for image_id, v in zip(ids, old, strict=True):
            conn.execute(
                update(images)
                .where(images.c.id == image_id)
                .values(embedding=vector_codec.encode(v), model_id=previous.model_id())
            )
    drops: list[str] = []
    again = IndexManager(root, repo, reduction, policy=POLICY)

    def drop_indexes() -> None:
        drops.append(inst)
        again.drop(inst)

    assert migrate_previous_reduction(repo, reduction, drop_indexes) == 3
    assert migrate_previous_reduction(repo, reduction, drop_indexes) == 0  # idempotent
    assert drops == [inst]  # dropped once, before the rows moved
    stored = repo.vectors_by_id(inst, ids)
    for image_id, f in zip(ids, features, strict=True):
        # The migrated vector is the one the new reduction makes from the same features.
        np.testing.assert_allclose(stored[image_id], reduction.reduce(f), atol=5e-3)
    assert_matches_sql(services, again, inst)
    again.close()
