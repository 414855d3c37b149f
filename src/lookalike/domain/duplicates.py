"""Groups of copies from scored pairs: the pure half of the duplicate report.

A scan (lookalike.service.duplicates) finds pairs of pictures whose score reaches the report's threshold;
a group is a connected component of those pairs (union-find), so three re-posts of one picture form one
group even where one pair of them scores just under the threshold. Groups come biggest first, then by
their best pair; inside a group the member that stands for it (kept by "keep one" unless the user picks
another) comes first: the oldest picture (lowest id), the one a catalogue most likely links to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# Lower than a search's copy threshold (0.82): a report compares two stored pictures through their two stored
# views each, without the extra central views a search query gets, so a copy's pair scores lower (on the
# copy benchmark's corpus, 74 % of edited copies pair with their source at 0.75, 61 % at 0.82; mild edits
# such as JPEG, resizing, padding, mirror, banners and frames 0.9-0.98 at 0.75: bench/duplicates_bench.py).
DEFAULT_THRESHOLD: Final = 0.75
MIN_THRESHOLD: Final = 0.5  # below this "similar" stops meaning "copy": a report would be one big group
MAX_THRESHOLD: Final = 1.0


@dataclass(frozen=True)
class Pair:
    first: int  # the lower image id
    second: int
    score: float


@dataclass(frozen=True)
class Member:
    image_id: int
    score: float  # its best score with another member of the group


@dataclass(frozen=True)
class Group:
    members: tuple[Member, ...]  # the oldest picture first, then by id
    best_score: float

    @property
    def size(self) -> int:
        return len(self.members)


def pair(a: int, b: int, score: float) -> Pair:
    """The pair of two different pictures, lower id first."""
    if a == b:
        raise ValueError("a picture is not its own duplicate")
    return Pair(a, b, score) if a < b else Pair(b, a, score)


def validate_threshold(value: float) -> float:
    if not MIN_THRESHOLD <= value <= MAX_THRESHOLD:  # also refuses NaN
        raise ValueError(f"the threshold must be between {MIN_THRESHOLD} and {MAX_THRESHOLD}")
    return value


def group_pairs(pairs: Iterable[Pair]) -> list[Group]:
    """The connected components of ``pairs`` (each of two or more pictures), biggest first, then by best
    score, then by lowest id; memory grows with the pictures that have a pair, not with the catalogue."""
    parent: dict[int, int] = {}
    best: dict[int, float] = {}

    def root(node: int) -> int:
        top = node
        while parent[top] != top:
            top = parent[top]
        while parent[node] != top:  # path compression
            parent[node], node = top, parent[node]
        return top

    for p in pairs:
        for node in (p.first, p.second):
            if node not in parent:
                parent[node] = node
            best[node] = max(best.get(node, p.score), p.score)
        a, b = root(p.first), root(p.second)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the lower id stays root: results do not depend on pair order
    members: dict[int, list[int]] = {}
    for node in parent:
        members.setdefault(root(node), []).append(node)
    groups = [
        Group(tuple(Member(i, best[i]) for i in sorted(ids)), max(best[i] for i in ids))
        for ids in members.values()
    ]
    groups.sort(key=lambda g: (-g.size, -g.best_score, g.members[0].image_id))
    return groups
