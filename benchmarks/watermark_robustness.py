"""Watermark cost and robustness: embed and detect time per frame, PSNR, detection (and payload)
rate versus H.264 CRF and scale, crops and JPEG quality, and false positives on unmarked input.

    python benchmarks/watermark_robustness.py                 # 512 px, 4 clips of 2 s
    python benchmarks/watermark_robustness.py --size 256 --clips 2 --quick

Clips: the astronaut portrait (face and full framings) animated by the bundled example line
with different seeds and 2 s windows, written as render_video writes them (CRF 18), then
decoded and transformed the way a platform would: scaled (INTER_AREA) and/or cropped, and
re-encoded with x264's default preset (medium) at a CRF; single frames saved as JPEG.
Unmarked controls: the same clips rendered with watermark=None through the same transforms,
skimage's photos at several sizes and crops, and noise. The detector reads 2 s per clip.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.face import analyze_portrait
from talkinghead.motion import motion_from_audio
from talkinghead.media import write_mp4
from talkinghead.motion.options import MotionOptions
from talkinghead.provenance import Payload, Watermarker, detect, operator_id
from talkinghead.provenance.watermark import threshold
from talkinghead.render import render_frames

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FPS = 30
SECONDS = 2.0
PAYLOAD = Payload(version="0.1.0", operator=operator_id("benchmark"))


def encode(frames: list[np.ndarray], crf: int, preset: str = "medium") -> list[np.ndarray]:
    """frames -> H.264 (yuv420p, BT.709, as render_video writes it) at `crf` -> decoded RGB frames."""
    h, w = (s - s % 2 for s in frames[0].shape[:2])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        write_mp4(path, (f[:h, :w] for f in frames), FPS, None, 0, crf=crf, preset=preset)
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def scale(frames: list[np.ndarray], factor: float) -> list[np.ndarray]:
    if factor == 1:
        return frames
    h, w = frames[0].shape[:2]
    size = (round(w * factor / 2) * 2, round(h * factor / 2) * 2)
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


def crop(frames: list[np.ndarray], share: float, seed: int) -> list[np.ndarray]:
    """Cut `share` of the width and height, unevenly split between the sides."""
    h, w = frames[0].shape[:2]
    rng = np.random.default_rng(seed)
    ch, cw = round(h * share), round(w * share)
    top, left = int(rng.integers(0, ch + 1)), int(rng.integers(0, cw + 1))
    return [f[top:top + h - ch, left:left + w - cw] for f in frames]


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def make_clips(size: int, n: int) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """n (marked, unmarked) pairs of 2 s clips, each already through render_video's CRF 18."""
    audio = load_audio(EXAMPLES / "hello.flac")
    text = (EXAMPLES / "hello.txt").read_text()
    rigs = [analyze_portrait(data.astronaut(), size, framing) for framing in ("face", "full")]
    clips = []
    for i in range(n):
        track = motion_from_audio(audio, SAMPLE_RATE, MotionOptions(fps=FPS, seed=i), text)
        start = (i * 37) % max(1, track.n_frames - int(SECONDS * FPS))
        pair = []
        for mark in (PAYLOAD, None):
            frames = render_frames(rigs[i % 2], track, watermark=mark)
            window = [f for k, f in enumerate(frames) if start <= k < start + SECONDS * FPS]
            pair.append(encode(window, 18, "veryfast"))
        clips.append(tuple(pair))
    return clips


