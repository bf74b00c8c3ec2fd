"""Renderer speed: the cost of a whole frame (warp, eyes, lids, mouth) of the CPU renderer at 256,
512 and 1024 on ONE core, in ms and in remaps: one full-frame `cv2.remap` of the same size
(bilinear, float maps, 3-channel uint8: the cheapest thing a warp renderer could do) timed in the
same run, interleaved with the frames, so the ratio holds across machines and loads where the
milliseconds do not. Both are CPU time of this process (one thread: OpenCV's pool off; run with
OMP_NUM_THREADS=1), so work of other processes on the same core does not count. Then the wall time of a 60 s take from speech to a 512 px / 30 fps MP4.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/render_speed.py --render-only   # one core
    python benchmarks/render_speed.py --end-to-end                                    # the whole machine

The frames come from a real motion track (the bundled example line), so every blendshape, blink
and head move a take has is in them; `--reference` also times the reference path
(`Renderer(rig, exact=True)`, the renderer before the one-remap rewrite).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.face import analyze_portrait
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions
from talkinghead.render import Renderer, render_video

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROUNDS = 5


def remap_seconds(image: np.ndarray, n: int = 50) -> float:
    """One full-frame bilinear cv2.remap of `image` (a small sub-pixel shift), CPU seconds."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    mx, my = xs + 0.3, ys + 0.2
    t = time.process_time()
    for _ in range(n):
        cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (time.process_time() - t) / n


def frame_seconds(renderer: Renderer, params: list) -> float:
    """CPU seconds a frame: on one thread (OpenCV's and numpy's pools off), the CPU time this
    process spent, not the wall time, which on a shared machine also counts others' turns."""
    t = time.process_time()
    for p in params:
        renderer.render(p)
    return (time.process_time() - t) / len(params)


def render_only(n_frames: int, reference: bool, sizes=(256, 512, 1024)) -> None:
    cv2.setNumThreads(1)          # one core: OpenCV's own thread pool off
    audio = load_audio(EXAMPLES / "hello.flac")
    track = motion_from_audio(audio, SAMPLE_RATE, MotionOptions(fps=30), (EXAMPLES / "hello.txt").read_text())
    params = [track.frame(i % track.n_frames) for i in range(n_frames)]
    photo512 = np.ascontiguousarray(cv2.resize(data.astronaut(), (512, 512), interpolation=cv2.INTER_AREA))
    print(f"{ROUNDS} rounds of {n_frames} frames, each beside 50 full-frame remaps of 512 x 512 and of the size; medians")
    print(f"{'size':>6} {'frame ms':>9} {'fps':>6} {'512² remap ms':>14} {'frame/512² remap':>17} {'frame/remap of size':>20}"
          + (f" {'reference ms':>13} {'/512² remap':>12}" if reference else ""))
    for size in sizes:
        rig = analyze_portrait(data.astronaut(), size, "face")
        fast, exact = Renderer(rig), Renderer(rig, exact=True)
        for p in params[:20]:
            fast.render(p)                                   # warm caches
        rows = []
        for _ in range(ROUNDS):
            r512, rsize = remap_seconds(photo512), remap_seconds(rig.image)
            rows.append((r512, rsize, frame_seconds(fast, params), frame_seconds(exact, params) if reference else 0.0))
        r512, rsize, fr, ex = (np.array(c) for c in zip(*rows))
        line = (f"{size:>6} {1000 * np.median(fr):>9.2f} {1 / np.median(fr):>6.0f} {1000 * np.median(r512):>14.2f}"
                f" {np.median(fr / r512):>17.2f} {np.median(fr / rsize):>20.2f}")
        if reference:
            line += f" {1000 * np.median(ex):>13.2f} {np.median(ex / r512):>12.2f}"
        print(line, flush=True)


def end_to_end(seconds: float) -> None:
    line = load_audio(EXAMPLES / "hello.flac")
    text = (EXAMPLES / "hello.txt").read_text()
    pause = np.random.default_rng(0).normal(0, 3e-4, SAMPLE_RATE // 2).astype(np.float32)
    reps = int(seconds * SAMPLE_RATE // (len(line) + len(pause)))
    audio = np.concatenate([np.concatenate([line, pause])] * reps)
    tail = np.random.default_rng(1).normal(0, 3e-4, int(seconds * SAMPLE_RATE) - len(audio)).astype(np.float32)
    audio = np.concatenate([audio, tail])        # whole lines only, so the transcript fits
    t0 = time.perf_counter()
    rig = analyze_portrait(data.astronaut(), 512, "face")
    t1 = time.perf_counter()
    track = motion_from_audio(audio, SAMPLE_RATE, MotionOptions(fps=30), " ".join([text] * reps))
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        info = render_video(rig, track, audio, SAMPLE_RATE, Path(tmp) / "take.mp4")
        size_mb = os.path.getsize(Path(tmp) / "take.mp4") / 1e6
    t3 = time.perf_counter()
    print(f"{seconds:.0f} s of speech -> {info.n_frames} frames 512x512 @ 30 fps, {size_mb:.1f} MB")
    print(f"  portrait {t1 - t0:.1f} s, motion {t2 - t1:.1f} s, render + encode {t3 - t2:.1f} s; "
          f"total {t3 - t0:.1f} s on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--end-to-end", action="store_true")
    ap.add_argument("--frames", type=int, default=259)
    ap.add_argument("--reference", action="store_true", help="also time the reference renderer")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    if args.render_only or not args.end_to_end:
        render_only(args.frames, args.reference, args.sizes)
    if args.end_to_end or not args.render_only:
        end_to_end(args.seconds)


if __name__ == "__main__":
    main()
