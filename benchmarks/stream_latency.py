"""Stream RPC latency and capacity, measured against a real server process.

    python benchmarks/stream_latency.py [--streams 1 10 25 50] [--images]

The server runs as `talkinghead serve` pinned to ONE core (taskset -c 0); the clients run here
(on the other core) and behave like a TTS engine: 100 ms PCM16 chunks sent in real time. For
each load it prints first-frame latency (config sent -> first frame), per-chunk latency p50/p95
(chunk sent -> the last frame that chunk makes final), and whether every stream kept up.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.client import TalkingHeadClient, audio_chunk, control, stream_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHUNK_S = 0.1


def one_stream(target: str, speech: np.ndarray, images: bool, avatar: str | None, out: dict) -> None:
    pieces = [speech[i:i + int(CHUNK_S * SAMPLE_RATE)] for i in range(0, len(speech), int(CHUNK_S * SAMPLE_RATE))]
    sent: list[tuple[float, float]] = []
    t_config = []

    def requests():
        t_config.append(time.monotonic())
        yield stream_config(sample_rate=SAMPLE_RATE, params_only=not images, avatar=avatar, realtime=True)
        time.sleep(0.2)
        for i, p in enumerate(pieces):
            sent.append((time.monotonic(), i * CHUNK_S + len(p) / SAMPLE_RATE))
            yield audio_chunk((np.clip(p, -1, 1) * 32767).astype("<i2").tobytes())
            time.sleep(CHUNK_S)
        yield control("flush")
        time.sleep(0.3)

    frames, lookahead, start_index = [], 0.1, None
    with TalkingHeadClient(target, timeout=120) as c:
        for r in c.stream(requests()):
            which = r.WhichOneof("payload")
            if which == "header":
                lookahead = r.header.lookahead_seconds
            elif which == "frame":
                frames.append((time.monotonic(), r.frame.time, r.frame.idle))
            elif which == "event" and r.event.kind == 1:
                start_index = r.event.frame_index
    fps = 30
    start = (start_index or 0) / fps
    lat = []
    for i, (t_sent, audio_end) in enumerate(sent[:-1]):
        ready = start + audio_end - lookahead
        arrival = next((t for t, ft, idle in frames if not idle and ft >= ready - 1 / fps - 1e-9), None)
        if arrival is not None:
            lat.append(arrival - t_sent)
    out["first"] = frames[0][0] - t_config[0] if frames else float("nan")
    out["lat"] = lat
    out["speech_frames"] = sum(1 for _, _, idle in frames if not idle)
    out["expected"] = int(np.ceil(len(speech) / SAMPLE_RATE * fps))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 10, 25, 50])
    ap.add_argument("--images", action="store_true", help="512 px JPEG frames instead of parameters only")
    ap.add_argument("--seconds", type=float, default=5.0, help="speech per stream")
    args = ap.parse_args()
    speech = load_audio(EXAMPLES / "hello.flac")[: int(args.seconds * SAMPLE_RATE)]
    port = 50000 + os.getpid() % 1000
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "talkinghead", "serve", "--port", str(port),
                               "--workers", "2", "--max-concurrent", "200", "--max-per-client", "200"],
                              stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    try:
        with TalkingHeadClient(target, timeout=5) as c:
            for _ in range(100):
                try:
                    c.health()
                    break
                except Exception:  # noqa: BLE001 - still starting
                    time.sleep(0.2)
            avatar = None
            if args.images:
                avatar = c.create_avatar(EXAMPLES / "astronaut.jpg", size=512).avatar_id
        mode = "512 px JPEG frames" if args.images else "parameters only"
        print(f"server: 1 core (taskset -c 0); {mode}; {CHUNK_S * 1000:.0f} ms chunks in real time")
        print(f"{'streams':>8} {'first frame':>12} {'chunk p50':>10} {'chunk p95':>10} {'kept up':>8}")
        for n in args.streams:
            outs = [dict() for _ in range(n)]
            threads = [threading.Thread(target=one_stream, args=(target, speech, args.images, avatar, o)) for o in outs]
            for t in threads:
                t.start()
                time.sleep(0.01)
            for t in threads:
                t.join()
            lat = np.concatenate([o["lat"] for o in outs]) * 1000
            first = np.median([o["first"] for o in outs]) * 1000
            ok = sum(o["speech_frames"] >= o["expected"] for o in outs)
            print(f"{n:>8} {first:>10.0f}ms {np.percentile(lat, 50):>8.0f}ms {np.percentile(lat, 95):>8.0f}ms "
                  f"{ok:>4}/{n}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
