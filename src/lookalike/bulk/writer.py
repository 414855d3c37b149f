"""The bulk import's write side: the operator's real database and vector index, built from the same
Settings as the server, written a batch per transaction (ImageRepository.upsert_many).

The index follows SQL's change log as it does for every write: a per-process index (faiss) in each server
catches up on its next search (IndexManager.get sees the newer seq), a shared one (Milvus) is caught up here
after each batch, inside IndexManager.writing, as an add does.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from sqlalchemy import Engine

from lookalike.clock import Clock, SystemClock
from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Instance
from lookalike.service.container import build_billing_services, open_database, vector_backend
from lookalike.service.entitlements import Entitlements
from lookalike.service.picture_analysis import thumbnail_size_for
from lookalike.storage.accounts_repo import InstanceRepository
from lookalike.storage.images_repo import ImageRepository, NewPicture, WriteResult
from lookalike.vectors.manager import IndexManager
from lookalike.vectors.planner import IndexPolicy
from lookalike.vectors.reduction import packaged as packaged_reduction

ACTIVE = "active"


class BulkWriter:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        images: ImageRepository,
        instances: InstanceRepository,
        entitlements: Entitlements,
        indexes: IndexManager | None,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._images = images
        self._instances = instances
        self._entitlements = entitlements
        self._indexes = indexes  # only for a shared backend (Milvus); None: servers catch up themselves
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> BulkWriter:
        clock = clock or SystemClock()
        engine = open_database(settings)
        images = ImageRepository(engine)
        backend = vector_backend(settings, engine)
        indexes = None
        if backend is not None and backend.shared:
            indexes = IndexManager(
                settings.index_dir,
                images,
                packaged_reduction(),
                backend=backend,
                policy=IndexPolicy(exact_below=settings.index_exact_below),
            )
        elif backend is not None:
            backend.close()
        return cls(
            settings=settings,
            engine=engine,
            images=images,
            instances=InstanceRepository(engine),
            entitlements=build_billing_services(settings, engine, clock).entitlements,
            indexes=indexes,
            clock=clock,
        )

    @property
    def model_id(self) -> str:
        """The id of the vectors the workers store (the packaged reduction the server uses)."""
        return packaged_reduction().model_id()

    def instance(self, name: str) -> Instance:
        """The live instance of that name, with its current package; it must be available."""
        found = self._instances.get_by_name(name)
        if found is None:
            raise LookalikeError(e.INVALID_INSTANCE, f"No live instance named {name!r}.")
        instance = self._entitlements.effective(found)
        if instance.status != ACTIVE:
            raise LookalikeError(
                e.INSTANCE_STATUS_ERROR, "Your instance is unavailable: its subscription has expired."
            )
        return instance

    def thumbnail_size(self, instance: Instance) -> int | None:
        """The thumbnail an add would store for this instance (None: none), as ImageService decides."""
        settings = self._settings
        return thumbnail_size_for(
            instance.capacity,
            size=settings.thumbnail_size if settings.thumbnails else None,
            max_capacity=settings.thumbnails_max_capacity,
        )

    def check_capacity(self, instance: Instance, keys: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Refuse (INSTANCE_OVER_QUOTA) before anything is written when the keys the instance does not
        hold yet, added to what it holds, exceed what its package (and any already paid for) allows."""
        capacity = self._entitlements.capacity_for_adds(instance)
        held = self._images.stored_count(instance.id)
        fresh = len(keys) - len(self._images.existing_keys(instance.id, keys))
        if held + fresh > capacity:
            raise LookalikeError(
                e.INSTANCE_OVER_QUOTA,
                f"The number of items exceeds the limit: the instance holds {held} of {capacity} pictures "
                f"and the import would add {fresh}.",
            )
        return {"capacity": capacity, "held": held, "new": fresh}

    def write(self, instance: Instance, pictures: Sequence[NewPicture]) -> list[WriteResult]:
        """One batch, one transaction; a shared index is caught up with it before returning."""
        capacity = self._entitlements.capacity_for_adds(instance)
        writing: Any = self._indexes.writing(instance.id) if self._indexes is not None else nullcontext()
        with writing:
            return self._images.upsert_many(instance.id, pictures, capacity=capacity, now=self._clock.now())

    def close(self) -> None:
        if self._indexes is not None:
            self._indexes.close()
        self._engine.dispose()
