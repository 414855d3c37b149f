"""LocalIndex (the embedded index) against numpy brute force, with real faiss and real files (no mocks),
at every stage of its life: empty, exact, trained (IVF), retraining in the background, compacted."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from lookalike.domain.vector_codec import STORED_DTYPE
from lookalike.vectors.local_index import LocalIndex
from lookalike.vectors.planner import IndexPolicy
from lookalike.vectors.port import VectorIndex

DIM = 32
# Probes every list and re-ranks a shortlist larger than the instance: ANN answers must equal brute force,
# so the tests check the bookkeeping (lists, slots, files) exactly while still going through the IVF.
EXHAUSTIVE = IndexPolicy(exact_below=64, exact_filtered_max=8, nprobe_fraction=1.0, min_shortlist=100_000)


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def stored(v: np.ndarray) -> np.ndarray:
    return v.astype(STORED_DTYPE).astype(np.float32)


def brute(model: dict[int, np.ndarray], q: np.ndarray, k: int, allowed: set[int] | None = None) -> np.ndarray:
    scores = sorted(
        (float(stored(v) @ q) for i, v in model.items() if allowed is None or i in allowed), reverse=True
    )
    return np.array(scores[:k], np.float32)


def assert_exact(
    index: LocalIndex, model: dict[int, np.ndarray], q: np.ndarray, k: int, allowed=None
) -> None:
    ids, scores = index.search(q, k, None if allowed is None else np.array(sorted(allowed), np.int64))
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    expected = brute(model, q, k, allowed)
    assert len(ids) == len(expected)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
        assert i in model and (allowed is None or i in allowed)
        assert abs(float(stored(model[i]) @ q) - s) < 1e-5


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_protocol_and_empty(tmp_path: Path) -> None:
    index = LocalIndex.open(tmp_path, DIM)
    assert isinstance(index, VectorIndex)
    ids, scores = index.search(np.ones(DIM, np.float32), 5)
    assert len(ids) == 0 and len(scores) == 0 and len(index) == 0
    index.save()  # saving an empty index works and reopens empty
    assert len(LocalIndex.open(tmp_path, DIM)) == 0


def test_exact_add_overwrite_delete(tmp_path: Path, rng: np.random.Generator) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, 40)
    model = {1000 + i: vecs[i] for i in range(40)}
    index.upsert(np.arange(1000, 1040), vecs, seq=1)
    assert len(index) == 40 and index.stats()["mode"] == "exact"
    assert_exact(index, model, vecs[7], 5)
    model[1007] = unit(rng, 1)[0]
    index.upsert(np.array([1007]), model[1007][None], seq=2)
    assert len(index) == 40
    assert_exact(index, model, model[1007], 3)
    index.remove(np.array([1003, 1003, 5555]), seq=3)  # duplicates and unknown ids are fine
    del model[1003]
    assert len(index) == 39 and index.applied_seq == 3
    ids, _ = index.search(vecs[3], 40)
    assert 1003 not in ids.tolist()
    # Identical vector: score ~1 (float16 storage keeps it within 1e-3).
    ids, scores = index.search(vecs[8], 1)
    assert ids[0] == 1008 and scores[0] == pytest.approx(1.0, abs=1e-3)


def test_ivf_training_deletes_overwrites_and_revive(tmp_path: Path, rng: np.random.Generator) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, 300)
    model = {i * 3: vecs[i] for i in range(300)}
    index.upsert(np.array(list(model)), vecs, seq=1)
    stats = index.stats()
    assert stats["mode"] == "ivf" and stats["nlist"] >= 16 and stats["trained_n"] == 300
    ivf = index._ivf
    assert ivf is not None and ivf.index.ntotal == 300
    for q in unit(rng, 5):
        assert_exact(index, model, q, 10)
    gone = [0, 3, 297, 600]
    index.remove(np.array(gone), seq=2)
    for i in gone:
        del model[i]
    assert index._ivf is not None and index._ivf.index.ntotal == 296  # really out of the lists
    model[6] = unit(rng, 1)[0]
    index.upsert(np.array([6]), model[6][None], seq=3)
    assert index._ivf.index.ntotal == 296
    model[3] = unit(rng, 1)[0]  # a deleted id written again (a replay) comes back in its old slot
    index.upsert(np.array([3]), model[3][None], seq=4)
    assert index._ivf.index.ntotal == 297 and len(index) == 297
    for q in [*unit(rng, 5), model[6], model[3]]:
        assert_exact(index, model, q, 10)


@pytest.mark.parametrize("size", [40, 300])  # exact scan / trained IVF (EXHAUSTIVE: exact below 64)
def test_search_many_answers_like_one_search_per_query(
    tmp_path: Path, rng: np.random.Generator, size: int
) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, size)
    index.upsert(np.arange(size) * 2 + 1, vecs, seq=1)
    index.remove(np.array([1, 7]), seq=2)  # dead rows are never answered
    queries = np.concatenate([unit(rng, 6), vecs[:3]])
    many = index.search_many(queries, 10)
    assert len(many) == len(queries)
    for q, ids in zip(queries, many, strict=True):
        assert list(ids) == list(index.search(q, 10)[0])
        assert 1 not in ids and 7 not in ids
    assert index.search_many(queries[:0], 10) == []
    with pytest.raises(ValueError):
        index.search_many(queries[0], 10)  # one vector is not a (m, dim) batch


def test_out_of_order_id_is_inserted(tmp_path: Path, rng: np.random.Generator) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, 200)
    model = {10 + 2 * i: vecs[i] for i in range(200)}
    index.upsert(np.array(list(model)), vecs, seq=1)
    model[11] = unit(rng, 1)[0]  # older than the newest id: slots above it shift
    index.upsert(np.array([11]), model[11][None], seq=2)
    assert len(index) == 201
    for q in [*unit(rng, 5), model[11], model[12]]:
        assert_exact(index, model, q, 10)
    index.remove(np.array([12]), seq=3)
    del model[12]
    assert_exact(index, model, model[14], 10)


def test_background_retraining_keeps_serving_and_applies_concurrent_writes(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    policy = IndexPolicy(
        exact_below=64, exact_filtered_max=8, nprobe_fraction=1.0, min_shortlist=100_000, retrain_growth=2.0
    )
    index = LocalIndex.open(tmp_path, DIM, policy)
    model: dict[int, np.ndarray] = {}
    next_id = 0
    for round_ in range(12):
        vecs = unit(rng, 60)
        ids = np.arange(next_id, next_id + 60)
        next_id += 60
        index.upsert(ids, vecs, seq=round_ + 1)
        model.update(zip(ids.tolist(), vecs, strict=True))
        victims = rng.choice(np.array(list(model)), size=5, replace=False)
        index.remove(victims, seq=round_ + 1)  # during a rebuild too
        for v in victims.tolist():
            del model[v]
        over = int(rng.choice(np.array(list(model))))
        model[over] = unit(rng, 1)[0]
        index.upsert(np.array([over]), model[over][None], seq=round_ + 1)
        assert_exact(index, model, unit(rng, 1)[0], 10)  # served throughout
    index.wait_for_maintenance()
    stats = index.stats()
    assert stats["generation"] >= 2 and stats["trained_n"] > 64, stats
    assert len(index) == len(model)
    for q in unit(rng, 5):
        assert_exact(index, model, q, 10)


def test_compaction_reclaims_deleted_slots(tmp_path: Path, rng: np.random.Generator) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, 400)
    model = {i: vecs[i] for i in range(400)}
    index.upsert(np.arange(400), vecs, seq=1)
    doomed = np.arange(0, 400, 3)
    index.remove(doomed, seq=2)
    for i in doomed.tolist():
        del model[i]
    index.wait_for_maintenance()
    stats = index.stats()
    assert stats["slots"] == len(model) == stats["live"], stats
    for q in unit(rng, 5):
        assert_exact(index, model, q, 10)
    index.save()
    files = {p.name for p in tmp_path.iterdir()}
    assert not any(name.startswith("vectors-0") for name in files), files  # the old generation is gone


@pytest.mark.parametrize("size", [10, 200])  # exact and trained
def test_filtered_search(tmp_path: Path, rng: np.random.Generator, size: int) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, size)
    model = {i: vecs[i] for i in range(size)}
    index.upsert(np.arange(size), vecs, seq=1)
    for fraction in (0.02, 0.3, 1.0):  # below and above exact_filtered_max
        allowed = {int(i) for i in rng.choice(size, size=max(1, int(size * fraction)), replace=False)}
        assert_exact(index, model, unit(rng, 1)[0], 7, allowed | {10**9})  # unknown ids are ignored
    ids, _ = index.search(vecs[0], 5, np.array([], np.int64))
    assert len(ids) == 0


@pytest.mark.parametrize("size", [0, 30, 300])  # empty, exact, trained
def test_save_open_roundtrip(tmp_path: Path, rng: np.random.Generator, size: int) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, max(size, 1))[:size]
    model = {i + 1: vecs[i] for i in range(size)}
    if size:
        index.upsert(np.arange(1, size + 1), vecs, seq=7)
        index.remove(np.array([1]), seq=8)
        del model[1]
    index.save()
    index.close()
    again = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    assert len(again) == len(model) and again.applied_seq == (8 if size else 0)
    if size:
        for q in unit(rng, 3):
            assert_exact(again, model, q, 10)
        assert again.stats()["mode"] == ("ivf" if size >= 64 else "exact")
        model[size + 5] = unit(rng, 1)[0]
        again.upsert(np.array([size + 5]), model[size + 5][None], seq=9)  # writable after a warm start
        assert_exact(again, model, model[size + 5], 5)


def test_unsaved_writes_after_save_are_dropped_on_open(tmp_path: Path, rng: np.random.Generator) -> None:
    """What the manifest does not cover is replayed from SQL: the opened index is the saved state."""
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    vecs = unit(rng, 100)
    index.upsert(np.arange(100), vecs, seq=1)
    index.save()
    index.upsert(np.arange(100, 150), unit(rng, 50), seq=2)  # pages may reach disk, the manifest does not
    index._files.flush()  # type: ignore[union-attr]
    again = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    assert len(again) == 100 and again.applied_seq == 1
    ids, _ = again.search(vecs[5], 200)
    assert set(ids.tolist()) == set(range(100))


@pytest.mark.parametrize("damage", ["manifest", "format", "dim", "ids", "truncated"])
def test_damaged_directory_opens_empty(tmp_path: Path, rng: np.random.Generator, damage: str) -> None:
    index = LocalIndex.open(tmp_path, DIM, EXHAUSTIVE)
    index.upsert(np.arange(100), unit(rng, 100), seq=5)
    index.save()
    index.close()
    manifest = tmp_path / "manifest.json"
    if damage == "manifest":
        manifest.write_text("{not json")
    elif damage == "format":
        data = json.loads(manifest.read_text())
        data["format"] = 1
        manifest.write_text(json.dumps(data))
    elif damage == "ids":
        ids_file = next(tmp_path.glob("ids-*.i64"))
        raw = bytearray(ids_file.read_bytes())
        raw[8:16] = (0).to_bytes(8, "little")  # ids no longer increasing
        ids_file.write_bytes(bytes(raw))
    elif damage == "truncated":
        ids_file = next(tmp_path.glob("ids-*.i64"))
        ids_file.write_bytes(ids_file.read_bytes()[:80])
    reopened = LocalIndex.open(tmp_path, DIM + 1 if damage == "dim" else DIM, EXHAUSTIVE)
    assert len(reopened) == 0 and reopened.applied_seq == 0  # the service then rebuilds from SQL


def test_concurrent_searches_while_writing(tmp_path: Path, rng: np.random.Generator) -> None:
    index = LocalIndex.open(tmp_path, DIM, IndexPolicy(exact_below=64, retrain_growth=2.0))
    base = unit(rng, 100)
    index.upsert(np.arange(100), base, seq=1)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        local = np.random.default_rng(threading.get_ident() % 1000)
        try:
            while not stop.is_set():
                ids, scores = index.search(unit(local, 1)[0], 10)
                assert len(ids) == 10 and np.all(np.diff(scores) <= 1e-6)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for step in range(40):
        index.upsert(np.arange(100 + step * 50, 150 + step * 50), unit(rng, 50), seq=step + 2)
        index.remove(np.array([step]), seq=step + 2)
    stop.set()
    for t in threads:
        t.join()
    index.wait_for_maintenance()
    assert not errors, errors[:1]
    assert len(index) == 100 + 40 * 50 - 40


class LocalIndexMachine(RuleBasedStateMachine):
    """Random adds, overwrites, deletes, saves and reopens against a dict, through exact, trained and
    rebuilt stages (every answer checked against brute force)."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="localindex-"))
        self.policy = IndexPolicy(
            exact_below=24,
            exact_filtered_max=4,
            nprobe_fraction=1.0,
            min_shortlist=100_000,
            retrain_growth=2.0,
        )
        self.index = LocalIndex.open(self.dir, DIM, self.policy)
        self.model: dict[int, np.ndarray] = {}
        self.next_id = 1
        self.seq = 0
        self.rng = np.random.default_rng(7)

    @initialize()
    def start(self) -> None:
        pass

    @rule(n=st.integers(1, 40))
    def add(self, n: int) -> None:
        vecs = unit(self.rng, n)
        ids = np.arange(self.next_id, self.next_id + n)
        self.next_id += n + int(self.rng.integers(0, 3))
        self.seq += 1
        self.index.upsert(ids, vecs, self.seq)
        self.model.update(zip(ids.tolist(), vecs, strict=True))

    @rule(data=st.data())
    def overwrite(self, data: st.DataObject) -> None:
        if self.model:
            victim = data.draw(st.sampled_from(sorted(self.model)))
            self.model[victim] = unit(self.rng, 1)[0]
            self.seq += 1
            self.index.upsert(np.array([victim]), self.model[victim][None], self.seq)

    @rule(data=st.data(), count=st.integers(1, 15))
    def delete(self, data: st.DataObject, count: int) -> None:
        if self.model:
            victims = data.draw(st.lists(st.sampled_from(sorted(self.model)), max_size=count))
            self.seq += 1
            self.index.remove(np.array(victims, np.int64), self.seq)
            for v in victims:
                self.model.pop(v, None)

    @rule()
    def save_and_reopen(self) -> None:
        self.index.wait_for_maintenance()
        self.index.save()
        self.index.close()
        self.index = LocalIndex.open(self.dir, DIM, self.policy)
        assert self.index.applied_seq == self.seq

    @rule(k=st.integers(1, 12), filtered=st.booleans())
    def search(self, k: int, filtered: bool) -> None:
        allowed = None
        if filtered and self.model:
            allowed = {i for i in self.model if i % 3 == 0} | {10**6}
        assert_exact(self.index, self.model, unit(self.rng, 1)[0], k, allowed)

    @invariant()
    def size(self) -> None:
        assert len(self.index) == len(self.model)

    def teardown(self) -> None:
        self.index.close()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


LocalIndexMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLocalIndexMachine = LocalIndexMachine.TestCase
