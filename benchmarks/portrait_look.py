"""Every test portrait (tests/portraits.py) rendered in the telling poses and measured: the
mouth's look (tests/appearance.py) and the closed loop with the real landmark model.

    python benchmarks/portrait_look.py [--size 512] [--out out/look] [--gallery docs/gallery.png]

Prints per portrait: dark (darkest fifth of the interior's L* / lips' median L*, open vowel),
off-colour share, teeth and sclera L* (whites: what synthesized teeth may reach), shimmer, measured blink (both eyes), jawOpen r, yaw and
pitch errors. Writes per portrait a sheet (rest, open vowel, rounded, p/b/m, blink, turned head)
and its mouths cropped at 1x and 3x into --out, and with --gallery all sheets as one PNG.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from appearance import mouth_look, shimmer, teeth_reference  # noqa: E402
from portraits import NAMES, load  # noqa: E402

from talkinghead.arkit import pose_vector  # noqa: E402
from talkinghead.face import FaceLandmarker, analyze_portrait  # noqa: E402
from talkinghead.media import write_contact_sheet  # noqa: E402
from talkinghead.motion.visemes import POSES, VISEMES  # noqa: E402
from talkinghead.provenance import mark  # noqa: E402
from talkinghead.render import render  # noqa: E402
from talkinghead.track import FaceParams, HeadPose  # noqa: E402

OPEN = POSES[VISEMES.index("aa")]
SHOTS = {   # label -> (blendshapes, head)
    "rest": (np.zeros(52, np.float32), HeadPose()),
    "open vowel": (OPEN, HeadPose()),
    "rounded": (POSES[VISEMES.index("O")], HeadPose()),
    "p/b/m": (POSES[VISEMES.index("PP")], HeadPose()),
    "blink": (pose_vector({"eyeBlinkLeft": 1, "eyeBlinkRight": 1}), HeadPose()),
    "turned": (POSES[VISEMES.index("E")], HeadPose(yaw=15, pitch=-5)),
}


def shot(rig, weights, head=HeadPose()):
    return render(rig, FaceParams(0.0, np.asarray(weights, np.float32), head))


def closed_loop(rig, lm) -> dict[str, float]:
    jaw = np.linspace(0, 0.8, 9)
    measured = [lm.detect(shot(rig, pose_vector({"jawOpen": j}))).blendshape("jawOpen") for j in jaw]
    rest = lm.detect(shot(rig, np.zeros(52)))
    b = lm.detect(shot(rig, SHOTS["blink"][0]))
    out = {"jaw_r": float(np.corrcoef(jaw, measured)[0, 1]),
           "blink_l": b.blendshape("eyeBlinkLeft"), "blink_r": b.blendshape("eyeBlinkRight")}
    errs = []
    for axis, angle in (("yaw", 15), ("yaw", -15), ("pitch", 10), ("pitch", -10)):
        turned = lm.detect(shot(rig, np.zeros(52), HeadPose(**{axis: angle})))
        d = dict(zip(("yaw", "pitch"), np.array(turned.head_angles[:2]) - rest.head_angles[:2]))
        errs.append(d[axis] - angle)
    out["pose_err"] = float(np.max(np.abs(errs)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path("out/look"))
    ap.add_argument("--gallery", type=Path)
    ap.add_argument("--only", nargs="*", default=list(NAMES))
    ap.add_argument("--no-loop", action="store_true", help="skip the closed-loop figures (faster)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, labels = [], []
    with FaceLandmarker() as lm:
        for name in args.only:
            p = load(name)
            rig = analyze_portrait(p.image, args.size, p.framing, lm)
            frames = {k: shot(rig, w, h) for k, (w, h) in SHOTS.items()}
            opened = frames["open vowel"]
            face = lm.detect(opened)
            look = mouth_look(opened, face.landmarks)
            rest_look = mouth_look(frames["rest"], lm.detect(frames["rest"]).landmarks)
            steady = shot(rig, OPEN + pose_vector({"jawOpen": 0.01}))
            look["shimmer"] = shimmer(opened, steady, face.landmarks)
            look["whites"] = teeth_reference(opened, face.landmarks)
            loop = {} if args.no_loop else closed_loop(rig, lm)
            figs = " ".join(f"{k} {v:.3f}" for k, v in {**look, **loop}.items())
            print(f"{name:13s} photo_interior={rig.mouth.photo_interior!s:5s} {figs}  (rest: dark {rest_look['dark']:.2f})",
                  flush=True)
            rows += [mark(f) for f in frames.values()]     # marked, as every output is
            labels += [f"{name} {k}" for k in frames]
            write_contact_sheet(list(frames.values()), list(frames), args.out / f"{name}.png", columns=6, cell=256)
            x0, y0 = np.floor(face.landmarks[[61, 0], :2].min(0) - [0.3 * (face.landmarks[291, 0] - face.landmarks[61, 0]), 25]).astype(int)
            crops = []
            for k in ("open vowel", "rounded", "p/b/m", "turned"):
                f = frames[k]
                c = f[max(y0, 0):max(y0, 0) + 90 * args.size // 512, max(x0, 0):max(x0, 0) + 150 * args.size // 512]
                crops.append(cv2.resize(c, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST))
            h = min(c.shape[0] for c in crops)
            cv2.imwrite(str(args.out / f"{name}_mouth_x3.png"), cv2.cvtColor(np.hstack([c[:h] for c in crops]), cv2.COLOR_RGB2BGR))
            eyes = frames["blink"]
            e = lm.detect(frames["rest"]).landmarks
            ex0, ey0 = np.floor(e[[33, 263], :2].min(0)).astype(int) - [40 * args.size // 512, 40 * args.size // 512]
            ec = eyes[max(ey0, 0):max(ey0, 0) + 80 * args.size // 512, max(ex0, 0):int(e[263, 0]) + 40 * args.size // 512]
            cv2.imwrite(str(args.out / f"{name}_blink_x3.png"),
                        cv2.cvtColor(cv2.resize(ec, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST), cv2.COLOR_RGB2BGR))
    if args.gallery:
        args.gallery.parent.mkdir(parents=True, exist_ok=True)
        write_contact_sheet(rows, labels, args.gallery, columns=len(SHOTS), cell=200)
        print(f"wrote {args.gallery}")


if __name__ == "__main__":
    main()
