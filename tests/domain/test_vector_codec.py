"""The pure parts of the vector package: the stored encoding, the reduction and the planner (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lookalike.domain import vector_codec as codec
from lookalike.vectors.planner import (
    IndexPolicy,
    Mode,
    needs_compaction,
    needs_training,
    nlist_for,
    nprobe_for,
    plan_search,
    train_sample_size,
)
from lookalike.vectors.reduction import packaged
from lookalike.vision.embedder import EfficientNetEmbedder

finite = st.floats(-60000, 60000, allow_nan=False, width=32)


@given(arrays(np.float32, st.integers(1, 300), elements=finite))
def test_encode_decode_round_trip_is_within_float16_precision(v: np.ndarray) -> None:
    blob = codec.encode(v)
    assert len(blob) == 2 * len(v)
    back = codec.decode(blob, len(v))
    assert back.dtype == np.float32 and back.shape == v.shape
    # float16 rounds to 11 significant bits; subnormals below 2^-14 keep an absolute error of 2^-25.
    assert np.all(np.abs(back - v) <= np.maximum(np.abs(v) * 2.0**-11, 2.0**-24))
    assert codec.encode(back) == blob  # decoding then encoding is exact


@given(arrays(np.float32, st.integers(2, 256), elements=st.floats(-1, 1, width=32)))
def test_unit_vector_scores_itself_about_one(v: np.ndarray) -> None:
    norm = float(np.linalg.norm(v))
    if norm < 1e-3:
        return
    u = v / norm
    assert float(codec.decode(codec.encode(u), len(u)) @ u) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e6])
def test_encode_refuses_what_float16_cannot_hold(bad: float) -> None:
    with pytest.raises(ValueError):
        codec.encode(np.array([0.5, bad], np.float32))
    with pytest.raises(ValueError):
        codec.to_stored(np.array([[0.5, bad]], np.float32))


def test_decode_refuses_a_blob_of_the_wrong_length() -> None:
    with pytest.raises(ValueError):
        codec.decode(b"\x00" * 10, 4)
    many = codec.decode_many([codec.encode(np.ones(3)), codec.encode(np.zeros(3))], 3)
    assert many.shape == (2, 3) and many[0, 0] == 1.0


def test_packaged_reduction_fits_the_model() -> None:
    reduction = packaged()
    assert reduction.source_model == EfficientNetEmbedder.MODEL_ID
    assert reduction.dim_in == EfficientNetEmbedder.DIM and reduction.dim_out <= 256
    assert reduction.id in reduction.model_id() and len(reduction.model_id()) <= 64  # the SQL column


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, (3, 1280), elements=st.floats(0, 6, width=32)))
def test_reduce_gives_unit_vectors_and_is_row_wise(x: np.ndarray) -> None:
    reduction = packaged()
    r = reduction.reduce(x)
    assert r.shape == (3, reduction.dim_out) and r.dtype == np.float32
    norms = np.linalg.norm(r, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0))
    np.testing.assert_allclose(reduction.reduce(x[1]), r[1], atol=1e-5)
    with pytest.raises(ValueError):
        reduction.reduce(np.ones(7, np.float32))


POLICY = IndexPolicy()


@given(st.integers(0, 10**9))
def test_nlist_is_a_power_of_two_near_sqrt_n(n: int) -> None:
    nlist = nlist_for(n, POLICY)
    assert 16 <= nlist <= 65536 and nlist & (nlist - 1) == 0
    if 16**2 * 2 <= n <= 65536**2 // 2:
        assert nlist / 2**0.5 <= n**0.5 * POLICY.nlist_per_sqrt <= nlist * 2**0.5 + 1e-9
    assert train_sample_size(nlist, n) <= max(n, 0) and train_sample_size(nlist, n) <= 64 * nlist


@given(st.sampled_from([16, 256, 4096, 65536]), st.floats(1e-6, 1.0), st.floats(1e-6, 1.0))
def test_nprobe_grows_as_the_filter_narrows(nlist: int, a: float, b: float) -> None:
    wide, narrow = max(a, b), min(a, b)
    assert 1 <= nprobe_for(nlist, wide, POLICY) <= nprobe_for(nlist, narrow, POLICY) <= nlist
    assert nprobe_for(nlist, narrow, POLICY) <= 8 * nprobe_for(nlist, 1.0, POLICY)


@given(
    live=st.integers(0, 10**8),
    allowed=st.one_of(st.none(), st.integers(0, 10**8)),
    k=st.integers(1, 600),
    trained=st.one_of(st.none(), st.sampled_from([16, 1024, 8192])),
)
def test_plan_switches_at_the_configured_sizes(
    live: int, allowed: int | None, k: int, trained: int | None
) -> None:
    if allowed is not None:
        allowed = min(allowed, live)
    plan = plan_search(live, allowed, k, trained_nlist=trained, policy=POLICY)
    ann_possible = trained is not None and live >= POLICY.exact_below
    selective = allowed is not None and allowed <= POLICY.exact_filtered_max
    assert (plan.mode is Mode.ANN) == (ann_possible and not selective)
    if plan.mode is Mode.ANN:
        assert trained is not None and 1 <= plan.nprobe <= trained and plan.shortlist >= max(k, 100)


def test_plan_boundaries_exactly() -> None:
    p = IndexPolicy(exact_below=1000, exact_filtered_max=50)
    assert plan_search(999, None, 10, trained_nlist=64, policy=p).mode is Mode.EXACT
    assert plan_search(1000, None, 10, trained_nlist=64, policy=p).mode is Mode.ANN
    assert plan_search(1000, None, 10, trained_nlist=None, policy=p).mode is Mode.EXACT
    assert plan_search(5000, 50, 10, trained_nlist=64, policy=p).mode is Mode.EXACT
    assert plan_search(5000, 51, 10, trained_nlist=64, policy=p).mode is Mode.ANN


@given(st.integers(0, 10**8), st.one_of(st.none(), st.integers(1, 10**8)))
def test_training_and_compaction_triggers(live: int, trained_n: int | None) -> None:
    need = needs_training(live, trained_n, POLICY)
    if trained_n is None:
        assert need == (live >= POLICY.exact_below)
    else:
        assert need == (live > POLICY.retrain_growth * trained_n)
    assert not needs_compaction(live, 0, POLICY)
    assert needs_compaction(100, 26, POLICY) and not needs_compaction(100, 25, POLICY)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        IndexPolicy(exact_below=0)
    with pytest.raises(ValueError):
        IndexPolicy(retrain_growth=1.0)
