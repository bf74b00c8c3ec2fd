"""The motion contract: `FaceParams` (one frame) and `MotionTrack` (frames at a fixed rate).

Sign conventions (all relative to the subject, as if you were the person in the portrait):

- head yaw   (degrees): + turns the face toward the subject's LEFT  (the viewer sees it turn right)
- head pitch (degrees): + lifts the chin (looks up)
- head roll  (degrees): + tilts the top of the head toward the subject's LEFT shoulder
- head x/y/z (millimetres, relative to the portrait's own pose): + x to the subject's left,
  + y up, + z toward the camera
- gaze yaw   (degrees, per eye): + the eye turns toward the subject's LEFT
  (left eye: eyeLookOutLeft; right eye: eyeLookInRight)
- gaze pitch (degrees, per eye): + looks up (eyeLookUp*)
- blendshapes: ARKit's 52 in `arkit.BLENDSHAPE_NAMES` order, each 0..1
- viseme: one of `arkit.VISEMES`
- frame i is at time t = i / fps seconds from the start of the audio
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES

HEAD_FIELDS = ("yaw", "pitch", "roll", "x", "y", "z")
GAZE_FIELDS = ("left_yaw", "left_pitch", "right_yaw", "right_pitch")


@dataclass(frozen=True)
class HeadPose:
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass(frozen=True)
class EyeGaze:
    yaw: float = 0.0
    pitch: float = 0.0


@dataclass(frozen=True)
class FaceParams:
    """One frame of face animation. `blendshapes` shape = (52,), float32, 0..1, ARKit order."""

    t: float
    blendshapes: np.ndarray
    head: HeadPose = field(default_factory=HeadPose)
    gaze_left: EyeGaze = field(default_factory=EyeGaze)
    gaze_right: EyeGaze = field(default_factory=EyeGaze)
    viseme: str = "sil"

    def blendshape(self, name: str) -> float:
        return float(self.blendshapes[BLENDSHAPE_NAMES.index(name)])


@dataclass
class MotionTrack:
    """Frames at a fixed rate, stored as arrays (cheap to slice, export and stream).

    blendshapes: shape = (n_frames, 52), float32, 0..1
    head:        shape = (n_frames, 6),  float32, HEAD_FIELDS order (degrees, millimetres)
    gaze:        shape = (n_frames, 4),  float32, GAZE_FIELDS order (degrees)
    visemes:     n_frames names from arkit.VISEMES
    duration:    seconds of audio the track covers
    """

    fps: float
    duration: float
    blendshapes: np.ndarray
    head: np.ndarray
    gaze: np.ndarray
    visemes: list[str]

    def __post_init__(self) -> None:
        n = len(self.visemes)
        if self.blendshapes.shape != (n, len(BLENDSHAPE_NAMES)):
            raise ValueError(f"blendshapes shape {self.blendshapes.shape}, expected ({n}, 52)")
        if self.head.shape != (n, 6) or self.gaze.shape != (n, 4):
            raise ValueError(f"head {self.head.shape} / gaze {self.gaze.shape} do not match {n} frames")
        bad = set(self.visemes) - set(VISEMES)
        if bad:
            raise ValueError(f"unknown visemes {sorted(bad)}")

    @staticmethod
    def frame_count(duration: float, fps: float) -> int:
        """Frames needed so that frame times i/fps cover [0, duration)."""
        return max(1, int(np.ceil(duration * fps - 1e-9)))

    @property
    def n_frames(self) -> int:
        return len(self.visemes)

    @property
    def times(self) -> np.ndarray:
        """shape = (n_frames,), seconds."""
        return np.arange(self.n_frames) / self.fps

    def channel(self, name: str) -> np.ndarray:
        """One blendshape curve, shape = (n_frames,)."""
        return self.blendshapes[:, BLENDSHAPE_NAMES.index(name)]

    def frame(self, i: int) -> FaceParams:
        h, g = self.head[i], self.gaze[i]
        return FaceParams(
            t=i / self.fps,
            blendshapes=self.blendshapes[i],
            head=HeadPose(*(float(v) for v in h)),
            gaze_left=EyeGaze(float(g[0]), float(g[1])),
            gaze_right=EyeGaze(float(g[2]), float(g[3])),
            viseme=self.visemes[i],
        )

    def __iter__(self) -> Iterator[FaceParams]:
        return (self.frame(i) for i in range(self.n_frames))
