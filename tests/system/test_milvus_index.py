"""MilvusIndex and the Milvus filter compiler against a real Milvus server (scripts/test-servers), plus the
per-search catch-up that lets a per-process (faiss) index see another replica's writes.

The Milvus tests need LOOKALIKE_TEST_MILVUS_URI: without it they skip locally and fail under CI=true. Every
test gets a collection prefix of its own and drops its collections afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine

from imagegen import make_photo
from lookalike.clock import ManualClock
from lookalike.config import Settings
from lookalike.domain.filters import INT_FIELDS, STR_FIELDS, And, Compare, InList, Node, Or, evaluate
from lookalike.domain.models import Attributes, AttributeUpdate
from lookalike.service.container import Services, build_services
from lookalike.service.images import SearchOptions
from lookalike.storage.images_repo import ImageRepository
from lookalike.storage.tables import metadata
from lookalike.vectors import milvus as milvus_module
from lookalike.vectors.milvus import MilvusBackend, MilvusIndex, SharedSeqStore, partition_name
from lookalike.vectors.milvus_filter import compile_filter, quote_string

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DIM = 8


# --- fixtures ---------------------------------------------------------------------------------------------


def require_milvus_uri() -> str:
    uri = os.environ.get("LOOKALIKE_TEST_MILVUS_URI")
    if not uri:
        message = "needs a Milvus server: LOOKALIKE_TEST_MILVUS_URI unset (scripts/test-servers)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return uri


@pytest.fixture(scope="module")
def milvus_uri() -> str:
    return require_milvus_uri()


def _drop_collections(uri: str, prefix: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            if name.startswith(prefix):
                client.drop_collection(name)
    finally:
        client.close()


@pytest.fixture
def prefix(milvus_uri: str) -> Iterator[str]:
    value = f"lkt_{uuid.uuid4().hex[:10]}_"
    yield value
    _drop_collections(milvus_uri, value)


def _sql_engine() -> Engine:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    return engine


@pytest.fixture
def backend(milvus_uri: str, prefix: str) -> Iterator[MilvusBackend]:
    # Strong: these tests read right after writing; the service itself searches at Bounded.
    built = MilvusBackend(milvus_uri, engine=_sql_engine(), collection_prefix=prefix, consistency="Strong")
    yield built
    built.close()


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- the index ---------------------------------------------------------------------------------------------


def test_upsert_search_overwrite_remove(backend: MilvusBackend) -> None:
    index = backend.open("ins-0001", DIM)
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 50)
    index.upsert(np.arange(1, 51), vectors, seq=7)
    assert len(index) == 50
    ids, scores = index.search(vectors[9], 5)
    assert ids[0] == 10 and scores[0] == pytest.approx(1.0, abs=1e-4)
    assert list(scores) == sorted(scores, reverse=True)
    # Overwrite by primary key: id 10 now points the other way.
    index.upsert(np.array([10]), -vectors[9:10], seq=8)
    assert 10 not in index.search(vectors[9], 5)[0]
    assert len(index) == 50
    index.remove(np.array([1, 2, 3]), seq=9)
    assert 1 not in index.search(vectors[0], 50)[0]
    assert len(index) == 47
    # Writers never move the shared watermark (only IndexManager's catch-up does).
    assert index.applied_seq == 0


def test_search_many_answers_like_one_search_per_query(backend: MilvusBackend) -> None:
    index = backend.open("ins-0003", DIM)
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 60)
    index.upsert(np.arange(1, 61), vectors, seq=1)
    many = index.search_many(vectors[:5], 4)
    assert [int(ids[0]) for ids in many] == [1, 2, 3, 4, 5]  # each finds itself first
    for q, ids in zip(vectors[:5], many, strict=True):
        assert list(ids) == list(index.search(q, 4)[0])


def test_allowed_ids_are_exact_even_above_one_id_list(backend: MilvusBackend) -> None:
    index = backend.open("ins-0002", DIM)
    rng = np.random.default_rng(2)
    n = 5000  # more than ID_LIST_LIMIT, so the ids travel in two `id in [...]` chunks
    vectors = _unit(rng, n)
    index.upsert(np.arange(1, n + 1), vectors, seq=1)
    query = vectors[0]
    allowed = np.arange(2, n + 1, 2)  # the even ids
    ids, _ = index.search(query, 10, allowed)
    exact = allowed[np.argsort(-(vectors[allowed - 1] @ query))[:10]]
    assert list(ids) == list(exact)
    assert index.search(query, 3, np.array([7]))[0].tolist() == [7]
    assert index.search(query, 3, np.array([], np.int64))[0].tolist() == []


def test_partitions_isolate_instances_and_drop(backend: MilvusBackend) -> None:
    a, b = backend.open("ins-aaaa", DIM), backend.open("ins-bbbb", DIM)
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 4)
    a.upsert(np.array([1, 2]), vectors[:2], seq=1)
    b.upsert(np.array([3, 4]), vectors[2:], seq=1)
    assert set(a.search(vectors[2], 10)[0].tolist()) == {1, 2}
    assert set(b.search(vectors[0], 10)[0].tolist()) == {3, 4}
    a.applied_seq = 5
    backend.drop("ins-aaaa", DIM)
    assert a.applied_seq == 0  # the watermark went with the partition
    assert not backend.client.has_partition(backend.collection_name(DIM), partition_name("ins-aaaa"))
    assert len(backend.open("ins-aaaa", DIM)) == 0
    assert len(b) == 2


def test_partition_names_are_valid_and_distinct() -> None:
    names = {partition_name(i) for i in ("ins-0a1b", "ins_0a1b", "ins-0a-1b", "x" * 300, "é")}
    assert len(names) == 5
    assert all(n.replace("_", "").isalnum() and n.isascii() and len(n) <= 255 for n in names)


def test_shared_watermark_only_moves_forward() -> None:
    seqs = SharedSeqStore(_sql_engine(), "milvus:" + "x" * 80)
    assert len(seqs.backend) <= 64
    assert seqs.get("ins-1") == 0
    seqs.advance("ins-1", 10)
    seqs.advance("ins-1", 4)  # a slower replica's older value loses
    assert seqs.get("ins-1") == 10
    seqs.advance("ins-1", 12)
    assert seqs.get("ins-1") == 12
    assert seqs.get("ins-2") == 0
    seqs.forget("ins-1")
    assert seqs.get("ins-1") == 0


# --- filters: compiled, run inside Milvus, compared with the Python reference ---------------------------

FIELDS = sorted(INT_FIELDS) + sorted(STR_FIELDS)
small_ints = st.one_of(st.integers(-3, 3), st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MAX]))
# Quotes, backslashes, a raw newline and other controls, non-ASCII and astral text: the escaping cases.
small_strs = st.sampled_from(
    ["", "a", "A", "a ", "红色 T恤", 'x"y', "\\", '\\"', "a\nb", "\t\x01", "é", "😀"]
)
int_fields = st.sampled_from(sorted(INT_FIELDS))
str_fields = st.sampled_from(sorted(STR_FIELDS))
leaves: st.SearchStrategy[Node] = st.one_of(
    st.builds(Compare, int_fields, st.sampled_from([">", ">=", "<", "<=", "=", "!="]), small_ints),
    st.builds(Compare, str_fields, st.sampled_from(["=", "!="]), small_strs),
    st.builds(InList, int_fields, st.lists(small_ints, min_size=1, max_size=4).map(tuple), st.booleans()),
    st.builds(InList, str_fields, st.lists(small_strs, min_size=1, max_size=4).map(tuple), st.booleans()),
)


def _branches(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(And, items), st.builds(Or, items))


trees: st.SearchStrategy[Node] = st.recursive(leaves, _branches, max_leaves=6)


def _records(n: int, seed: int) -> list[dict[str, Any]]:
    """Fixed records whose values come from the same pools as the filters, so filters do match some."""
    rng = np.random.default_rng(seed)
    ints = [-3, -1, 0, 1, 2, 3, INT64_MIN, INT64_MIN + 1, INT64_MAX]
    strs = ["", "a", "A", "a ", "红色 T恤", 'x"y', "\\", '\\"', "a\nb", "\t\x01", "é", "😀"]
    return [
        {name: ints[rng.integers(len(ints))] for name in sorted(INT_FIELDS)}
        | {name: strs[rng.integers(len(strs))] for name in sorted(STR_FIELDS)}
        | {"category_id": int(rng.integers(3))}
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def filter_collection(milvus_uri: str) -> Iterator[tuple[MilvusIndex, list[dict[str, Any]]]]:
    prefix = f"lkt_{uuid.uuid4().hex[:10]}_"
    backend = MilvusBackend(milvus_uri, engine=_sql_engine(), collection_prefix=prefix, consistency="Strong")
    try:
        index = backend.open("ins-filters", DIM)
        rows = _records(120, seed=5)
        index.upsert_records(np.arange(1, len(rows) + 1), _unit(np.random.default_rng(5), len(rows)), rows)
        assert len(index) == len(rows)  # a Strong read: everything is visible from here on
        yield index, rows
    finally:
        backend.close()
        _drop_collections(milvus_uri, prefix)


def _milvus_ids(index: MilvusIndex, expr: str) -> set[int]:
    # Eventually is enough (and skips Strong's ~200 ms wait): the fixture's Strong read saw every row.
    found = index._client.query(
        index.collection,
        filter=expr,
        output_fields=["id"],
        partition_names=[index.partition],
        consistency_level="Eventually",
    )
    return {int(r["id"]) for r in found}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=trees)
def test_compiled_filters_agree_with_the_reference(
    filter_collection: tuple[MilvusIndex, list[dict[str, Any]]], node: Node
) -> None:
    index, rows = filter_collection
    expected = {i + 1 for i, r in enumerate(rows) if evaluate(node, r)}
    assert _milvus_ids(index, compile_filter(node)) == expected


def test_search_filtered_with_category(filter_collection: tuple[MilvusIndex, list[dict[str, Any]]]) -> None:
    index, rows = filter_collection
    node = Or((Compare("int_attr", ">=", 0), InList("str_attr2", ('x"y', "\\", "a\nb"))))
    expected = {i + 1 for i, r in enumerate(rows) if evaluate(node, r) and r["category_id"] == 1}
    query = np.ones(DIM, np.float32) / np.sqrt(DIM)
    ids, _ = index.search_filtered(query, len(rows), node, 1)
    assert set(ids.tolist()) == expected
    assert set(index.search_filtered(query, len(rows), None, 2)[0].tolist()) == {
        i + 1 for i, r in enumerate(rows) if r["category_id"] == 2
    }


def test_quote_string_escapes() -> None:
    assert quote_string('a"b\\c') == '"a\\"b\\\\c"'
    assert quote_string("x\ny") == '"x\\u000ay"'
    assert quote_string("红") == '"红"'
    assert compile_filter(Compare("int_attr", "=", INT64_MIN)) == "int_attr < -9223372036854775807"
    assert compile_filter(InList("int_attr", (1, INT64_MIN), negated=True)) == (
        "(int_attr not in [1] and int_attr >= -9223372036854775807)"
    )


# --- the service on Milvus -------------------------------------------------------------------------------


def _milvus_settings(settings_: Settings, uri: str, prefix: str) -> Settings:
    # Session: this process reads its own writes (the default, Bounded, may lag them by up to ~5 s).
    return dataclasses.replace(
        settings_,
        vector_backend="milvus",
        milvus_uri=uri,
        milvus_collection_prefix=prefix,
        milvus_consistency="Session",
    )


@pytest.fixture
def milvus_services(
    settings: Settings, clock: ManualClock, milvus_uri: str, prefix: str
) -> Iterator[Services]:
    built = build_services(_milvus_settings(settings, milvus_uri, prefix), clock=clock, background=False)
    yield built
    built.close()


def _tenant(services: Services) -> Any:
    from conftest import make_tenant

    return make_tenant(services, "acme", "shop")


def _add(services: Services, account: Any, name: str, seed: int, **attrs: Any) -> None:
    services.images.add_image(
        account,
        "shop",
        product_id=f"p-{name}",
        pic_name=name,
        picture=make_photo(160, 120, seed=seed),
        category_id=0,
        attributes=Attributes(**attrs),
    )


def _names(result: Any) -> list[str]:
    return [hit.record.pic_name for hit in result.hits]


def test_service_never_returns_a_deleted_picture(milvus_services: Services) -> None:
    services = milvus_services
    tenant = _tenant(services)
    for seed in range(4):
        _add(services, tenant.account, f"pic{seed}", seed)
    search = services.images.search_by_name
    first = search(tenant.account, "shop", "p-pic0", "pic0", SearchOptions(num=10))
    assert set(_names(first)) == {"pic0", "pic1", "pic2", "pic3"}
    # Deleted through the service: gone from results at once, whatever Milvus shows at Bounded.
    services.images.delete_images(tenant.account, "shop", product_id="p-pic1")
    assert "pic1" not in _names(search(tenant.account, "shop", "p-pic0", "pic0", SearchOptions(num=10)))
    # Deleted in SQL only (as if the Milvus delete were lost or not yet visible): Milvus still answers
    # with it, the service still never shows it.
    repo = ImageRepository(services.engine)
    doomed = repo.get(tenant.instance.id, "p-pic2", "pic2")
    assert doomed is not None
    repo.delete(tenant.instance.id, product_id="p-pic2")
    index = services.indexes.get(tenant.instance.id)
    vector = repo.get_embedding(tenant.instance.id, "p-pic0", "pic0")
    assert vector is not None
    assert doomed.id in index.search(vector, 10)[0].tolist()
    assert _names(search(tenant.account, "shop", "p-pic0", "pic0", SearchOptions(num=10))) == ["pic0", "pic3"]


def test_service_filters_run_inside_milvus(
    milvus_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = milvus_services
    tenant = _tenant(services)
    for seed in range(6):
        _add(
            services,
            tenant.account,
            f"pic{seed}",
            seed,
            int_attr=seed,
            str_attr="even" if seed % 2 else "odd",
        )
    search = services.images.search_by_name

    def names(filter_text: str) -> set[str]:
        return set(
            _names(search(tenant.account, "shop", "p-pic0", "pic0", SearchOptions(filter=filter_text)))
        )

    assert names('str_attr = "odd"') == {"pic0", "pic2", "pic4"}  # a small set: sent as `id in [...]`
    # Every match set counts as large, so the filter is compiled and evaluated by Milvus.
    monkeypatch.setattr(milvus_module, "ID_LIST_SEARCH_MAX", 0)
    assert names('str_attr = "odd"') == {"pic0", "pic2", "pic4"}
    assert names('int_attr >= 2 AND int_attr < 5 AND str_attr != "odd"') == {"pic3"}
    # An attribute update reaches Milvus' copy (through the change log), so the filter finds it there.
    services.images.update_image(
        tenant.account, "shop", product_id="p-pic5", pic_name="pic5", change=AttributeUpdate(str_attr="odd")
    )
    index = services.indexes.get(tenant.instance.id)
    record = services.images.check_exists(tenant.account, "shop", "p-pic5", "pic5")
    assert record is not None
    copy = index._client.query(  # type: ignore[attr-defined]
        index.collection,  # type: ignore[attr-defined]
        ids=[record.id],
        output_fields=["str_attr"],
        consistency_level="Strong",
    )
    assert copy[0]["str_attr"] == "odd"
    assert names('str_attr = "odd"') == {"pic0", "pic2", "pic4", "pic5"}


def test_catch_up_after_a_crash(settings: Settings, clock: ManualClock, milvus_uri: str, prefix: str) -> None:
    config = _milvus_settings(settings, milvus_uri, prefix)
    first = build_services(config, clock=clock, background=False)
    tenant = _tenant(first)
    _add(first, tenant.account, "kept", 1)
    _add(first, tenant.account, "gone", 2)
    _add(first, tenant.account, "late", 3)
    index = first.indexes.get(tenant.instance.id)
    watermark = index.applied_seq
    # The "crash": writes that committed in SQL but never reached Milvus (the replica died in between).
    repo = ImageRepository(first.engine)
    repo.delete(tenant.instance.id, product_id="p-gone")
    late = repo.get(tenant.instance.id, "p-late", "late")
    assert late is not None
    repo.update_attributes(tenant.instance.id, "p-late", "late", AttributeUpdate(int_attr=42), clock.now())
    first.close()

    second = build_services(config, clock=clock, background=False)  # a fresh process, same SQL + Milvus
    try:
        index = second.indexes.get(tenant.instance.id)
        assert index.applied_seq > watermark
        assert index.applied_seq == ImageRepository(second.engine).last_seq(tenant.instance.id)
        copy = index._client.query(  # type: ignore[attr-defined]
            index.collection,  # type: ignore[attr-defined]
            filter="int_attr == 42",
            output_fields=["id"],
            consistency_level="Strong",
        )
        assert [int(r["id"]) for r in copy] == [late.id]
        assert len(index) == 2  # the delete was replayed too
        result = second.images.search_by_name(tenant.account, "shop", "p-kept", "kept", SearchOptions(num=10))
        assert sorted(_names(result)) == ["kept", "late"]
    finally:
        second.close()


# --- per-process (faiss) replicas sharing one database ----------------------------------------------------


def test_faiss_replica_sees_the_other_replicas_writes(
    settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    from lookalike.storage.db import sqlite_url

    a_settings = settings
    database_url = settings.database_url or sqlite_url(settings.data_dir)
    a = build_services(a_settings, clock=clock, background=False)
    b = build_services(
        dataclasses.replace(settings, data_dir=tmp_path / "replica-b", database_url=database_url),
        clock=clock,
        background=False,
    )
    try:
        tenant = _tenant(a)
        _add(a, tenant.account, "one", 1)
        search_b = b.images.search_by_name
        assert _names(search_b(tenant.account, "shop", "p-one", "one", SearchOptions(num=10))) == ["one"]
        _add(a, tenant.account, "two", 2)
        assert sorted(_names(search_b(tenant.account, "shop", "p-one", "one", SearchOptions(num=10)))) == [
            "one",
            "two",
        ]
        a.images.delete_images(tenant.account, "shop", product_id="p-two")
        assert _names(search_b(tenant.account, "shop", "p-one", "one", SearchOptions(num=10))) == ["one"]
        assert len(b.indexes.get(tenant.instance.id)) == 1  # caught up, not just filtered by hydration
    finally:
        b.close()
        a.close()


def test_require_milvus_uri_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOKALIKE_TEST_MILVUS_URI", raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_milvus_uri()
    assert os.environ["CI"] == "true"
