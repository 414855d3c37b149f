"""What the metrics read about the indexes at each scrape (IndexManager.status), at each stage of an index."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import make_tenant
from index_writer import POLICY, write
from lookalike.observability.collectors import IndexCollector
from lookalike.service.container import Services
from lookalike.storage.images_repo import ImageRepository
from lookalike.vectors.local_index import LocalIndex
from lookalike.vectors.manager import IndexManager, IndexStatus
from lookalike.vectors.reduction import packaged


def gauges(manager: IndexManager) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(IndexCollector(manager))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_status_follows_an_index_from_exact_to_ivf_and_through_a_save(
    services: Services, tmp_path: Path
) -> None:
    instance_id = make_tenant(services, "statusco", "status").instance.id
    repo = ImageRepository(services.engine)
    manager = IndexManager(tmp_path / "idx", repo, packaged(), policy=POLICY)
    assert manager.status() == []  # nothing opened yet: nothing is read from disk or SQL for it
    for n in range(20):
        write(repo, manager, instance_id, n)
    assert manager.status() == [IndexStatus(instance_id, 20, "exact", False, True)]
    manager.save_dirty()
    assert manager.status()[0].unsaved is False
    for n in range(20, 80):  # past POLICY.exact_below: the index trains its IVF lists
        write(repo, manager, instance_id, n)
    index = manager.get(instance_id)
    assert isinstance(index, LocalIndex)
    index.wait_for_maintenance(timeout=60)
    (status,) = manager.status()
    assert (status.vectors, status.mode, status.rebuilding, status.unsaved) == (80, "ivf", False, True)
    found = gauges(manager)
    labels = (("instance_id", instance_id),)
    assert found[("lookalike_index_vectors", labels)] == 80
    assert found[("lookalike_index_mode", (("instance_id", instance_id), ("mode", "ivf")))] == 1
    assert found[("lookalike_index_mode", (("instance_id", instance_id), ("mode", "exact")))] == 0
    assert found[("lookalike_index_unsaved", labels)] == 1
    assert found[("lookalike_indexes_open", ())] == 1
    manager.drop(instance_id)
    assert manager.status() == []
    manager.close()
