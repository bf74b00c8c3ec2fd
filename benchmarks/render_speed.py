"""Renderer speed: frames per second of the CPU renderer alone at 256, 512 and 1024 on ONE core,
and the wall time of a 60 s take from speech to a 512 px / 30 fps MP4 end to end.

    taskset -c 0 python benchmarks/render_speed.py --render-only     # one core
    python benchmarks/render_speed.py --end-to-end                   # the whole machine

The frames come from a real motion track (the bundled example line, looped), so every
blendshape, blink and head move a take has is in them.
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
from talkinghead.render import render, render_video
from talkinghead.render.cpu import backward_map, landmark_displacement

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def render_only(n_frames: int) -> None:
    cv2.setNumThreads(1)          # one core: OpenCV's own thread pool off
    audio = load_audio(EXAMPLES / "hello.flac")
    track = motion_from_audio(audio, SAMPLE_RATE, MotionOptions(fps=30), (EXAMPLES / "hello.txt").read_text())
    params = [track.frame(i % track.n_frames) for i in range(n_frames)]
    print(f"{'size':>6} {'warp fps':>9} {'full fps':>9} {'ms/frame':>9}")
    for size in (256, 512, 1024):
        rig = analyze_portrait(data.astronaut(), size, "face")
        for p in params[:20]:
            render(rig, p)                                   # warm caches
        t = time.perf_counter()
        for p in params:
            mx, my = backward_map(rig, p, landmark_displacement(rig, np.asarray(p.blendshapes, np.float32)))
            cv2.remap(rig.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warp = len(params) / (time.perf_counter() - t)
        t = time.perf_counter()
        for p in params:
            render(rig, p)
        full_s = time.perf_counter() - t
        print(f"{size:>6} {warp:>9.0f} {len(params) / full_s:>9.0f} {1000 * full_s / len(params):>9.2f}")


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
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    if args.render_only or not args.end_to_end:
        render_only(args.frames)
    if args.end_to_end or not args.render_only:
        end_to_end(args.seconds)


if __name__ == "__main__":
    main()
