"""Closed-loop figures for the README: the real landmark model measures rendered frames.

    python benchmarks/render_closed_loop.py [--portrait photo.jpg] [--size 512]

Prints: measured jawOpen against commanded (Pearson r over a 0..0.8 sweep), measured eyeBlink
for a full blink, and measured head yaw/pitch/roll against commanded angles.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from talkinghead.arkit import pose_vector
from talkinghead.face import FaceLandmarker, analyze_portrait, load_portrait
from talkinghead.render import render
from talkinghead.track import FaceParams, HeadPose


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portrait", type=Path)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    image = load_portrait(args.portrait) if args.portrait else data.astronaut()
    with FaceLandmarker() as lm:
        rig = analyze_portrait(image, args.size, "face", lm)

        def shot(head=None, **w):
            return lm.detect(render(rig, FaceParams(0.0, pose_vector(w), head or HeadPose())))

        jaw = np.linspace(0, 0.8, 9)
        measured = [shot(jawOpen=j).blendshape("jawOpen") for j in jaw]
        print(f"jawOpen sweep 0..0.8: measured {np.round(measured, 2).tolist()}  r = {np.corrcoef(jaw, measured)[0, 1]:.3f}")
        b = shot(eyeBlinkLeft=1, eyeBlinkRight=1)
        print(f"full blink: measured eyeBlinkLeft {b.blendshape('eyeBlinkLeft'):.2f}, "
              f"eyeBlinkRight {b.blendshape('eyeBlinkRight'):.2f}")
        rest = np.array(shot().head_angles)
        print("head pose, commanded -> measured (yaw, pitch, roll) relative to the rest frame:")
        for axis, angle in [("yaw", 20), ("yaw", -20), ("yaw", 10), ("pitch", 15), ("pitch", -15), ("roll", 15)]:
            got = np.array(shot(HeadPose(**{axis: angle})).head_angles) - rest
            print(f"  {axis} {angle:+d}: {np.round(got, 1).tolist()}")


if __name__ == "__main__":
    main()
