"""A search hit's score once its local features were checked against the query's (pure, no I/O).

The global score (the best weighted cosine of the views, lookalike.vision.views) cannot tell a scribbled or
pasted copy from a look-alike: both sit near 0.5. Geometrically consistent local feature matches can: a
copy shares dozens of them with its source, an unrelated picture rarely more than ten
(``bench/copy_verification_choice.py``). So each verified match pulls the score part of the way towards
1.0, saturating at ``INLIER_CAP`` matches; unverified hits keep their score, a score never goes down and
never passes 1.0. ``PULL`` and ``INLIER_CAP`` were chosen on the tune part of the copy benchmark.

Hits that share a comparable number of matches with the query (at least ``PEER_MIN`` and ``PEER_SHARE``
of the best hit's) are equally verified copies and are pulled alike, so their global scores order them:
a picture stores a fixed number of features, so a half of a photo holds them twice as densely as the
photo and would otherwise outrank the whole photo for a crop of it (tests/test_alibaba_actions). On the
benchmark's tune part this costs 3 of 1,768 queries (0.9943 -> 0.9926; held-out unchanged, 0.9871).
"""

from __future__ import annotations

from typing import Final

INLIER_CAP: Final = 40
PULL: Final = 0.8
PEER_SHARE: Final = 0.5
PEER_MIN: Final = 10


def verified_score(score: float, inliers: int) -> float:
    """``score`` in [0, 1] after ``inliers`` (>= 0) geometrically consistent feature matches."""
    score = min(1.0, max(0.0, score))
    share = min(max(inliers, 0), INLIER_CAP) / INLIER_CAP
    return score + (1.0 - score) * PULL * share


def peer_matches(counts: list[int]) -> list[int]:
    """The match counts of a search's checked hits as they pull their scores: a hit with at least
    ``PEER_MIN`` matches and ``PEER_SHARE`` of the most any hit has counts as many as that hit."""
    best = max(counts, default=0)
    return [best if c >= PEER_MIN and c >= PEER_SHARE * best else c for c in counts]
