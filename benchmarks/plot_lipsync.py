"""Plot mouth opening and rounding against the audio envelope and festival's true phones.

    pip install matplotlib
    python benchmarks/plot_lipsync.py "Bob bought a big map." --voice kal_diphone -o lipsync.png [--no-text]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from speech import FESTIVAL_BILABIALS, festival_say  # noqa: E402

from talkinghead.audio.decode import load_audio  # noqa: E402
from talkinghead.motion import motion_from_audio  # noqa: E402
from talkinghead.motion.options import MotionOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("--voice", default="kal_diphone")
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--no-text", action="store_true", help="do not give the transcript (recognise phones)")
    ap.add_argument("-o", "--output", type=Path, default=Path("lipsync.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        segs = festival_say(args.text, args.voice, Path(tmp) / "a.wav")
        x = load_audio(Path(tmp) / "a.wav")
    track = motion_from_audio(x, 16000, MotionOptions(fps=args.fps), None if args.no_text else args.text)
    t = track.times
    hop = 160
    env = np.sqrt(np.convolve(x ** 2, np.ones(hop) / hop, mode="same"))[::hop]
    fig, axes = plt.subplots(3, 1, figsize=(16, 8), sharex=True)
    axes[0].plot(np.arange(len(env)) * 0.01, env / env.max(), color="gray", label="audio envelope")
    axes[0].step(t, track.channel("jawOpen") - track.channel("mouthClose"), where="mid", label="aperture jawOpen-mouthClose")
    axes[0].step(t, track.channel("jawOpen"), where="mid", alpha=0.5, label="jawOpen")
    axes[1].step(t, track.channel("mouthPucker") + track.channel("mouthFunnel"), where="mid", label="pucker+funnel")
    axes[1].step(t, track.channel("mouthRollLower"), where="mid", label="rollLower (f/v)")
    axes[1].step(t, track.channel("mouthPressLeft"), where="mid", label="press")
    axes[2].step(t, track.channel("eyeBlinkLeft"), where="mid", label="blink")
    axes[2].step(t, track.channel("browInnerUp"), where="mid", label="browInnerUp")
    axes[2].plot(t, track.head[:, 1] / 10, label="head pitch/10 deg")
    axes[2].plot(t, track.head[:, 0] / 10, label="head yaw/10 deg")
    for s in segs:
        for ax in axes[:2]:
            ax.axvline(s.start, color="k", lw=0.3)
        col = "red" if s.phone in FESTIVAL_BILABIALS else "black"
        axes[0].text((s.start + s.end) / 2, 1.02, s.phone, ha="center", fontsize=8, color=col)
        if s.phone in FESTIVAL_BILABIALS:
            axes[0].axvspan(s.start - 0.04, s.end + 0.04, color="red", alpha=0.1)
    for i, v in enumerate(track.visemes):
        axes[1].text(t[i], -0.08, v, fontsize=5, ha="center", rotation=90)
    for ax in axes:
        ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
