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


@dataclass(frozen=True)
class TaskSlice:
    holder: str  # the lease holder: progress commits must name it
    now: Callable[[], datetime]
    lease_until: Callable[[], datetime]
    checkpoint: Callable[[], None]  # raises to end the slice (stop, or the slice is used up)


class TaskRunner(Protocol):
    def run_slice(self, task: TaskRow, work: TaskSlice) -> Finished | None:
        """Run the task until it ends (its outcome) or ``checkpoint`` raises; None when the lease was lost."""
        ...
