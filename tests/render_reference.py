"""The frames the renderer is held to: the telling poses and a spoken take, per portrait.

`tests/test_render_equivalence.py` renders them with the fast renderer and with its reference
path (`Renderer(rig, exact=True)`). To compare a renderer with another commit's, write that
commit's frames first (`git stash; python tests/render_reference.py make out/ref; git stash pop`),
then `python tests/render_reference.py compare out/ref`: per portrait, its rig (pickled, so both
sides animate the same landmarks) and the frames of `poses()` and of the first TAKE_FRAMES of
`take()`, each rendered by a fresh renderer.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
SIZE = 512
TAKE_FRAMES = 60          # the first 2 s of the example line at 30 fps (speech from ~0.3 s)


def poses() -> dict[str, tuple[np.ndarray, object]]:
    """label -> (blendshapes, head): the telling poses (the gallery's) and the extremes."""
    from talkinghead.arkit import pose_vector
    from talkinghead.motion.visemes import POSES, VISEMES
    from talkinghead.track import HeadPose

    v = lambda name: POSES[VISEMES.index(name)].astype(np.float32)   # noqa: E731
    return {
        "rest": (np.zeros(52, np.float32), HeadPose()),
        "open vowel": (v("aa"), HeadPose()),
        "rounded": (v("O"), HeadPose()),
        "p/b/m": (v("PP"), HeadPose()),
        "blink": (pose_vector({"eyeBlinkLeft": 1, "eyeBlinkRight": 1}), HeadPose()),
        "half blink": (pose_vector({"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.6}), HeadPose(yaw=4)),
        "turned": (v("E"), HeadPose(yaw=15, pitch=-5)),
        "turned far": (v("aa"), HeadPose(yaw=-25, pitch=10, roll=8)),
        "moved": (pose_vector({"jawOpen": 0.6, "mouthSmileLeft": 0.7, "browInnerUp": 1}),
                  HeadPose(roll=-12, x=10, y=-6, z=30)),
        "gaze": (pose_vector({"eyeLookOutLeft": 1, "eyeLookInRight": 1, "eyeLookUpLeft": 0.5, "eyeLookUpRight": 0.5}),
                 HeadPose(yaw=-6)),
    }


def take(fps: float = 30):
    """The example line's motion track (the default options, seed 0)."""
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.motion import motion_from_audio
    from talkinghead.motion.options import MotionOptions

    audio = load_audio(EXAMPLES / "hello.flac")
    return motion_from_audio(audio, SAMPLE_RATE, MotionOptions(fps=fps), (EXAMPLES / "hello.txt").read_text())


def make(out: Path, names: list[str]) -> None:
    from portraits import load

    from talkinghead.face import FaceLandmarker, analyze_portrait
    from talkinghead.render import render
    from talkinghead.track import FaceParams

    out.mkdir(parents=True, exist_ok=True)
    track = take()
    with FaceLandmarker() as lm:
        for name in names:
            p = load(name)
            rig = analyze_portrait(p.image, SIZE, p.framing, lm)
            (out / f"{name}.rig.pkl").write_bytes(pickle.dumps(rig))
            frames = {k: render(rig, FaceParams(0.0, w, h)) for k, (w, h) in poses().items()}
            seq = [render(rig, track.frame(i)) for i in range(TAKE_FRAMES)]
            np.savez_compressed(out / f"{name}.npz", labels=np.array(list(frames)),
                                poses=np.stack(list(frames.values())), take=np.stack(seq))
            print(name, "written", flush=True)


def differences(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """(mean absolute difference in levels, share of values more than 2 levels apart, largest)."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), float((d > 2).mean()), int(d.max())


def compare(ref: Path, names: list[str]) -> None:
    from talkinghead.render.cpu import Renderer
    from talkinghead.track import FaceParams

    track = take()
    for name in names:
        rig = pickle.loads((ref / f"{name}.rig.pkl").read_bytes())
        z = np.load(ref / f"{name}.npz")
        r = Renderer(rig)
        for label, (w, h), old in zip(z["labels"], poses().values(), z["poses"]):
            mean, off, top = differences(r.render(FaceParams(0.0, w, h)), old)
            print(f"{name:13s} {label:11s} mean {mean:.3f}  >2 levels {100 * off:.3f} %  max {top}")
        worst = np.max([differences(r.render(track.frame(i)), z["take"][i])[:2] for i in range(TAKE_FRAMES)], 0)
        print(f"{name:13s} take        mean {worst[0]:.3f}  >2 levels {100 * worst[1]:.3f} %  (worst frame)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "compare"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--names", nargs="*")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from portraits import NAMES

    (make if args.cmd == "make" else compare)(args.out, args.names or list(NAMES))


if __name__ == "__main__":
    main()
