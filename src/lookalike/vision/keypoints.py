"""Local features (OpenCV ORB) of pictures, and how many of them a query shares with a stored picture
under one similarity transform (RANSAC): the geometric check of a search's first hits (issue 13).

A picture stores few features of a small rendering (``STORED_FEATURES`` of the picture scaled to
``STORED_SIDE``: ~2 KB on disk, none in the index's RAM); a query, computed once per search, more of a
larger one, so the stored features find their match whatever the copy's scale. The sizes and the
matching's ratio and tolerance were chosen in ``bench/copy_verification_choice.py``.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
from PIL import Image

from lookalike.domain.keypoint_codec import Keypoints, empty

STORED_FEATURES: Final = 64
STORED_SIDE: Final = 320
QUERY_FEATURES: Final = 500
QUERY_SIDE: Final = 640
RATIO: Final = 0.85  # Lowe's ratio test on the two nearest query features
TOLERANCE_PX: Final = 8.0  # RANSAC reprojection error, in the query's pixels
MIN_SCALE, MAX_SCALE = 0.1, 10.0  # a transform outside these is no copy
_MIN_MATCHES: Final = 4
_SEED: Final = 20261207

# The server runs many requests at once on its own threads; OpenCV's pool would oversubscribe the cores.
cv2.setNumThreads(1)


def _grey(image: Image.Image, side: int) -> np.ndarray:
    grey = image.convert("L")
    scale = side / max(grey.size)
    if scale < 1:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BOX)
    return np.asarray(grey)


def _orb(image: Image.Image, features: int, side: int) -> Keypoints:
    orb = cv2.ORB.create(
        nfeatures=features, scaleFactor=1.2, nlevels=8, edgeThreshold=19, patchSize=19, fastThreshold=12
    )
    found, descriptors = orb.detectAndCompute(_grey(image, side), None)
    if descriptors is None or not found:
        return empty()
    points = np.array([k.pt for k in found], np.float32).reshape(-1, 2)
    return Keypoints(points, np.asarray(descriptors, np.uint8))


def stored_keypoints(image: Image.Image) -> Keypoints:
    """What an added picture keeps for the check."""
    return _orb(image, STORED_FEATURES, STORED_SIDE)


def query_keypoints(image: Image.Image) -> Keypoints:
    """What a search checks its first hits with."""
    return _orb(image, QUERY_FEATURES, QUERY_SIDE)


def inliers(query: Keypoints, stored: Keypoints) -> int:
    """How many of ``stored``'s features match ``query``'s under one similarity transform (rotation,
    uniform scale, translation): 0 when there is none."""
    if len(query) < _MIN_MATCHES + 1 or len(stored) < _MIN_MATCHES + 1:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(stored.descriptors, query.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < _MIN_MATCHES:
        return 0
    source = stored.points[[m.queryIdx for m in good]]
    target = query.points[[m.trainIdx for m in good]]
    cv2.setRNGSeed(_SEED)  # the same request gets the same score (the generator is per thread)
    transform, mask = cv2.estimateAffinePartial2D(
        source,
        target,
        method=cv2.RANSAC,
        ransacReprojThreshold=TOLERANCE_PX,
        maxIters=500,
        confidence=0.99,
    )
    if transform is None or mask is None:
        return 0
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    if not MIN_SCALE < scale < MAX_SCALE:
        return 0
    return int(mask.sum())