def cost(size: int) -> None:
    cv2.setNumThreads(1)
    rig = analyze_portrait(data.astronaut(), size, "face")
    frames = [f for _, f in zip(range(30), render_frames(rig, motion_from_audio(
        load_audio(EXAMPLES / "hello.flac"), SAMPLE_RATE, MotionOptions(fps=FPS)), watermark=None))]
    wm = Watermarker(PAYLOAD)
    t = time.perf_counter()
    wm.offsets(*frames[0].shape[:2])
    build = time.perf_counter() - t
    reps = 200
    t = time.perf_counter()
    for k in range(reps):
        wm.mark(frames[k % len(frames)])
    embed = (time.perf_counter() - t) / reps
    marked = [wm.mark(f) for f in frames]
    p = [psnr(m, f) for m, f in zip(marked, frames)]
    grey = np.full_like(frames[0], 128)
    p_grey = psnr(wm.mark(grey), grey)
    t = time.perf_counter()
    detect(marked[0])
    one = time.perf_counter() - t
    t = time.perf_counter()
    detect(marked * 2)
    sixty = time.perf_counter() - t
    cv2.setNumThreads(-1)
    print(f"size {size}: pattern built once per size {1000 * build:.1f} ms; embed {1000 * embed:.3f} ms/frame "
          f"(one core); PSNR min {min(p):.2f} / mean {np.mean(p):.2f} dB, flat grey {p_grey:.2f} dB")
    print(f"detect: one image {1000 * one:.0f} ms, {len(marked) * 2} frames {1000 * sixty:.0f} ms "
          f"(threshold z at the median hypothesis count: {threshold(1136) / np.sqrt(1136 / 2):.2f})")


def robustness(size: int, n_clips: int, quick: bool) -> None:
    clips = make_clips(size, n_clips)
    crfs = (23, 28, 33) if quick else (18, 23, 28, 33, 38)
    scales = (1.0, 0.5) if quick else (1.0, 0.75, 0.5, 0.33)
    nulls = []

    def row(label: str, marked_sets, unmarked_sets) -> None:
        res = [detect(f) for f in marked_sets]
        null = [detect(f) for f in unmarked_sets]
        nulls.extend(null)
        det = np.mean([r.detected for r in res])
        pay = np.mean([r.payload == PAYLOAD for r in res])
        fp = sum(r.detected for r in null)
        print(f"{label:28s} detected {det:5.0%}  payload {pay:5.0%}  z min {min(r.z for r in res):5.1f} "
              f"mean {np.mean([r.z for r in res]):5.1f}   unmarked detected {fp}/{len(unmarked_sets)}")

    print(f"\nclips: {n_clips} x {SECONDS:g} s at {FPS} fps, {size} px; detection reads the whole 2 s\n")
    print("H.264 re-encode (x264 medium) after scaling:")
    for s in scales:
        for crf in crfs:
            row(f"  scale {s:4.2f}, CRF {crf}", [encode(scale(m, s), crf) for m, _ in clips],
                [encode(scale(u, s), crf) for _, u in clips])
    print("crop (uneven sides), then CRF 23:")
    for share in (0.1, 0.2, 0.3):
        row(f"  crop {share:.0%}", [encode(crop(m, share, i), 23) for i, (m, _) in enumerate(clips)],
            [encode(crop(u, share, i), 23) for i, (_, u) in enumerate(clips)])
    row("  crop 10% + scale 0.5, CRF 28", [encode(scale(crop(m, 0.1, i), 0.5), 28) for i, (m, _) in enumerate(clips)],
        [])
    print("one frame as JPEG (3 frames per clip):")
    for q in (90, 70, 50, 30):
        row(f"  JPEG quality {q}", [jpeg(m[k], q) for m, _ in clips for k in (0, 25, 50)],
            [jpeg(u[k], q) for _, u in clips for k in (0, 25, 50)])
    print("one frame as JPEG after scale 0.5:")
    row("  JPEG 70, scale 0.5", [jpeg(scale([m[10]], 0.5)[0], 70) for m, _ in clips], [])
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry(),
              np.dstack([data.camera()] * 3), np.dstack([data.moon()] * 3), data.retina()[::2, ::2]]
    rng = np.random.default_rng(0)
    for p in photos:
        for _ in range(4):
            h, w = p.shape[:2]
            ch, cw = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
            nulls.append(detect(np.ascontiguousarray(p[ch:, cw:])))
    for _ in range(8):
        nulls.append(detect(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)))
    z = np.array([r.z for r in nulls])
    print(f"\nunmarked inputs: {len(nulls)}, detected {sum(r.detected for r in nulls)}; z max {z.max():.2f}, "
          f"mean {z.mean():.2f} (threshold z {nulls[0].z_threshold:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="fewer CRFs and scales")
    args = ap.parse_args()
    cost(args.size)
    robustness(args.size, args.clips, args.quick)


if __name__ == "__main__":
    main()
