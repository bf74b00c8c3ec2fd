"""Brows on emphasis (`Brows`), and the emotion layer (`Emotion`: a held expression with slow
variation), as causal stages.

Both give additive blendshape layers, shape = (n, 52), that the engine sums with lips and eyes
and clips to 0..1.
"""

from __future__ import annotations

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES, BS, pose_vector
from talkinghead.audio.prosody import semitones
from talkinghead.motion.noise import OU, Pulses, clip
from talkinghead.motion.options import MotionOptions

BROW_ACCENT = 0.35          # browInnerUp/OuterUp for a pitch accent at expressiveness 1
BROW_ACCENT_CHANCE = 0.75   # not every accent lifts the brows: a brow on every accent looks manic
BROW_LIFT = (0.6, 1.2)      # one accent's lift, before BROW_ACCENT scaling...
BROW_LEAD_S, BROW_RISE_S, BROW_DECAY_S = 0.15, 0.12, 0.35  # ...starting this far ahead of the accent
EMOTION_WOBBLE_TAU_S = 2.5  # correlation time of the held expression's slow variation

# Full-intensity emotion poses (Ekman's action units expressed as ARKit shapes). None opens the
# jaw: silence must stay closed-mouthed whatever the mood.
EMOTION_POSES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmile*": 0.55, "cheekSquint*": 0.35, "eyeSquint*": 0.2, "mouthDimple*": 0.15},
    "sad": {"browInnerUp": 0.5, "mouthFrown*": 0.4, "browDown*": 0.1, "mouthShrugLower": 0.2,
            "eyeSquint*": 0.1},
    "angry": {"browDown*": 0.6, "noseSneer*": 0.3, "eyeSquint*": 0.25, "mouthPress*": 0.2,
              "mouthFrown*": 0.15},
    "surprised": {"browInnerUp": 0.6, "browOuterUp*": 0.6, "eyeWide*": 0.45},
}


class Brows:
    """Brow raises on pitch accents plus a small lift with high pitch, frame by frame."""

    def __init__(self, options: MotionOptions, seed: np.random.SeedSequence) -> None:
        self._options = options
        self._rng = np.random.default_rng(seed)
        self._lift = Pulses()

    def accent(self, t: float, earliest: float) -> None:
        """A pitch accent at t s (stream time); earliest: the first frame not yet made (s)."""
        if self._rng.random() < BROW_ACCENT_CHANCE:
            self._lift.add(self._rng.uniform(*BROW_LIFT), t - BROW_LEAD_S, BROW_RISE_S, BROW_DECAY_S, earliest)

    def frames(self, t: np.ndarray, f0: np.ndarray | None = None, median_f0: float | None = None) -> np.ndarray:
        """Blendshapes at frame times t (s, continuing the last call), shape = (n, 52). f0: Hz per
        frame (0 unvoiced) and the speaker's median, for the pitch lift; None in silence."""
        lift = self._lift.at(t)
        if f0 is not None and median_f0:
            lift += 0.25 * clip(semitones(f0, median_f0) * (f0 > 0) / 4, 0, 1)   # 0..0.25 above the speaker's median
        out = np.zeros((len(t), len(BLENDSHAPE_NAMES)), np.float32)
        lift = clip(lift, 0, 1.4) * BROW_ACCENT * self._options.expressiveness
        out[:, BS["browInnerUp"]] = lift
        out[:, BS["browOuterUpLeft"]] = lift * 0.8
        out[:, BS["browOuterUpRight"]] = lift * 0.75  # faces are not symmetric
        return out


class Emotion:
    """The chosen emotion's pose at emotion_intensity, breathing slowly (+-15 %); none opens the jaw."""

    def __init__(self, options: MotionOptions, fps: float, seed: np.random.SeedSequence) -> None:
        self._pose = pose_vector(EMOTION_POSES[options.emotion]) * options.emotion_intensity
        self._wobble = OU(fps, EMOTION_WOBBLE_TAU_S, 1.0, seed)
        self._posed = bool(self._pose.any())

    def frames(self, n: int) -> np.ndarray:
        """The next n frames, shape = (n, 52), float32 (all zero for neutral)."""
        noise = self._wobble(n)   # drawn whatever the pose: the same frames however they are asked for
        if not self._posed:
            return np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32)
        wobble = 1 + 0.15 * clip(noise, -1.5, 1.5)
        return (wobble[:, None] * self._pose[None, :]).astype(np.float32)
