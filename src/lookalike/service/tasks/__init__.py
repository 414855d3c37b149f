"""Tasks: exports (DumpMeta), batches (IncreaseInstance) and duplicate reports, run in the background.

`task_service.TaskService` queues them and runs their slices; `dump`, `increase` (with `meta_items` and
`buckets`) run the two Alibaba kinds; `links` signs the links to their files; `callbacks` calls a batch's
CallbackAddress. The names below are the package's face for the API layer and the compatibility tests."""

from lookalike.service.tasks.buckets import META_FILE, resolve_in_bucket
from lookalike.service.tasks.links import LINK_TTL_S, load_link_key
from lookalike.service.tasks.meta_items import INVALID_META_ITEM, UNSUPPORTED_OPERATION
from lookalike.service.tasks.task_service import (
    LEASE_S,
    MAX_PAGE_SIZE,
    POLL_S,
    TASK_ALREADY_EXIST,
    TaskPage,
    TaskService,
    TaskView,
)

__all__ = [
    "INVALID_META_ITEM",
    "LEASE_S",
    "LINK_TTL_S",
    "MAX_PAGE_SIZE",
    "META_FILE",
    "POLL_S",
    "TASK_ALREADY_EXIST",
    "UNSUPPORTED_OPERATION",
    "TaskPage",
    "TaskService",
    "TaskView",
    "load_link_key",
    "resolve_in_bucket",
]
