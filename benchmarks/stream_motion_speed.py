"""Streaming motion cost: CPU seconds per second of audio for 20, 100 and 500 ms chunks, the time one
push takes (the server answers a chunk within 150 ms), and idle frames per CPU second.

    taskset -c 0 python benchmarks/stream_motion_speed.py [--seconds 60] [--parts]

The audio is the bundled example line looped with 1 s of room tone between lines, pushed as a TTS
engine would send it; the offline acoustic stage on the same audio is the reference.

--parts: where a 100 ms push's time goes instead, wall ms per push of each stage (the stages are
timed by wrapping them; nested ones are indented and included in the one above).

--together N [N ...]: N streams taking turns, each pushing its next 100 ms chunk, as a server's
streams do: CPU ms per push when each pushes alone and when the N chunks of a turn are pushed
together (motion.stream.push_together: one phone-model call; what server/pushes.py does with the
chunks of an event-loop turn).
"""

from __future__ import annotations

import argparse
import collections
import functools
import time
from pathlib import Path

import numpy as np

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions
from talkinghead.motion.stream import LOOKAHEAD_S, MotionStream, push_together

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def speech(seconds: float) -> np.ndarray:
    line = load_audio(EXAMPLES / "hello.flac")
    pause = np.random.default_rng(0).normal(0, 3e-4, SAMPLE_RATE).astype(np.float32)
    reps = int(np.ceil(seconds * SAMPLE_RATE / (len(line) + len(pause))))
    return np.tile(np.concatenate([line, pause]), reps)[: int(seconds * SAMPLE_RATE)]


def stream_cost(samples: np.ndarray, chunk_ms: int) -> dict[str, float]:
    step = chunk_ms * SAMPLE_RATE // 1000
    stream = MotionStream()
    walls = []
    c0 = time.process_time()
    for i in range(0, len(samples), step):
        t0 = time.perf_counter()
        stream.push(samples[i: i + step])
        walls.append(time.perf_counter() - t0)
    stream.flush()
    cpu = time.process_time() - c0
    seconds = len(samples) / SAMPLE_RATE
    return {"cpu_per_s": cpu / seconds, "ms_per_chunk": 1000 * cpu / len(walls),
            "p99_ms": 1000 * float(np.percentile(walls, 99)), "max_ms": 1000 * max(walls)}


# (label, module, attribute): the stages of a push, nested ones indented under the one that calls them
PARTS = (("push", "talkinghead.motion.stream", "MotionStream.push"),
         ("  window (features, visemes, prosody)", "talkinghead.motion.stream", "_Utterance.window"),
         ("    phone model (mel + onnxruntime)", "talkinghead.motion.stream", "_Acoustics._run_model"),
         ("      onnxruntime", "talkinghead.audio.phone_model", "PhoneModel.run"),
         ("    loudness, pitch, VAD", "talkinghead.motion.stream", "_Acoustics._settle"),
         ("      pitch", "talkinghead.audio.pitch", "PitchTracker.track"),
         ("    prosody (nuclei, accents)", "talkinghead.audio.prosody", "Prosody.hear"),
         ("    viseme segments", "talkinghead.motion.line", "ModelLips.segments"),
         ("  lips", "talkinghead.motion.stream", "_Window.lips"),
         ("  life (eyes, head, brows)", "talkinghead.motion.life", "Life.frames"),
         ("  FaceParams", "talkinghead.motion.stream", "MotionStream._params"))


def parts(samples: np.ndarray) -> list[tuple[str, float]]:
    """(label, wall ms per 100 ms push) of PARTS."""
    import importlib

    spent: collections.Counter = collections.Counter()
    undo = []
    for label, module, attr in PARTS:
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for p in path:
            owner = getattr(owner, p)
        fn = getattr(owner, name)

        def timed(*a, _fn=fn, _label=label, **k):
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_label] += time.perf_counter() - t0
        setattr(owner, name, functools.wraps(fn)(timed))
        undo.append((owner, name, fn))
    try:
        step = SAMPLE_RATE // 10
        stream = MotionStream()
        for i in range(0, len(samples), step):
            stream.push(samples[i: i + step])
        pushes = -(-len(samples) // step)
    finally:
        for owner, name, fn in undo:
            setattr(owner, name, fn)
    return [(label, 1000 * spent[label] / pushes) for label, _, _ in PARTS]


def together_cost(samples: np.ndarray, n: int, together: bool) -> float:
    """CPU ms per 100 ms push of n streams taking turns (each its own offset into the speech)."""
    step = SAMPLE_RATE // 10
    streams = [MotionStream(MotionOptions(seed=k)) for k in range(n)]
    offsets = [k * len(samples) // n for k in range(n)]
    turns = len(samples) // step
    c0 = time.process_time()
    for t in range(turns):
        chunks = [samples[(o + t * step) % (len(samples) - step):][:step] for o in offsets]
        if together:
            push_together(streams, chunks)
        else:
            for stream, chunk in zip(streams, chunks):
                stream.push(chunk)
    return 1000 * (time.process_time() - c0) / (turns * n)


def idle_rate(frames_per_call: int, total: int = 9000) -> float:
    stream = MotionStream()
    c0 = time.process_time()
    for _ in range(total // frames_per_call):
        stream.idle(frames_per_call)
    return total // frames_per_call * frames_per_call / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--parts", action="store_true", help="where a 100 ms push's time goes")
    ap.add_argument("--together", type=int, nargs="+", metavar="N", help="N streams' pushes alone and together")
    args = ap.parse_args()
    samples = speech(args.seconds)
    MotionStream().push(samples[:SAMPLE_RATE])   # imports and first-call set-up out of the timings
    if args.together:
        print(f"{len(samples) / SAMPLE_RATE:.0f} s of speech per stream, 100 ms pushes, the streams taking turns")
        print(f"{'streams':>8} {'alone: CPU ms / push':>21} {'together':>9}")
        for n in args.together:
            print(f"{n:>8} {together_cost(samples, n, False):>21.3f} {together_cost(samples, n, True):>9.3f}")
        return
    if args.parts:
        print(f"{len(samples) / SAMPLE_RATE:.0f} s of speech with pauses in 100 ms pushes: wall ms per push")
        for label, ms in parts(samples):
            print(f"{label:<40} {ms:6.3f}")
        return

    print(f"{len(samples) / SAMPLE_RATE:.0f} s of speech with pauses, 30 fps, frames final {LOOKAHEAD_S * 1000:.0f} ms "
          "behind the newest audio")
    print(f"{'chunk':>8} {'CPU s / s audio':>16} {'CPU ms / chunk':>15} {'push p99 ms':>12} {'push max ms':>12}")
    for chunk_ms in (20, 100, 500):
        r = stream_cost(samples, chunk_ms)
        print(f"{chunk_ms:>6}ms {r['cpu_per_s']:>16.4f} {r['ms_per_chunk']:>15.2f} {r['p99_ms']:>12.2f} "
              f"{r['max_ms']:>12.2f}")
    c0 = time.process_time()
    motion_from_audio(samples, SAMPLE_RATE, MotionOptions(lipsync="acoustic"))
    print(f"{'offline':>8} {(time.process_time() - c0) / (len(samples) / SAMPLE_RATE):>16.4f}   "
          "(motion_from_audio, lipsync='acoustic', whole take at once)")
    print()
    print(f"{'idle frames per call':>22} {'frames per CPU s':>17}")
    for per_call in (1, 30, 300):
        print(f"{per_call:>22} {idle_rate(per_call):>17.0f}")


if __name__ == "__main__":
    main()
