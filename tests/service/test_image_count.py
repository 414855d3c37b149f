"""The per-instance picture counter: every write keeps it equal to the rows, so capacity checks stay O(1).

Runs on SQLite and (scripts/test's second pass) PostgreSQL. The racing tests also pin the SQLite fix that
came with it: an add reads (key, count) before it writes, and a deferred transaction that another add
overtook between its read and its write failed at once with "database is locked" (a 500 at 4 clients).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from alembic import command
from sqlalchemy import func, select

from conftest import grant_instance, make_tenant
from lookalike.clock import ManualClock
from lookalike.domain.errors import INSTANCE_OVER_QUOTA, LookalikeError
from lookalike.domain.filters import parse_filter
from lookalike.domain.models import Attributes
from lookalike.service.container import Services
from lookalike.storage.db import alembic_config, migrate
from lookalike.storage.images_repo import ImageRepository, NewImage
from lookalike.storage.tables import images

NOW = datetime(2027, 1, 1, tzinfo=UTC)


def picture(product: str, name: str, int_attr: int = 0) -> NewImage:
    vector = np.random.default_rng(abs(hash((product, name))) % 2**32).standard_normal(256)
    return NewImage(
        product_id=product,
        pic_name=name,
        category_id=0,
        attributes=Attributes(int_attr=int_attr),
        custom_content="",
        region="",
        embedding=(vector / np.linalg.norm(vector)).astype(np.float32),
        model_id="test-model",
    )


def rows(services: Services, instance_id: str) -> int:
    with services.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(images).where(images.c.instance_id == instance_id)
            ).scalar_one()
        )


def assert_counter_true(services: Services, repo: ImageRepository, instance_id: str, expected: int) -> None:
    assert rows(services, instance_id) == expected
    assert repo.stored_count(instance_id) == expected
    assert repo.count(instance_id) == expected
    assert services.instances_repo.count_images(instance_id) == expected


def test_counter_follows_add_overwrite_and_every_kind_of_delete(services: Services) -> None:
    tenant = make_tenant(services, "acme", "shop")
    other = make_tenant(services, "globex", "theirs")
    repo = ImageRepository(services.engine)
    iid = tenant.instance.id
    assert_counter_true(services, repo, iid, 0)
    for i in range(10):
        assert repo.upsert(iid, picture(f"p{i % 3}", f"n{i}", int_attr=i), capacity=100, now=NOW).created
    repo.upsert(other.instance.id, picture("x", "y"), capacity=100, now=NOW)
    assert_counter_true(services, repo, iid, 10)
    assert not repo.upsert(iid, picture("p0", "n0"), capacity=100, now=NOW).created  # overwrite
    assert_counter_true(services, repo, iid, 10)
    assert len(repo.delete(iid, product_id="p1", pic_name="n1").image_ids) == 1
    assert_counter_true(services, repo, iid, 9)
    assert len(repo.delete(iid, product_id="p2").image_ids) == 3  # n2, n5, n8
    assert_counter_true(services, repo, iid, 6)
    assert len(repo.delete(iid, filter_node=parse_filter("int_attr>=6")).image_ids) == 3  # n6, n7, n9
    assert_counter_true(services, repo, iid, 3)
    assert repo.delete(iid, product_id="nobody").image_ids == []
    assert_counter_true(services, repo, iid, 3)
    # A filtered count still counts rows.
    assert repo.count(iid, parse_filter("int_attr<=3")) == 2  # n0 and n3 (n4 has 4)
    repo.delete_instance_data(iid)
    assert_counter_true(services, repo, iid, 0)
    assert_counter_true(services, repo, other.instance.id, 1)  # the other tenant's count is untouched


def test_capacity_counts_the_counter_and_deletes_free_room(services: Services) -> None:
    tenant = make_tenant(services, "acme", "shop")
    repo = ImageRepository(services.engine)
    iid = tenant.instance.id
    for i in range(3):
        repo.upsert(iid, picture("p", f"n{i}"), capacity=3, now=NOW)
    with pytest.raises(LookalikeError) as err:
        repo.upsert(iid, picture("p", "n3"), capacity=3, now=NOW)
    assert err.value.code == INSTANCE_OVER_QUOTA
    repo.upsert(iid, picture("p", "n0"), capacity=3, now=NOW)  # an overwrite at full capacity
    repo.delete(iid, product_id="p", pic_name="n2")
    assert repo.upsert(iid, picture("p", "n3"), capacity=3, now=NOW).created
    assert_counter_true(services, repo, iid, 3)


def test_release_zeroes_the_counter(services: Services, clock: ManualClock) -> None:
    tenant = make_tenant(services, "acme", "shop")
    short = grant_instance(services, tenant.account.id, "brief", capacity=100, qps=5)
    repo = ImageRepository(services.engine)
    for i in range(4):
        repo.upsert(short.id, picture("p", f"n{i}"), capacity=100, now=NOW)
    clock.advance(timedelta(days=400))
    services.lifecycle.sweep()
    services.lifecycle.sweep()
    assert services.instances_repo.get(short.id).status == "released"  # type: ignore[union-attr]
    assert_counter_true(services, repo, short.id, 0)


def test_racing_adds_and_deletes_never_pass_capacity_nor_fail(services: Services) -> None:
    capacity, racers, per_racer = 20, 8, 6  # 48 distinct pictures race for 20 places
    tenant = make_tenant(services, "acme", "shop")
    repo = ImageRepository(services.engine)
    iid = tenant.instance.id
    barrier = threading.Barrier(racers)
    created: list[int] = []
    refused: list[int] = []
    crashes: list[BaseException] = []

    def run(racer: int) -> None:
        barrier.wait()
        for j in range(per_racer):
            try:
                if repo.upsert(iid, picture(f"r{racer}", f"n{j}"), capacity=capacity, now=NOW).created:
                    created.append(1)
            except LookalikeError as err:
                assert err.code == INSTANCE_OVER_QUOTA
                refused.append(1)
            except BaseException as exc:  # "database is locked" and the like: a 500 in production
                crashes.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not crashes, crashes
    assert (len(created), len(refused)) == (capacity, racers * per_racer - capacity)
    assert_counter_true(services, repo, iid, capacity)

    # Deletes racing adds: every call succeeds and the counter still equals the rows.
    barrier = threading.Barrier(racers)

    def churn(racer: int) -> None:
        barrier.wait()
        try:
            for j in range(per_racer):
                if racer % 2:
                    repo.delete(iid, product_id=f"r{racer - 1}", pic_name=f"n{j}")
                else:
                    repo.upsert(iid, picture(f"s{racer}", f"n{j}"), capacity=10_000, now=NOW)
        except BaseException as exc:
            crashes.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not crashes, crashes
    assert_counter_true(services, repo, iid, rows(services, iid))


def test_migration_backfills_the_counter_from_existing_rows(services: Services) -> None:
    tenant = make_tenant(services, "acme", "shop")
    repo = ImageRepository(services.engine)
    iid = tenant.instance.id
    for i in range(5):
        repo.upsert(iid, picture("p", f"n{i}"), capacity=100, now=NOW)
    cfg = alembic_config(services.engine)
    with services.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0006_reduced_vectors")  # a database from before the counter
    services.engine.dispose()  # pooled connections cached the old table layout (SQLite)
    migrate(services.engine)
    assert_counter_true(services, repo, iid, 5)


def test_recount_repairs_a_counter_after_a_bulk_load(services: Services) -> None:
    tenant = make_tenant(services, "acme", "shop")
    repo = ImageRepository(services.engine)
    iid = tenant.instance.id
    repo.upsert(iid, picture("p", "n0"), capacity=100, now=NOW)
    with services.engine.begin() as conn:  # rows written around the repository, as bench fills do
        conn.execute(
            images.insert(),
            [
                dict(
                    instance_id=iid,
                    product_id="bulk",
                    pic_name=f"b{i}",
                    category_id=0,
                    region="",
                    embedding=b"\0\0" * 256,
                    model_id="test-model",
                    seq=0,
                    created_at=NOW,
                    updated_at=NOW,
                )
                for i in range(7)
            ],
        )
    assert repo.stored_count(iid) == 1
    assert repo.recount(iid) == 8
    assert_counter_true(services, repo, iid, 8)
