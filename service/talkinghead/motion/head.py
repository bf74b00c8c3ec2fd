"""Head pose from prosody: nods on stressed syllables, slow drift and tilt, settling in pauses,
breathing at rest, as a causal stage (`Head`). Output columns follow track.HEAD_FIELDS (degrees,
millimetres)."""

from __future__ import annotations

import numpy as np

from talkinghead.motion.noise import OU, Pulses, clip
from talkinghead.motion.options import MotionOptions

# Drift: standard deviation (deg) and correlation time (s) per axis while speaking.
DRIFT = {"yaw": (2.6, 1.8), "pitch": (1.4, 1.4), "roll": (1.3, 2.5)}
PAUSE_DRIFT_SCALE = 0.45     # drift shrinks toward rest in pauses...
SETTLE_S = 0.8               # ...over this long after speech stops (and grows as long after it starts)
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


class Head:
    """The head, frame by frame: drift (larger while speaking), nods and sideways sweeps on the
    syllables `nucleus` is told of, breathing, sway, the emotion's posture."""

    def __init__(self, options: MotionOptions, fps: float, seed: np.random.SeedSequence) -> None:
        drift, sway, rate, depth, phase, events = seed.spawn(6)
        self._options, self._fps = options, fps
        self._drift = [OU(fps, tau, sd, s) for (sd, tau), s in zip(DRIFT.values(), drift.spawn(len(DRIFT)))]
        self._sway = OU(fps, SWAY_TAU_S, SWAY_MM, sway)
        lo, hi = BREATH_HZ
        self._breath_rate = OU(fps, BREATH_RATE_TAU_S, (hi - lo) / 4, rate)
        self._breath_depth = OU(fps, BREATH_DEPTH_TAU_S, 1.0, depth)
        self._phase = float(np.random.default_rng(phase).uniform(0, 2 * np.pi))
        self._rng = np.random.default_rng(events)
        self._envelope = 0.0   # 0 at rest .. 1 while speaking: scales the drift
        self._pitch, self._yaw = Pulses(), Pulses()

    def nucleus(self, t: float, strength: float, accent: bool, earliest: float) -> None:
        """A stressed syllable at t s (stream time): a nod, larger on a pitch accent, and on some
        accents a turn to one side. earliest: the first frame not yet made (s)."""
        rng, expr = self._rng, self._options.expressiveness
        amp = (NOD_DEG if accent else BEAT_DEG * strength) * rng.uniform(0.7, 1.3)
        self._pitch.add(-amp * expr, t - NOD_LEAD_S - NOD_RISE_S, NOD_RISE_S, NOD_DECAY_S, earliest)
        if accent and rng.random() < SWEEP_CHANCE:
            side = rng.choice([-1, 1])
            self._yaw.add(side * rng.uniform(*SWEEP_DEG) * expr, t - SWEEP_RISE_S, SWEEP_RISE_S, SWEEP_DECAY_S,
                          earliest)

    def frames(self, t: np.ndarray, speaking: np.ndarray) -> np.ndarray:
        """The pose at frame times t (s, one frame apart, continuing the last call), shape = (n, 6).
        speaking: shape = (n,) bool voice activity."""
        n, fps = len(t), self._fps
        envelope = PAUSE_DRIFT_SCALE + (1 - PAUSE_DRIFT_SCALE) * self._speaking_envelope(speaking)
        rot = np.empty((n, len(self._drift)))
        for axis, drift in enumerate(self._drift):
            rot[:, axis] = drift(n) * envelope
        nods, sweeps = Pulses.at_each([self._pitch, self._yaw], t)
        rot[:, 1] += nods
        rot[:, 0] += sweeps
        # breathing: -1..1 chest rise at a rate that wanders within BREATH_HZ (a fixed sine looks
        # mechanical), deep and shallow breaths
        lo, hi = BREATH_HZ
        phase = self._phase + 2 * np.pi * np.cumsum((lo + hi) / 2 + self._breath_rate(n)) / fps
        if n:
            self._phase = float(phase[-1]) % (2 * np.pi)
        breath = np.sin(phase) * (0.8 + 0.2 * clip(self._breath_depth(n), -1, 1))
        return _pose(rot, breath, self._sway(n), self._options)

    def _speaking_envelope(self, speaking: np.ndarray) -> np.ndarray:
        """0..1, ramping at most 1 per SETTLE_S toward speaking (1) or not (0)."""
        out = np.empty(len(speaking))
        step = 1.0 / (SETTLE_S * self._fps)
        e = self._envelope
        for k, s in enumerate(np.asarray(speaking).tolist()):
            e = min(e + step, 1.0) if s else max(e - step, 0.0)
            out[k] = e
        self._envelope = e
        return out


def _pose(rot: np.ndarray, breath: np.ndarray, sway: np.ndarray, options: MotionOptions) -> np.ndarray:
    """Drift, nods and sweeps -> the final pose, shape = (n, 6). rot: shape = (n, 3) yaw, pitch,
    roll (deg), modified in place; breath: shape = (n,) -1..1 chest rise; sway: shape = (n,) mm of
    slow forward/back drift."""
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
