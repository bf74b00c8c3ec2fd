"""Viseme segments from the phone model's posteriors (audio.phone_model): the lips of speech
without a transcript, offline and streaming alike (`visemes_from_posteriors` is the one place).

Each 10 ms frame takes the viseme with the highest summed class posterior, averaged over
SMOOTH_FRAMES around it (the frames after it only as far as they are known); runs too short to
see join their neighbour as in `acoustic`. A segment's weight (articulation strength) follows
the model's confidence in it.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from talkinghead.arkit import VISEMES
from talkinghead.audio.features import HOP, value_runs
from talkinghead.audio.phone_model import viseme_posteriors
from talkinghead.motion.acoustic import merged_runs
from talkinghead.motion.lips import VisemeSegment

SMOOTH_FRAMES = 3
MIN_WEIGHT = 0.6      # weight of a segment the model is unsure of; 1.0 when it is certain
# Viseme posteriors are scaled by these before the argmax: a missed closure or rounding is seen
# more than a brief extra one (PP, O, U tuned on the trained voices; FF 2 -> 3 chosen on the DEV
# voices and kept by a held-out rule fixed before its one run: benchmarks/tune_visemes.py --dev).
VISEME_GAIN = {"PP": 1.0, "FF": 3.0, "O": 2.0, "U": 2.0}


def gain_vector(gains: dict[str, float]) -> np.ndarray:
    """Gains by viseme name (1.0 where unnamed) -> shape = (15,) in arkit.VISEMES order."""
    return np.array([gains.get(v, 1.0) for v in VISEMES], np.float32)


_GAIN = gain_vector(VISEME_GAIN)


def visemes_from_posteriors(post: np.ndarray) -> list[VisemeSegment]:
    """post: shape = (n, classes), frame k at (k + 0.5) * HOP s. Returns segments in seconds from
    frame 0."""
    if not len(post):
        return []
    return visemes_from_viseme_posteriors(viseme_posteriors(post))


def visemes_from_viseme_posteriors(raw: np.ndarray) -> list[VisemeSegment]:
    """The same from viseme posteriors, shape = (n, 15) in arkit.VISEMES order."""
    vp = uniform_filter1d(raw, size=SMOOTH_FRAMES, axis=0, mode="nearest") * _GAIN
    best = vp.argmax(1)
    conf = vp[np.arange(len(best)), best]
    index = best.tolist()
    runs = [(VISEMES[index[k]], k, j) for k, j in value_runs(best)]
    out = []
    for viseme, start, end in merged_runs(runs):
        a, b = int(round(start / HOP)), max(int(round(start / HOP)) + 1, int(round(end / HOP)))
        mean = np.add.reduce(conf[a:b]) / (b - a)   # conf[a:b].mean(), without its overhead
        weight = MIN_WEIGHT + (1 - MIN_WEIGHT) * min(max(float(mean / _GAIN[index[a]]), 0.0), 1.0)
        out.append(VisemeSegment(viseme, start, end, weight))
    return out
