"""The eyes alone over a whole take: `motion.eyes.Eyes` run with the take's lookahead, as the
engine runs them for a take (`MotionStream.play`), for tests that look at the eyes only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkinghead.motion.eyes import EyeLookahead, Eyes
from talkinghead.motion.options import MotionOptions


@dataclass
class EyeMotion:
    """Eye animation for n frames at a fixed rate.

    blendshapes: shape = (n, 52), float32, 0..1, ARKit order; only eye* channels are non-zero
    gaze:        shape = (n, 4), float32, degrees: left_yaw, left_pitch, right_yaw, right_pitch
    blink:       shape = (n,), float32, 0..1 eyelid closure of the blinks alone (no lid-follow)
    """

    blendshapes: np.ndarray
    gaze: np.ndarray
    blink: np.ndarray


def eye_motion(speaking: np.ndarray, fps: float, options: MotionOptions, rng: np.random.Generator) -> EyeMotion:
    """Blinks and gaze for a whole take, frames at t = i / fps. speaking: shape = (n,), bool, True
    where there is voice activity. The result depends only on the inputs and the state of `rng`."""
    speaking = np.asarray(speaking, dtype=bool)
    eyes = Eyes(options, fps, np.random.SeedSequence(int(rng.integers(2 ** 63))))
    eyes.look_ahead(EyeLookahead.of(speaking, fps, options.blink_rate))
    shapes, gaze, blink = eyes.frames(0, speaking)
    return EyeMotion(shapes.astype(np.float32), gaze.astype(np.float32), blink.astype(np.float32))
