"""Head pose from prosody: nods on stressed syllables, slow drift and tilt, settling in pauses,
breathing at rest. Output columns follow track.HEAD_FIELDS (degrees, millimetres)."""

from __future__ import annotations

import numpy as np

from talkinghead.audio.features import SpeechFeatures
from talkinghead.motion.noise import add_pulse, ou_noise, smooth_mask
from talkinghead.motion.options import MotionOptions

# Drift: standard deviation (deg) and correlation time (s) per axis while speaking.
DRIFT = {"yaw": (2.6, 1.8), "pitch": (1.4, 1.4), "roll": (1.3, 2.5)}
PAUSE_DRIFT_SCALE = 0.45     # drift shrinks toward rest in pauses
NOD_DEG = 2.2                # pitch dip for a full-strength pitch accent
BEAT_DEG = 0.8               # pitch dip for an ordinary stressed syllable
NOD_LEAD_S = 0.08            # the head moves slightly ahead of the stressed syllable
NOD_RISE_S, NOD_DECAY_S = 0.12, 0.22      # a nod's pulse: rise to the dip, Gaussian return (s)
SWEEP_DEG = (1.0, 2.5)       # a sideways turn on an accent (yaw amplitude range)...
SWEEP_RISE_S, SWEEP_DECAY_S = 0.2, 0.5    # ...peaking on the accent
SWEEP_CHANCE = 0.5           # share of accents that also turn the head
BREATH_HZ = (0.22, 0.30)     # breathing rate range at rest
BREATH_RATE_TAU_S = 4.0      # correlation time of the breathing rate's wander...
BREATH_DEPTH_TAU_S = 3.0     # ...and of its depth
SWAY_MM, SWAY_TAU_S = 1.5, 2.0            # slow forward/back sway (sd mm, correlation time s)
NECK_PIVOT_MM = 100.0        # head centre above the neck pivot: rotations translate the head
EMOTION_POSE = {  # pitch bias (deg), motion scale
    "neutral": (0.0, 1.0), "happy": (1.5, 1.2), "sad": (-5.0, 0.6),
    "angry": (-2.0, 1.25), "surprised": (2.5, 1.1),
}


def head_motion(times: np.ndarray, feat: SpeechFeatures, options: MotionOptions,
                rng: np.random.Generator) -> np.ndarray:
    """shape = (n, 6): yaw, pitch, roll (deg), x, y, z (mm). times: shape = (n,) seconds."""
    n = len(times)
    fps = options.fps
    speaking = smooth_mask(feat.at("speech", times), fps, 0.8)
    envelope = PAUSE_DRIFT_SCALE + (1 - PAUSE_DRIFT_SCALE) * speaking
    rot = np.stack([ou_noise(n, fps, tau, sd, rng) * envelope for sd, tau in DRIFT.values()], axis=1)
    rot[:, 1] += _nods(times, feat, rng) * options.expressiveness
    rot[:, 0] += _beat_sweeps(times, feat, rng) * options.expressiveness
    breath = _breathing(times, rng)
    return head_pose(rot, breath, ou_noise(n, fps, SWAY_TAU_S, SWAY_MM, rng), options)


def head_pose(rot: np.ndarray, breath: np.ndarray, sway: np.ndarray, options: MotionOptions) -> np.ndarray:
    """Drift, nods and sweeps -> the final pose, shape = (n, 6) like head_motion's (shared with the
    streaming stage). rot: shape = (n, 3) yaw, pitch, roll (deg), modified in place; breath: shape =
    (n,) -1..1 chest rise; sway: shape = (n,) mm of slow forward/back drift."""
    rot[:, 1] += 0.35 * breath
    bias, scale = EMOTION_POSE[options.emotion]
    k = options.emotion_intensity
    rot *= options.head_motion * (1 + (scale - 1) * k)
    rot[:, 1] += bias * k
    pos = np.zeros((len(rot), 3))
    pos[:, 0] = NECK_PIVOT_MM * np.sin(np.radians(rot[:, 2]))
    pos[:, 1] = 0.8 * breath * options.head_motion
    pos[:, 2] = -NECK_PIVOT_MM * np.sin(np.radians(rot[:, 1])) * 0.3 + sway * options.head_motion
    return np.concatenate([rot, pos], axis=1).astype(np.float32)


def _nods(times: np.ndarray, feat: SpeechFeatures, rng: np.random.Generator) -> np.ndarray:
    """Downward pitch pulses on stressed syllables, larger on pitch accents."""
    out = np.zeros(len(times))
    accented = np.isin(feat.nuclei, feat.accents)  # accents are a subset of the nuclei
    for t, s, accent in zip(feat.nuclei, feat.nucleus_strength, accented):
        amp = NOD_DEG if accent else BEAT_DEG * s
        amp *= rng.uniform(0.7, 1.3)
        add_pulse(out, times, -amp, t - NOD_LEAD_S - NOD_RISE_S, NOD_RISE_S, NOD_DECAY_S)
    return out


def _beat_sweeps(times: np.ndarray, feat: SpeechFeatures, rng: np.random.Generator) -> np.ndarray:
    """Some accents also turn the head a little to one side, as speakers do on emphasis."""
    out = np.zeros(len(times))
    for t in feat.accents:
        if rng.random() < SWEEP_CHANCE:
            add_pulse(out, times, rng.choice([-1, 1]) * rng.uniform(*SWEEP_DEG), t - SWEEP_RISE_S, SWEEP_RISE_S,
                      SWEEP_DECAY_S)
    return out


def _breathing(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """-1..1 chest rise, at a rate that wanders within BREATH_HZ (a fixed sine looks mechanical)."""
    if len(times) < 2:
        return np.zeros(len(times))
    fps = 1 / (times[1] - times[0])
    lo, hi = BREATH_HZ
    freq = (lo + hi) / 2 + ou_noise(len(times), fps, BREATH_RATE_TAU_S, (hi - lo) / 4, rng)
    phase = 2 * np.pi * np.cumsum(freq) / fps + rng.uniform(0, 2 * np.pi)
    return np.sin(phase) * breath_depth(ou_noise(len(times), fps, BREATH_DEPTH_TAU_S, 1.0, rng))


def breath_depth(noise: np.ndarray) -> np.ndarray:
    """Breath amplitude 0.6..1 from unit-variance slow noise (deep and shallow breaths)."""
    return 0.8 + 0.2 * noise.clip(-1, 1)
