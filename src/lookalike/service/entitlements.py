"""The entitlements port: what an instance may do right now (its state, picture capacity and search QPS).

The image, task and Alibaba code ask this port; billing answers it from the package the instance holds, and
nothing else needs to know billing exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lookalike.domain.lifecycle import InstanceState
from lookalike.domain.models import Instance


@dataclass(frozen=True)
class Availability:
    state: InstanceState
    capacity: int
    qps: int
    package_id: str | None


class Entitlements(Protocol):
    def effective(self, instance: Instance) -> Instance:
        """The instance with the capacity and QPS of the package it holds now, and its state as status."""
        ...

    def capacity_for_adds(self, instance: Instance) -> int:
        """The most pictures the instance may hold after an add (the smallest of the packages held now and
        already paid for later)."""
        ...
