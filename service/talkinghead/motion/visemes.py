"""Phones -> the 15 Oculus/Meta visemes -> ARKit mouth poses.

Poses are what a viseme looks like at full articulation, at normal loudness. `jawOpen - mouthClose`
is the lip aperture: ARKit's mouthClose closes the lips against an open jaw, so a bilabial sets
mouthClose equal to jawOpen (lips sealed, teeth slightly apart) and presses the lips.
"""

from __future__ import annotations

import numpy as np

from talkinghead.arkit import VISEMES, pose_vector

# ARPAbet (pocketsphinx's US-English set) -> viseme. Diphthongs start on their first vowel; the
# second half is added by `split_diphthongs`.
PHONE_TO_VISEME: dict[str, str] = {
    "SIL": "sil",
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "NG": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn",
    "R": "RR", "ER": "RR",
    "AA": "aa", "AE": "aa", "AH": "aa", "AW": "aa", "AY": "aa",
    "EH": "E", "EY": "E",
    "IH": "I", "IY": "I", "Y": "I",
    "AO": "O", "OW": "O", "OY": "O",
    "UH": "U", "UW": "U", "W": "U",
}
DIPHTHONG_SECOND_HALF = {"AW": "UH", "AY": "IY", "EY": "IY", "OW": "UH", "OY": "IY"}

VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})

# Shapes at full articulation. Left/right pairs are symmetric; write one name for both with "*".
_POSES: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"jawOpen": 0.06, "mouthClose": 0.06, "mouthPress*": 0.45, "mouthRollLower": 0.12,
           "mouthRollUpper": 0.08},
    "FF": {"jawOpen": 0.10, "mouthRollLower": 0.65, "mouthUpperUp*": 0.28, "mouthShrugUpper": 0.15,
           "mouthStretch*": 0.10},
    "TH": {"jawOpen": 0.18, "tongueOut": 0.35, "mouthUpperUp*": 0.10, "mouthStretch*": 0.10},
    "DD": {"jawOpen": 0.20, "mouthStretch*": 0.12, "mouthLowerDown*": 0.10},
    "kk": {"jawOpen": 0.25, "mouthStretch*": 0.10, "mouthLowerDown*": 0.08},
    "CH": {"jawOpen": 0.14, "mouthFunnel": 0.45, "mouthPucker": 0.20, "mouthShrugUpper": 0.25,
           "mouthUpperUp*": 0.15},
    "SS": {"jawOpen": 0.07, "mouthStretch*": 0.30, "mouthSmile*": 0.12, "mouthUpperUp*": 0.10,
           "mouthLowerDown*": 0.10},
    "nn": {"jawOpen": 0.16, "mouthStretch*": 0.08, "mouthLowerDown*": 0.05},
    "RR": {"jawOpen": 0.16, "mouthFunnel": 0.30, "mouthPucker": 0.30},
    "aa": {"jawOpen": 0.62, "mouthLowerDown*": 0.30, "mouthUpperUp*": 0.12, "mouthStretch*": 0.05},
    "E": {"jawOpen": 0.40, "mouthStretch*": 0.30, "mouthSmile*": 0.12, "mouthLowerDown*": 0.20},
    "I": {"jawOpen": 0.24, "mouthStretch*": 0.38, "mouthSmile*": 0.22, "mouthLowerDown*": 0.10},
    "O": {"jawOpen": 0.42, "mouthFunnel": 0.60, "mouthPucker": 0.30},
    "U": {"jawOpen": 0.18, "mouthPucker": 0.80, "mouthFunnel": 0.40},
}


# shape = (15, 52): row VISEME_INDEX[v] is viseme v's full-articulation pose
POSES = np.stack([pose_vector(_POSES[v]) for v in VISEMES])
