"""Torch renderer speed: frames per second of `TorchRenderer.render_batch` at 256, 512 and 1024
for batches of 1, 8 and 32 frames, the warp alone and with the eye and mouth layers (drawn on
the CPU), on the device `pick_backend("torch")` chooses (a CUDA GPU, else torch's CPU), beside
the CPU renderer (numpy + OpenCV) on the same frames; and the same batches with their frames
from `--rigs` different avatars (what the server's concurrent streams send to the device as one
batch: `torch_backend.render_across`).

    python benchmarks/render_torch_speed.py [--device cuda] [--frames 32] [--rigs 4]

It also prints how far the torch frames are from the CPU renderer's on the same frames: mean
absolute difference, 99.9th percentile and max (levels of 0..255), and the share of values that
differ at all.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage import data
from talkinghead.arkit import BS
from talkinghead.face import analyze_portrait
from talkinghead.render import Renderer
from talkinghead.render.device import pick_backend
from talkinghead.render.torch_backend import TorchRenderer, render_across
from talkinghead.track import FaceParams, HeadPose


def speech_like_frames(n: int, seed: int = 0) -> list[FaceParams]:
    """Frames that keep every layer busy: the jaw and lips moving, blinks, a moving head."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        w = np.zeros(52, np.float32)
        w[BS["jawOpen"]] = rng.uniform(0, 0.6)
        w[BS["mouthSmileLeft"]] = w[BS["mouthSmileRight"]] = rng.uniform(0, 0.4)
        w[BS["eyeBlinkLeft"]] = w[BS["eyeBlinkRight"]] = 1.0 if i % 10 == 0 else 0.0
        w[BS["browInnerUp"]] = rng.uniform(0, 0.5)
        head = HeadPose(*rng.uniform(-8, 8, 3), *rng.uniform(-3, 3, 3))
        frames.append(FaceParams(i / 30, w, head))
    return frames


def fps(fn, frames: list[FaceParams], batch: int, repeats: int = 3) -> float:
    """Best of `repeats` passes over `frames` in batches (the best: the least disturbed by
    whatever else the machine does), after a warm-up (allocations, kernels, thread pools)."""
    fn(frames[:batch])
    fn(frames[:batch])
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(frames), batch):
            fn(frames[i:i + batch])
        best = max(best, len(frames) / (time.perf_counter() - t0))
    return best


def measure(size: int, device: str, batches: list[int], n_frames: int, n_rigs: int) -> None:
    """One row per batch size: warp fps, warp + layers fps, the same with each batch's frames
    from `n_rigs` avatars in turn (concurrent streams of different faces, as the server batches
    them: `render_across`), the CPU renderer's fps."""
    rig = analyze_portrait(data.astronaut(), size, "face")
    renderer, cpu = TorchRenderer(rig, device), Renderer(rig)
    photo = data.astronaut()
    others = [TorchRenderer(analyze_portrait(np.ascontiguousarray(np.roll(photo[:, ::(-1) ** k], 8 * k, 1)), size, "face"),
                            device) for k in range(1, n_rigs)]
    avatars = [renderer] + others
    frames = speech_like_frames(n_frames)
    reference = fps(lambda ps: [cpu.render(p) for p in ps], frames[:16], 1)
    got = renderer.render_batch(frames).astype(int)
    want = np.stack([cpu.render(p) for p in frames]).astype(int)
    diff = np.abs(got - want)
    print(f"{size:>5}  difference from the CPU renderer over {len(frames)} frames: mean {diff.mean():.4f}, "
          f"p99.9 {np.percentile(diff, 99.9):.0f}, max {diff.max()}, values differing {np.mean(diff > 0):.3%}")
    for batch in batches:
        warp = fps(lambda ps: renderer.render_batch(ps, composite=False), frames, batch)
        full = fps(renderer.render_batch, frames, batch)
        mixed = fps(lambda ps: render_across([(avatars[i % len(avatars)], p) for i, p in enumerate(ps)]), frames, batch)
        print(f"{size:>5} {batch:>5} {warp:>8.1f} {full:>8.1f} {mixed:>8.1f} {reference:>8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--frames", type=int, default=32, help="frames per timed pass, best of 3 (default 32)")
    ap.add_argument("--rigs", type=int, default=4, help="avatars the mixed batches take their frames from (default 4)")
    args = ap.parse_args()
    device = args.device or pick_backend("torch")[1]
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device} ({name}); frames per second, best of 3 passes of {args.frames} frames")
    print(f"{'size':>5} {'batch':>5} {'warp':>8} {'+layers':>8} {'mixed':>8} {'cv2 cpu':>8}   "
          f"(mixed: each batch's frames from {args.rigs} avatars, as a server's concurrent streams)")
    for size in args.sizes:
        measure(size, device, args.batches, args.frames, args.rigs)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
