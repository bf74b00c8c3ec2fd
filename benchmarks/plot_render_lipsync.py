"""Closed loop, to look at: render a festival sentence on a portrait, measure the mouth opening
in every rendered frame with the landmark model, and plot it against the commanded jawOpen, the
audio envelope and festival's true phones (p/b/m shaded).

    python benchmarks/plot_render_lipsync.py "Bob bought a map of the big palm park." -o render_lipsync.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from speech import FESTIVAL_BILABIALS, festival_say  # noqa: E402

from talkinghead.audio.decode import SAMPLE_RATE, load_audio  # noqa: E402
from talkinghead.face import FaceLandmarker, analyze_portrait, load_portrait  # noqa: E402
from talkinghead.motion import motion_from_audio  # noqa: E402
from talkinghead.motion.options import MotionOptions  # noqa: E402
from talkinghead.render import render_frames  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("--voice", default="kal_diphone")
    ap.add_argument("--portrait", type=Path, help="default: skimage's astronaut")
    ap.add_argument("-o", "--output", type=Path, default=Path("render_lipsync.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        segs = festival_say(args.text, args.voice, Path(tmp) / "a.wav", pad=0.3)
        x = load_audio(Path(tmp) / "a.wav")
    track = motion_from_audio(x, SAMPLE_RATE, MotionOptions(fps=30), args.text)
    image = load_portrait(args.portrait) if args.portrait else data.astronaut()
    with FaceLandmarker() as lm:
        rig = analyze_portrait(image, 512, "face", lm)
        gaps = []
        for f in render_frames(rig, track):
            face = lm.detect(f)
            p = face.landmarks
            gaps.append(np.hypot(*(p[14, :2] - p[13, :2])) / np.hypot(*(p[263, :2] - p[33, :2])))
    t = track.times
    hop = SAMPLE_RATE // 100
    env = np.sqrt(np.convolve(x**2, np.ones(hop) / hop, "same"))[::hop]
    fig, ax = plt.subplots(figsize=(14, 4))
    ax.plot(np.arange(len(env)) / 100, env / env.max(), color="0.7", label="audio envelope")
    ax.plot(t, track.channel("jawOpen"), label="commanded jawOpen")
    ax.plot(t, np.array(gaps) / max(gaps), label="measured lip gap (landmark model, normalised)")
    for s in segs:
        if s.phone in FESTIVAL_BILABIALS:
            ax.axvspan(s.start, s.end, color="tab:red", alpha=0.15)
        if s.phone not in ("pau",):
            ax.text((s.start + s.end) / 2, 1.02, s.phone, ha="center", fontsize=7)
    ax.set_xlabel("seconds")
    ax.legend(loc="upper right")
    ax.set_title(f"{args.text}  (p/b/m shaded)")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
