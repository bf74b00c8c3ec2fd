"""Face analysis of the portrait: loading, landmarks, blendshapes and head pose (MediaPipe),
and the rig built from them (`analyze_portrait(image) -> Rig`)."""

from __future__ import annotations

import numpy as np

from talkinghead.face.landmarks import (
    MAX_IMAGE_SIDE,
    MIN_FACE_PX,
    N_LANDMARKS,
    FaceAnalysis,
    FaceLandmarker,
    analyze_face,
    default_landmarker,
    head_angles,
    load_portrait,
)
from talkinghead.face.rig import FRAMINGS, Rig, build_rig

__all__ = [
    "FRAMINGS",
    "Rig",
    "analyze_portrait",
    "build_rig",
    "MAX_IMAGE_SIDE",
    "MIN_FACE_PX",
    "N_LANDMARKS",
    "FaceAnalysis",
    "FaceLandmarker",
    "analyze_face",
    "default_landmarker",
    "head_angles",
    "load_portrait",
]


def analyze_portrait(image: np.ndarray, size: int = 512, framing: str = "face",
                     landmarker: FaceLandmarker | None = None) -> Rig:
    """The face stage's entry point: an RGB portrait (shape = (H, W, 3) uint8, see
    `load_portrait`) -> the rig to animate it at `size` with `framing` ("face" or "full").
    Raises PortraitError when the photo has no usable face."""
    face = analyze_face(image, landmarker)
    return build_rig(image, face.landmarks, size, framing, faces_found=face.n_faces)
