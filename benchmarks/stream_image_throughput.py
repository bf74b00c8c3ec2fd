"""Stream images per second, the server's way of making them, without gRPC: 512 px JPEG frames
(rendered, watermarked, encoded) of `--streams` concurrent streams, each with one frame in
flight as a Stream has, made by the server's image processes (`server/images.py`, N of them)
or by N threads of a pool (`serve --image-processes 0`: they share the GIL).

    python benchmarks/stream_image_throughput.py [--workers 1 2] [--streams 8] [--frames 150]

Frames per second, and streams kept at 30 fps (fps / 30). Run it on an idle machine: it uses
as many cores as it has workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
from skimage import data

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.face import analyze_portrait
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions
from talkinghead.render.frames import FrameMaker, ImageOptions
from talkinghead.server.images import ImageProcesses

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


async def rate(image, params, streams: int, frames: int) -> float:
    """Frames per second of `streams` loops, each awaiting `image(params)` frame after frame."""
    async def one(k: int) -> None:
        for i in range(frames // streams):
            await image(params[(k * 7 + i) % len(params)])

    await image(params[0])                       # warm: the rig reaches the workers
    t = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(streams)))
    return streams * (frames // streams) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    audio = load_audio(EXAMPLES / "hello.flac")
    track = motion_from_audio(audio, SAMPLE_RATE, MotionOptions(fps=30), (EXAMPLES / "hello.txt").read_text())
    params = [track.frame(i) for i in range(track.n_frames)]
    rig = analyze_portrait(data.astronaut(), 512, "face")
    options = ImageOptions()
    print(f"{os.cpu_count()} cores; {args.streams} streams, one 512 px JPEG frame in flight each, {args.frames} frames")
    print(f"{'workers':>8} {'processes fps':>14} {'streams':>8} {'threads fps':>12} {'streams':>8}")
    for n in args.workers:
        async def with_processes() -> float:
            images = ImageProcesses(n)
            try:
                await images.ready()
                return await rate(lambda p: images.image(rig, p, options), params, args.streams, args.frames)
            finally:
                images.close()

        async def with_threads() -> float:
            maker, pool = FrameMaker("cpu"), ThreadPoolExecutor(n)
            loop = asyncio.get_running_loop()
            try:
                return await rate(lambda p: loop.run_in_executor(pool, lambda: maker.images(rig, [p], options)[0]),
                                  params, args.streams, args.frames)
            finally:
                pool.shutdown()

        procs, threads = asyncio.run(with_processes()), asyncio.run(with_threads())
        print(f"{n:>8} {procs:>14.0f} {procs / 30:>8.1f} {threads:>12.0f} {threads / 30:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
