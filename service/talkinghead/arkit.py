"""The one place that names the animation channels.

`BLENDSHAPE_NAMES` is ARKit's 52 face blendshapes in ARKit's order (the order of Apple's
`ARFaceAnchor.BlendShapeLocation` documentation; MediaPipe names the same 51 (no tongueOut) plus
`_neutral` in alphabetical order, so its scores are mapped by name, never by position).
Every output — JSON, CSV, proto, Blender — indexes blendshapes by this tuple.

`VISEMES` is the 15 Oculus/Meta viseme names (the Oculus LipSync set).
"""

from __future__ import annotations

import numpy as np

BLENDSHAPE_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
assert len(BLENDSHAPE_NAMES) == 52 and len(set(BLENDSHAPE_NAMES)) == 52

#: name -> column index into a (frames, 52) blendshape array
BS: dict[str, int] = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}



def pose_vector(pose: dict[str, float]) -> np.ndarray:
    """{name: weight} -> shape = (52,) float32 in BLENDSHAPE_NAMES order. A name ending in "*"
    sets both sides ("mouthSmile*" -> mouthSmileLeft and mouthSmileRight)."""
    vec = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
    for name, w in pose.items():
        for full in ((name[:-1] + "Left", name[:-1] + "Right") if name.endswith("*") else (name,)):
            vec[BS[full]] = w
    return vec


VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U",
)
VISEME_INDEX: dict[str, int] = {v: i for i, v in enumerate(VISEMES)}
