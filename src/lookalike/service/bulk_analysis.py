"""The port through which IncreaseInstance tasks hand the analysis of their pictures (decode, embed, local
features, thumbnail: what an add stores) to a bulk engine on other machines, and how the server picks one.

TaskService never imports the engine: it is given a ``BulkAnalysisEngine`` (or none). The only one today is
the Ray cluster of ``lookalike import --engine ray`` (lookalike.bulk.ray_analysis, the optional [ray]
extra); the entry point that builds the services passes its ``EngineConnector`` in, since the service layer
may not import lookalike.bulk. Without an engine an IncreaseInstance task adds picture by picture on this
server, as it always did (ImageService.add_image).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from lookalike.config import Settings
from lookalike.domain.errors import LookalikeError
from lookalike.domain.image_limits import ImageLimits
from lookalike.domain.models import Attributes, ServiceType
from lookalike.storage.images_repo import NewPicture

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PictureJob:
    """One picture to analyse: where its file is (a path every engine node can read) and its add's options.
    The add's own validation (key, attributes, CustomContent, CategoryId) is done before it is sent."""

    key: str  # the caller's handle for the result (a task: its line number); unique within one call
    path: str
    product_id: str
    pic_name: str
    category_id: int | None
    crop: bool
    region: str | None
    attributes: Attributes
    custom_content: str


@dataclass(frozen=True)
class StorageOptions:
    """What the instance and the server's settings decide about what an add stores."""

    service_type: ServiceType
    thumbnail_size: int | None  # None: no thumbnail
    model_id: str  # the id of the stored vectors (the server's packaged reduction)
    limits: ImageLimits
    with_keypoints: bool  # the local features of copy verification


@dataclass(frozen=True)
class Analysed:
    """A job's outcome: the rows an add would write, or the error an add would have answered."""

    key: str
    picture: NewPicture | None
    error: LookalikeError | None


class BulkAnalysisEngine(Protocol):
    @property
    def description(self) -> str:
        """Where the analysis runs, for the start-up log ("the Ray cluster at 10.0.0.5:6379 (8 CPUs)")."""
        ...

    @property
    def jobs_at_once(self) -> int:
        """How many pictures one ``analyse`` call should get to keep the whole engine busy."""
        ...

    def analyse(self, jobs: Sequence[PictureJob], options: StorageOptions) -> Iterator[list[Analysed]]:
        """Every job's outcome, in batches, in the jobs' order. A picture's own failure is its Analysed
        error; an exception means the engine itself failed (nothing of the unread batches is known)."""
        ...

    def close(self) -> None: ...


class EngineUnavailable(Exception):
    """The configured engine cannot be used now (not installed, unreachable); the message says why."""


# Connects to the engine the settings name; raises EngineUnavailable.
EngineConnector = Callable[[Settings], BulkAnalysisEngine]


@dataclass(frozen=True)
class EngineChoice:
    engine: BulkAnalysisEngine | None  # None: IncreaseInstance tasks analyse on this server
    note: str  # where they run and why, as the start-up log line says it


def choose_increase_engine(settings: Settings, connect: EngineConnector | None) -> EngineChoice:
    """The engine IncreaseInstance tasks use, said in one log line. An operator who set ``ray_address``
    but whose cluster is away (or Ray not installed) still gets a working server: tasks then run here,
    slower, as without the setting; the log line says so (a warning)."""
    address = settings.ray_address
    if not address:
        return EngineChoice(None, "on this server (ray_address is not set)")
    if connect is None:
        choice = EngineChoice(
            None, f"on this server: ray_address = {address} is set but this entry point has no Ray engine"
        )
    else:
        try:
            engine = connect(settings)
        except EngineUnavailable as exc:
            choice = EngineChoice(None, f"on this server: the Ray cluster at {address} is unavailable: {exc}")
        else:
            choice = EngineChoice(engine, f"on {engine.description}")
            log.info("IncreaseInstance tasks analyse their pictures %s", choice.note)
            return choice
    log.warning("IncreaseInstance tasks analyse their pictures %s", choice.note)
    return choice
