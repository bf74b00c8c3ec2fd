"""Procedural teeth against a donor's: the closed-lips portraits rendered saying an open vowel
with the renderer's procedural interior, and with the teeth of a photo that shows them (obama.jpg
or the astronaut) fitted to the lips (the renderer's photo-interior path, fed the donor's mouth)
and colour-matched (the donor scaled by the ratio of the two faces' lip colours).

    python benchmarks/mouth_donor.py [-o out/mouth_donor.png]

One row per closed-lips portrait: procedural, donor obama, donor astronaut (mouth crops, 3x).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from portraits import load  # noqa: E402

from talkinghead.face import FaceLandmarker, analyze_portrait  # noqa: E402
from talkinghead.motion.visemes import POSES, VISEMES  # noqa: E402
from talkinghead.render import deformed_landmarks, render  # noqa: E402
from talkinghead.track import FaceParams  # noqa: E402

OPEN = FaceParams(0.0, POSES[VISEMES.index("aa")])


def with_donor(rig, donor):
    gain = rig.mouth.lip_color / np.maximum(donor.mouth.lip_color, 1.0)
    photo = np.clip(donor.photo.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return dataclasses.replace(rig, mouth=dataclasses.replace(donor.mouth, rim=rig.mouth.rim), photo=photo, frame=donor.frame)


def crop(rig, frame):
    lm = deformed_landmarks(rig, OPEN)
    c = lm[[61, 291, 13, 14]].mean(0)
    half = 0.5 * np.hypot(*(lm[291] - lm[61]))
    x0, y0 = np.round(c - [1.4 * half, 0.9 * half]).astype(int)
    x1, y1 = np.round(c + [1.4 * half, 0.9 * half]).astype(int)
    out = frame[max(y0, 0):y1, max(x0, 0):x1]
    return cv2.resize(out, (240, 154), interpolation=cv2.INTER_CUBIC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", type=Path, default=Path("out/mouth_donor.png"))
    args = ap.parse_args()
    with FaceLandmarker() as lm:
        rigs = {n: analyze_portrait(load(n).image, 512, load(n).framing, lm) for n in
                ("biden", "grace_hopper", "obama3", "obama", "astronaut")}
    rows = []
    for name in ("biden", "grace_hopper", "obama3"):
        rig = rigs[name]
        cells = [crop(rig, render(rig, OPEN))]
        cells += [crop(rig, render(with_donor(rig, rigs[d]), OPEN)) for d in ("obama", "astronaut")]
        rows.append(np.hstack(cells))
    args.o.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.o), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.o}: columns procedural | donor obama | donor astronaut")


if __name__ == "__main__":
    main()
