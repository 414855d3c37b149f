"""FaissIndex against numpy brute force, with real faiss (no mocks)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from lookalike.storage.vector_index import FaissIndex, VectorIndex

DIM = 32


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, dim: int = DIM, centres: int = 20) -> np.ndarray:
    c = unit(rng, centres, dim)
    x = c[rng.integers(0, centres, n)] + 0.3 * unit(rng, n, dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(model: dict[int, np.ndarray], q: np.ndarray, k: int, allowed: set[int] | None = None) -> list[int]:
    items = [(i, v) for i, v in model.items() if allowed is None or i in allowed]
    if not items:
        return []
    ids = np.array([i for i, _ in items])
    scores = np.stack([v for _, v in items]) @ q
    return ids[np.argsort(-scores, kind="stable")[:k]].tolist()


def assert_exact(
    index: FaissIndex, model: dict[int, np.ndarray], q: np.ndarray, k: int, allowed=None
) -> None:
    ids, scores = index.search(q, k, None if allowed is None else np.array(sorted(allowed), np.int64))
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    expected = brute(model, q, k, allowed)
    assert len(ids) == len(expected)
    assert np.all(np.diff(scores) <= 1e-6)
    # Compare by score (ties may order differently).
    exp_scores = np.array([model[i] @ q for i in expected], np.float32)
    np.testing.assert_allclose(scores, exp_scores, rtol=0, atol=1e-5)
    for i, s in zip(ids.tolist(), scores.tolist(), strict=True):
        assert i in model and (allowed is None or i in allowed)
        assert abs(float(model[i] @ q) - s) < 1e-5


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_protocol(tmp_path: Path) -> None:
    index = FaissIndex.open(tmp_path, DIM)
    assert isinstance(index, VectorIndex)
    assert len(index) == 0 and index.applied_seq == 0
    ids, scores = index.search(np.zeros(DIM, np.float32), 5)
    assert ids.shape == (0,) and scores.shape == (0,)


def test_exact_topk_and_overwrite(tmp_path: Path, rng: np.random.Generator) -> None:
    index = FaissIndex.open(tmp_path, DIM)
    vecs = unit(rng, 500)
    ids = np.arange(1000, 1500, dtype=np.int64)
    index.upsert(ids, vecs, seq=1)
    model = {int(i): v for i, v in zip(ids, vecs, strict=True)}
    assert len(index) == 500 and index.applied_seq == 1 and index.stats()["mode"] == "exact"
    for q in unit(rng, 10):
        assert_exact(index, model, q, 10)
    assert len(index.search(unit(rng, 1)[0], 1000)[0]) == 500

    # Overwrite: querying with the new vector returns it first with score 1.
    new = unit(rng, 1)[0]
    index.upsert(np.array([1007]), new[None], seq=2)
    model[1007] = new
    got, scores = index.search(new, 3)
    assert got[0] == 1007 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert len(index) == 500 and index.applied_seq == 2
    # Duplicate ids inside one batch: last wins.
    a, b = unit(rng, 2)
    index.upsert(np.array([7, 7]), np.stack([a, b]), seq=3)
    model[7] = b
    assert index.search(b, 1)[0][0] == 7 and len(index) == 501
    for q in unit(rng, 5):
        assert_exact(index, model, q, 7)


def test_remove(tmp_path: Path, rng: np.random.Generator) -> None:
    index = FaissIndex.open(tmp_path, DIM)
    vecs = unit(rng, 100)
    index.upsert(np.arange(100), vecs, seq=1)
    index.remove(np.array([5, 6, 999]), seq=2)  # 999 unknown: ignored
    assert len(index) == 98 and index.applied_seq == 2
    got, _ = index.search(vecs[5], 100)
    assert 5 not in got and 6 not in got and len(got) == 98


def hnsw_index(tmp_path: Path, rng: np.random.Generator, n: int = 2000) -> tuple[FaissIndex, dict]:
    index = FaissIndex.open(tmp_path, DIM, exact_below=50)
    vecs = clustered(rng, n)
    index.upsert(np.arange(n, dtype=np.int64), vecs, seq=1)
    return index, {i: vecs[i] for i in range(n)}


def recall(index: FaissIndex, model: dict, qs: np.ndarray, k: int, allowed: set[int] | None = None) -> float:
    hits = 0
    total = 0
    arr = None if allowed is None else np.array(sorted(allowed), np.int64)
    for q in qs:
        got = set(index.search(q, k, arr)[0].tolist())
        exp = set(brute(model, q, k, allowed))
        if allowed is not None:
            assert got <= allowed
        assert got <= set(model)
        hits += len(got & exp)
        total += len(exp)
    return hits / total


def test_hnsw_mode_remove_overwrite_and_rebuild(tmp_path: Path, rng: np.random.Generator) -> None:
    index, model = hnsw_index(tmp_path, rng)
    st0 = index.stats()
    assert st0["mode"] == "hnsw" and st0["sealed_rows"] == 2000
    assert recall(index, model, clustered(rng, 30), 10) > 0.9

    # Tombstones: removed ids never come back, even queried with their own vector.
    gone = list(range(0, 300))
    gone_vecs = [model.pop(i) for i in gone]
    index.remove(np.array(gone), seq=2)
    assert index.stats()["tombstones"] == 300
    for v in gone_vecs[::10]:
        got, _ = index.search(v, 50)
        assert len(got) == 50 and not set(got.tolist()) & set(gone)

    # Overwrite of a sealed row: new vector is found, old copy never returned twice.
    new = unit(rng, 1)[0]
    index.upsert(np.array([1500]), new[None], seq=3)
    model[1500] = new
    got, scores = index.search(new, 10)
    assert got[0] == 1500 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert len(set(got.tolist())) == len(got)

    # >20% tombstones triggers a compacting rebuild.
    more = list(range(300, 500))
    index.remove(np.array(more), seq=4)
    for i in more:
        del model[i]
    st1 = index.stats()
    assert st1["tombstones"] == 0 and st1["live"] == len(model) and st1["applied_seq"] == 4
    assert recall(index, model, clustered(rng, 30), 10) > 0.9
    got_all, _ = index.search(unit(rng, 1)[0], 2000)
    assert not set(got_all.tolist()) & set(gone + more)


def test_tail_merge_and_drop_back_to_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    index, model = hnsw_index(tmp_path, rng, n=200)
    extra = clustered(rng, 1100)
    for start in range(0, 1100, 100):  # crosses the tail merge size
        ids = np.arange(10_000 + start, 10_000 + start + 100)
        index.upsert(ids, extra[start : start + 100], seq=2 + start)
        model.update({int(i): v for i, v in zip(ids, extra[start : start + 100], strict=True)})
    s = index.stats()
    assert s["sealed_rows"] > 200 and s["tail_rows"] < 1024
    assert recall(index, model, clustered(rng, 20), 10) > 0.9
    # Remove almost everything: falls back to exact (no graph) and stays exact-correct.
    victims = sorted(model)[:-30]
    index.remove(np.array(victims), seq=5000)
    for i in victims:
        del model[i]
    assert index.stats()["mode"] == "exact" and len(index) == 30
    for q in unit(rng, 5):
        assert_exact(index, model, q, 10)


@pytest.mark.parametrize("mode", ["exact", "hnsw"])
def test_filtered_search(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    if mode == "hnsw":
        index, model = hnsw_index(tmp_path, rng)
    else:
        index = FaissIndex.open(tmp_path, DIM)
        vecs = clustered(rng, 2000)
        index.upsert(np.arange(2000), vecs, seq=1)
        model = {i: vecs[i] for i in range(2000)}
    qs = clustered(rng, 20)
    # 45% filter (includes unknown ids, which must be ignored)
    allowed = set(rng.choice(2000, 900, replace=False).tolist()) | {50_000, 50_001}
    r = recall(index, model, qs, 10, allowed)
    assert r == 1.0 if mode == "exact" else r > 0.85
    # 1% filter: the planner goes exact, so the result is exact in both modes.
    small = set(rng.choice(2000, 20, replace=False).tolist())
    for q in qs[:5]:
        assert_exact(index, model, q, 10, small)
    # Duplicated allowed ids never duplicate hits.
    dup = np.repeat(np.array(sorted(small), np.int64), 3)
    got, _ = index.search(qs[0], 10, dup)
    assert len(got) == len(set(got.tolist())) == 10
    # Empty filter → empty result.
    assert len(index.search(qs[0], 10, np.array([], np.int64))[0]) == 0


def test_save_open_roundtrip(tmp_path: Path, rng: np.random.Generator) -> None:
    for exact_below in (50, 20_000):  # with and without a graph
        d = tmp_path / str(exact_below)
        index = FaissIndex.open(d, DIM, exact_below=exact_below)
        vecs = clustered(rng, 1500)
        index.upsert(np.arange(1500), vecs, seq=10)
        index.remove(np.arange(0, 100), seq=11)
        index.upsert(np.array([9000]), vecs[:1], seq=12)  # lands in the tail
        qs = clustered(rng, 10)
        before = [index.search(q, 10) for q in qs]
        before_f = [index.search(q, 10, np.arange(0, 1500, 3)) for q in qs]
        index.save()
        index.save()  # second save with unchanged graph reuses its file
        index.close()
        again = FaissIndex.open(d, DIM, exact_below=exact_below)
        assert again.applied_seq == 12 and len(again) == 1401
        assert again.stats()["mode"] == ("hnsw" if exact_below == 50 else "exact")
        for q, (ids, sc), (fids, _fsc) in zip(qs, before, before_f, strict=True):
            got, gsc = again.search(q, 10)
            np.testing.assert_array_equal(got, ids)
            np.testing.assert_allclose(gsc, sc, atol=1e-6)
            np.testing.assert_array_equal(again.search(q, 10, np.arange(0, 1500, 3))[0], fids)
        # Writes after reopening still work and persist.
        again.remove(np.array([9000]), seq=13)
        again.save()
        names = sorted(p.name for p in d.iterdir())
        assert names.count("manifest.json") == 1 and sum(n.startswith("state-") for n in names) == 1
        third = FaissIndex.open(d, DIM, exact_below=exact_below)
        assert third.applied_seq == 13 and len(third) == 1400


@pytest.mark.parametrize("damage", ["truncate_graph", "flip_state", "bad_manifest", "missing_state", "dim"])
def test_corrupt_directory_opens_empty(tmp_path: Path, rng: np.random.Generator, damage: str) -> None:
    index = FaissIndex.open(tmp_path, DIM, exact_below=50)
    index.upsert(np.arange(300), clustered(rng, 300), seq=7)
    index.upsert(np.array([1000]), unit(rng, 1), seq=8)
    index.save()
    index.close()
    graph = next(tmp_path.glob("graph-*.faiss"))
    state = next(tmp_path.glob("state-*.npz"))
    if damage == "truncate_graph":
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    elif damage == "flip_state":
        raw = bytearray(state.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        state.write_bytes(bytes(raw))
    elif damage == "bad_manifest":
        (tmp_path / "manifest.json").write_text('{"format": 1, "dim":')
    elif damage == "missing_state":
        state.unlink()
    reopened = FaissIndex.open(tmp_path, DIM + 1 if damage == "dim" else DIM, exact_below=50)
    assert reopened.applied_seq == 0 and len(reopened) == 0
    # And it is usable: replay + save over the damaged files.
    reopened.upsert(np.array([1]), unit(rng, 1, reopened.dim), seq=1)
    reopened.save()
    assert FaissIndex.open(tmp_path, reopened.dim).applied_seq == 1


def test_concurrent_search_while_writing(tmp_path: Path, rng: np.random.Generator) -> None:
    index = FaissIndex.open(tmp_path, DIM, exact_below=300)
    base = clustered(rng, 1000)
    index.upsert(np.arange(1000), base, seq=1)
    removed: set[int] = set()  # ids whose remove() has returned
    removed_lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                with removed_lock:
                    gone = set(removed)
                q = base[r.integers(0, 1000)]
                allowed = None if r.random() < 0.5 else r.choice(5000, r.integers(5, 2000), replace=False)
                ids, _ = index.search(q, 20, allowed)
                bad = set(ids.tolist()) & gone
                assert not bad, f"removed ids returned: {bad}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    w = np.random.default_rng(99)
    seq = 2
    next_id = 1000
    for _ in range(150):
        if w.random() < 0.5:
            n = int(w.integers(1, 40))
            index.upsert(np.arange(next_id, next_id + n), clustered(w, n), seq=seq)
            next_id += n
        else:
            live = [i for i in range(next_id) if i not in removed]
            victims = w.choice(live, min(len(live), int(w.integers(1, 40))), replace=False)
            index.remove(victims, seq=seq)
            with removed_lock:
                removed.update(int(v) for v in victims)
        seq += 1
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert index.applied_seq == seq - 1
    assert len(index) == next_id - len(removed)


class IndexMachine(RuleBasedStateMachine):
    """Exact mode vs a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[int, np.ndarray] = {}
        self.seq = 0

    @initialize(data=st.data())
    def setup(self, data: st.DataObject) -> None:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.index = FaissIndex.open(Path(self.tmp.name), 8)
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))

    ids = st.lists(st.integers(0, 40), min_size=0, max_size=6)

    @rule(ids=ids)
    def upsert(self, ids: list[int]) -> None:
        vecs = unit(self.rng, len(ids), 8)
        self.seq += 1
        self.index.upsert(np.array(ids, np.int64), vecs, seq=self.seq)
        for i, v in zip(ids, vecs, strict=True):
            self.model[i] = v

    @rule(ids=ids)
    def remove(self, ids: list[int]) -> None:
        self.seq += 1
        self.index.remove(np.array(ids, np.int64), seq=self.seq)
        for i in ids:
            self.model.pop(i, None)

    @rule(k=st.integers(0, 50), filtered=st.booleans(), fsel=st.lists(st.integers(0, 45), max_size=20))
    def search(self, k: int, filtered: bool, fsel: list[int]) -> None:
        q = unit(self.rng, 1, 8)[0]
        allowed = set(fsel) if filtered else None
        if k == 0:
            assert len(self.index.search(q, 0)[0]) == 0
            return
        assert_exact(self.index, self.model, q, k, allowed)

    @rule()
    def save_and_reopen(self) -> None:
        self.index.save()
        self.index.close()
        self.index = FaissIndex.open(Path(self.tmp.name), 8)

    @invariant()
    def counts(self) -> None:
        if hasattr(self, "index"):
            assert len(self.index) == len(self.model)
            assert self.index.applied_seq == self.seq

    def teardown(self) -> None:
        if hasattr(self, "tmp"):
            self.tmp.cleanup()


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
