"""What the task worker (lookalike.service.tasks) asks of a kind of task it does not run itself.

The worker leases a task, hands its runner one time slice, and ends the task with the runner's outcome.
A runner commits its progress with the task's lease (``holder``) and calls ``checkpoint()`` after each
commit: that raises when the worker is stopping or the slice is used up, and the task goes back to the
queue to resume from its committed progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lookalike.storage.tasks_repo import TaskRow


@dataclass(frozen=True)
class Finished:
    status: str  # SUCCESS | FAIL
    code: str
    msg: str


class Stopped(Exception):
    """The worker is stopping in the middle of a task: it goes back to the queue."""


class SliceUsedUp(Exception):
    """A task used up its time slice: it goes back to the queue, where other tenants come first."""


def _never() -> bool:
    return False


@dataclass(frozen=True)
class TaskSlice:
    holder: str  # the lease holder: progress commits must name it
    now: Callable[[], datetime]
    lease_until: Callable[[], datetime]
    checkpoint: Callable[[], None]  # raises Stopped or SliceUsedUp to end the slice
    # Whether the worker is stopping, for a task that cannot be cut into slices (an export) but can stop.
    stopping: Callable[[], bool] = _never


class TaskRunner(Protocol):
    def run_slice(self, task: TaskRow, work: TaskSlice) -> Finished | None:
        """Run the task until it ends (its outcome) or ``checkpoint`` raises; None when the lease was lost."""
        ...
