"""Scene-change detection on small HSV frames: pure numpy, shared by the decode child and tests.

The score is PySceneDetect's "content" measure (the mean absolute change of hue, saturation and
value per pixel, 0-255), computed on frames shrunk to `SIGNATURE_SIZE`: a hard cut changes most
pixels a lot, while motion inside a shot changes few. This module imports nothing but numpy so
that the decode child can load it without the `app` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: (width, height) frames are shrunk to before comparing: enough for cuts, cheap to compare.
SIGNATURE_SIZE = (64, 36)
#: PySceneDetect's ContentDetector default, on the same 0-255 scale.
DEFAULT_THRESHOLD = 27.0
#: Shots shorter than this are merged into the previous one (flashes, fades, compression pops).
DEFAULT_MIN_GAP_S = 1.0


def content_score(previous: np.ndarray, current: np.ndarray) -> float:
    """How much the picture changed between two HSV signatures (0 = identical, up to 255).

    Args:
        previous: an HSV image of `SIGNATURE_SIZE` (uint8, height × width × 3).
        current: the next one, same shape.

    Returns:
        The mean over the three channels of the mean absolute per-pixel difference.
    """
    delta = np.abs(current.astype(np.int16) - previous.astype(np.int16))
    return float(delta.reshape(-1, 3).mean(axis=0).mean())


@dataclass
class SceneDetector:
    """Feed it signatures in time order; it says which frames start a new scene.

    Attributes:
        threshold: a score at or above this is a cut.
        min_gap_s: a cut closer than this to the previous scene start is ignored.
        starts: (time_s, score) of every scene start found so far; the first frame is one, with
            an infinite score so that it survives any trimming.
    """

    threshold: float = DEFAULT_THRESHOLD
    min_gap_s: float = DEFAULT_MIN_GAP_S
    starts: list[tuple[float, float]] = field(default_factory=list)
    _previous: np.ndarray | None = None

    def feed(self, time_s: float, signature: np.ndarray) -> bool:
        """Look at the next frame; return True when it starts a scene (the first frame does)."""
        previous, self._previous = self._previous, signature
        if previous is None:
            self.starts.append((time_s, float("inf")))
            return True
        score = content_score(previous, signature)
        if score < self.threshold or time_s - self.starts[-1][0] < self.min_gap_s:
            return False
        self.starts.append((time_s, score))
        return True


def strongest(starts: list[tuple[float, float]], limit: int) -> list[float]:
    """The times of the `limit` strongest scene starts, in time order.

    Args:
        starts: (time_s, score) pairs, as `SceneDetector.starts`.
        limit: how many to keep (at least 1).

    Returns:
        Times in increasing order.
    """
    kept = sorted(starts, key=lambda s: s[1], reverse=True)[: max(1, limit)]
    return sorted(t for t, _ in kept)
