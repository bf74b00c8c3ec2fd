"""Draw a schematic face for frames of a take, as a contact sheet PNG, to look at the motion.

    pip install matplotlib
    python benchmarks/contact_sheet.py out/hello.json -o sheet.png [--start 1.0 --every 2 --count 48]

Lid closure from eyeBlink, pupils from gaze, brows from browInnerUp/OuterUp/Down, the mouth from
jawOpen - mouthClose (opening), stretch/smile/pucker (width), smile/frown (corners), and the head
from yaw/pitch (shift) and roll (tilt). Each cell is labelled with time and viseme.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse, Polygon  # noqa: E402
from matplotlib.transforms import Affine2D  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from talkinghead.exports.json_track import read_json  # noqa: E402


def draw_face(ax, f) -> None:
    b = f.blendshape
    tr = Affine2D().rotate_deg(-f.head.roll).translate(-f.head.yaw * 0.02, f.head.pitch * 0.02) + ax.transData
    ax.add_patch(Ellipse((0, 0), 2.0, 2.6, fc="#f3d3b5", ec="k", transform=tr))
    for side, sx, gaze in (("Left", 1, f.gaze_left), ("Right", -1, f.gaze_right)):
        # subject's left eye is on the viewer's right
        ex, ey = 0.42 * sx, 0.3
        lid = b(f"eyeBlink{side}")
        wide = b(f"eyeWide{side}")
        h = 0.28 * (1 - lid) * (1 + 0.4 * wide) + 0.01
        ax.add_patch(Ellipse((ex, ey), 0.38, h, fc="white", ec="k", transform=tr))
        if lid < 0.7:
            px = ex - np.sin(np.radians(gaze.yaw)) * 0.35 * sx * sx
            py = ey + np.sin(np.radians(gaze.pitch)) * 0.3
            ax.add_patch(Ellipse((px, py), 0.12, min(0.12, h), fc="#333", transform=tr))
        inner = b("browInnerUp") - b(f"browDown{side}")
        outer = b(f"browOuterUp{side}") - b(f"browDown{side}")
        ax.plot([ex - 0.2 * sx, ex + 0.2 * sx], [0.52 + 0.25 * inner, 0.52 + 0.25 * outer], "k-", lw=2, transform=tr)
    opening = max(0.0, b("jawOpen") - b("mouthClose"))
    width = 0.7 * (1 + 0.5 * (b("mouthStretchLeft") + b("mouthSmileLeft")) - 0.55 * b("mouthPucker"))
    corner = 0.12 * (b("mouthSmileLeft") - b("mouthFrownLeft"))
    jaw = -0.65 - 0.35 * b("jawOpen")
    top = jaw + 0.5 * opening * 0.7
    bottom = jaw - 0.5 * opening * 0.7
    lip = Polygon([(-width / 2, jaw + corner), (0, top + 0.04), (width / 2, jaw + corner), (0, bottom - 0.04)],
                  closed=True, fc="#b5475b", ec="k", transform=tr)
    ax.add_patch(lip)
    if opening > 0.02:
        ax.add_patch(Polygon([(-width / 2 + 0.05, jaw + corner), (0, top), (width / 2 - 0.05, jaw + corner), (0, bottom)],
                             closed=True, fc="#3a0d12", transform=tr))
    if b("mouthRollLower") > 0.3:
        ax.plot([-0.2, 0.2], [jaw + 0.02, jaw + 0.02], color="white", lw=2, transform=tr)  # teeth on lip
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{f.t:.2f}s {f.viseme}", fontsize=8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("take", type=Path)
    ap.add_argument("-o", "--output", type=Path, default=Path("sheet.png"))
    ap.add_argument("--start", type=float, default=0.0, help="first frame time (s)")
    ap.add_argument("--every", type=int, default=1, help="take every Nth frame")
    ap.add_argument("--count", type=int, default=48)
    args = ap.parse_args()
    track = read_json(args.take)
    first = int(args.start * track.fps)
    idx = list(range(first, track.n_frames, args.every))[: args.count]
    cols = 12
    rows = int(np.ceil(len(idx) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.6))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), idx):
        draw_face(ax, track.frame(i))
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
