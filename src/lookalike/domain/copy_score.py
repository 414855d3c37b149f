"""A search hit's score once its local features were checked against the query's (pure, no I/O).

The global score (the best weighted cosine of the views, lookalike.vision.views) cannot tell a scribbled or
pasted copy from a look-alike: both sit near 0.5. Geometrically consistent local feature matches can: a
copy shares dozens of them with its source, an unrelated picture rarely more than ten
(``bench/copy_verification_choice.py``). So each verified match pulls the score part of the way towards
1.0, saturating at ``INLIER_CAP`` matches; unverified hits keep their score, a score never goes down and
never passes 1.0. ``PULL`` and ``INLIER_CAP`` were chosen on the tune part of the copy benchmark.
"""

from __future__ import annotations

from typing import Final

INLIER_CAP: Final = 40
PULL: Final = 0.8


def verified_score(score: float, inliers: int) -> float:
    """``score`` in [0, 1] after ``inliers`` (>= 0) geometrically consistent feature matches."""
    score = min(1.0, max(0.0, score))
    share = min(max(inliers, 0), INLIER_CAP) / INLIER_CAP
    return score + (1.0 - score) * PULL * share
