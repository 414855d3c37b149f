"""Groups of copies from scored pairs: the pure half of the duplicate report.

A scan (lookalike.service.duplicates) finds pairs of pictures whose score reaches the report's threshold;
``group_pairs`` turns them into groups whose members are all copies of the group's centre (see there why
not plain connected components). Groups come biggest first, then by their best pair; inside a group the
centre comes first: the suggested picture to keep.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

# Lower than a search's copy threshold (0.87): a report compares two stored pictures through their two stored
# views each, without the extra views and the local-feature check a search query gets, so a copy's pair
# scores lower (on the copy benchmark's corpus, 74 % of edited copies pair with their source at 0.75, 61 % at
# 0.82; mild edits such as JPEG, resizing, padding, mirror, banners and frames 0.9-0.98 at 0.75:
# bench/duplicates_bench.py).
DEFAULT_THRESHOLD: Final = 0.75
MIN_THRESHOLD: Final = 0.5  # below this "similar" stops meaning "copy": a report would be one big group
MAX_THRESHOLD: Final = 1.0
DENSE_MAX: Final = 2_000  # a component up to this size is scored in full before it is split into groups


@dataclass(frozen=True)
class Pair:
    first: int  # the lower image id
    second: int
    score: float


@dataclass(frozen=True)
class Member:
    image_id: int
    score: float  # its score with the group's centre (1.0 for the centre itself)


@dataclass(frozen=True)
class Group:
    members: tuple[Member, ...]  # the centre (the suggested keeper) first, then by id
    best_score: float

    @property
    def size(self) -> int:
        return len(self.members)


def pair(a: int, b: int, score: float) -> Pair:
    """The pair of two different pictures, lower id first."""
    if a == b:
        raise ValueError("a picture is not its own duplicate")
    return Pair(a, b, score) if a < b else Pair(b, a, score)


def validate_threshold(value: object) -> float:
    """A report's threshold from a JSON number or text (None or "": the default); ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_THRESHOLD
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"the threshold must be a number between {MIN_THRESHOLD} and {MAX_THRESHOLD}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"the threshold must be a number, not {str(value)[:20]!r}") from None
    if not MIN_THRESHOLD <= number <= MAX_THRESHOLD:  # also refuses NaN
        raise ValueError(f"the threshold must be between {MIN_THRESHOLD} and {MAX_THRESHOLD}")
    return number


Densify = Callable[[list[int]], Iterable[Pair]]


def group_pairs(
    pairs: Iterable[Pair], *, densify: Densify | None = None, dense_max: int = DENSE_MAX
) -> list[Group]:
    """Groups of copies from ``pairs``, biggest first, then by best score, then by lowest id.

    Pairs chain: a 29-point star pairs with a 30-point one, which pairs with a 31-point one, and so on, so
    a connected component can hold a hundred different pictures. A group is therefore built around a
    centre: inside each component the picture with the most pairs (ties: the lowest id) takes every
    picture it pairs with directly, and the rest of the component is grouped again the same way. Every
    member of a group pairs with its centre (listed first: the suggested keeper), so "keep one" never
    deletes a picture that is not a copy of the one kept. A scan finds each picture's nearest only, so
    ``densify(ids)`` may give every pair among a component's pictures (at most ``dense_max``: scored from
    their stored vectors) before it is split: a picture uploaded a thousand times then makes one group.
    Pictures left without a partner (their partners went to other groups) are in no group.
    Memory grows with the pictures that have a pair, not with the catalogue."""
    scores: dict[int, dict[int, float]] = {}
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        top = node
        while parent[top] != top:
            top = parent[top]
        while parent[node] != top:  # path compression
            parent[node], node = top, parent[node]
        return top

    def link(p: Pair) -> None:
        for a, b in ((p.first, p.second), (p.second, p.first)):
            scores.setdefault(a, {})[b] = max(p.score, scores.get(a, {}).get(b, p.score))

    for p in pairs:
        link(p)
        for node in (p.first, p.second):
            parent.setdefault(node, node)
        a, b = root(p.first), root(p.second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    components: dict[int, list[int]] = {}
    for node in parent:
        components.setdefault(root(node), []).append(node)
    groups: list[Group] = []
    for members in components.values():
        members.sort()
        if densify is not None and 2 < len(members) <= dense_max:
            for p in densify(members):
                link(p)
        groups.extend(_split_around_centres(members, scores))
    groups.sort(key=lambda g: (-g.size, -g.best_score, g.members[0].image_id))
    return groups


def _split_around_centres(members: list[int], scores: dict[int, dict[int, float]]) -> list[Group]:
    """Greedy: the unassigned picture with the most unassigned partners takes them all, until no
    unassigned picture has an unassigned partner (a lazy heap keeps it O(pairs log pairs))."""
    left = set(members)
    degree = {m: len(scores[m]) for m in members}
    heap = [(-degree[m], m) for m in members]
    heapq.heapify(heap)
    groups: list[Group] = []
    while heap:
        negative, centre = heapq.heappop(heap)
        if centre not in left or -negative != degree[centre]:
            continue  # taken, or an outdated entry (its current one is in the heap too)
        if degree[centre] == 0:
            break  # nobody left has a partner left
        partners = sorted(m for m in scores[centre] if m in left)
        taken = [centre, *partners]
        for m in taken:
            left.discard(m)
        for m in taken:
            for other in scores[m]:
                if other in left:
                    degree[other] -= 1
                    heapq.heappush(heap, (-degree[other], other))
        groups.append(
            Group(
                (Member(centre, 1.0), *(Member(m, scores[centre][m]) for m in partners)),
                max(scores[centre][m] for m in partners),
            )
        )
    return groups
