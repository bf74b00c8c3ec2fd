"""Face analysis of the portrait: loading, landmarks, blendshapes and head pose (MediaPipe)."""

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

__all__ = [
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
