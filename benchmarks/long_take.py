"""Time and peak memory for one long take (the bundled example repeated with pauses).

    python benchmarks/long_take.py --minutes 10 [--transcript]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--transcript", action="store_true")
    args = ap.parse_args()
    line = load_audio(EXAMPLES / "hello.flac")
    text = (EXAMPLES / "hello.txt").read_text()
    pause = np.random.default_rng(0).normal(0, 3e-4, SAMPLE_RATE).astype(np.float32)
    reps = int(np.ceil(args.minutes * 60 * SAMPLE_RATE / (len(line) + len(pause))))
    samples = np.tile(np.concatenate([line, pause]), reps)
    t0 = time.perf_counter()
    c0 = time.process_time()
    track = motion_from_audio(samples, SAMPLE_RATE, MotionOptions(), " ".join([text] * reps) if args.transcript else None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{track.duration / 60:.1f} min of audio, {'transcript' if args.transcript else 'audio only'}: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU ({cpu / track.duration:.3f} s per second of audio), peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
