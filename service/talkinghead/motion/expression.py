"""Brows on emphasis, and the emotion layer (a held expression with slow variation).

Both return additive blendshape layers, shape = (n, 52), that the orchestrator sums with lips and
eyes and clips to 0..1.
"""

from __future__ import annotations

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES, BS, pose_vector
from talkinghead.audio.features import SpeechFeatures
from talkinghead.motion.noise import add_pulse, ou_noise
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


def brow_motion(times: np.ndarray, feat: SpeechFeatures, options: MotionOptions,
                rng: np.random.Generator) -> np.ndarray:
    """Brow raises on pitch accents plus a small lift with high pitch; shape = (n, 52)."""
    lift = np.zeros(len(times))
    for t in feat.accents:
        if rng.random() < BROW_ACCENT_CHANCE:
            add_pulse(lift, times, rng.uniform(*BROW_LIFT), t - BROW_LEAD_S, BROW_RISE_S, BROW_DECAY_S)
    f0 = feat.at("f0", times)
    voiced = feat.f0[feat.f0 > 0]
    if len(voiced):
        lift += pitch_lift(f0, float(np.median(voiced)))
    return brow_shapes(lift, options)


def pitch_lift(f0: np.ndarray, median_f0: float) -> np.ndarray:
    """Brow lift (0..0.25) from pitch above the speaker's median; f0 in Hz, 0 where unvoiced."""
    semitones = 12 * np.log2(np.maximum(f0, 1) / median_f0) * (f0 > 0)
    return 0.25 * np.clip(semitones / 4, 0, 1)


def brow_shapes(lift: np.ndarray, options: MotionOptions) -> np.ndarray:
    """Brow lift per frame, shape = (n,) ~0..1.4 -> blendshapes, shape = (n, 52)."""
    out = np.zeros((len(lift), len(BLENDSHAPE_NAMES)), np.float32)
    lift = np.clip(lift, 0, 1.4) * BROW_ACCENT * options.expressiveness
    out[:, BS["browInnerUp"]] = lift
    out[:, BS["browOuterUpLeft"]] = lift * 0.8
    out[:, BS["browOuterUpRight"]] = lift * 0.75  # faces are not symmetric
    return out


def emotion_layer(n: int, options: MotionOptions, rng: np.random.Generator) -> np.ndarray:
    """The chosen emotion's pose at emotion_intensity, breathing slowly (+-15%); shape = (n, 52)."""
    pose = emotion_pose(options)
    if not pose.any():
        return np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32)
    return emotion_frames(pose, ou_noise(n, options.fps, EMOTION_WOBBLE_TAU_S, 1.0, rng))


def emotion_pose(options: MotionOptions) -> np.ndarray:
    """The chosen emotion's pose at emotion_intensity, shape = (52,); all zero for neutral."""
    return pose_vector(EMOTION_POSES[options.emotion]) * options.emotion_intensity


def emotion_frames(pose: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """pose (52,) breathing with unit-variance slow noise (n,) -> shape = (n, 52), float32."""
    wobble = 1 + 0.15 * np.clip(noise, -1.5, 1.5)
    return (wobble[:, None] * pose[None, :]).astype(np.float32)
