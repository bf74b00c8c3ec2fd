"""Stream RPC latency and capacity, measured against a real server process.

    python benchmarks/stream_latency.py [--streams 1 10 25 50] [--images [--quality 90]]
        [--server-cores 1] [--image-processes -1] [--motion-stub]

The server runs as `talkinghead serve` pinned to ONE core (taskset -c 0; `--server-cores N`:
cores 0..N-1, its image processes with it: `serve --image-processes`, default one per core it
may use); the clients run here (pinned to the last core) and behave like a TTS engine: 100 ms PCM16 chunks sent in real time. For
each load it prints first-frame latency (config sent -> first frame), per-chunk latency p50/p95
(chunk sent -> the last frame that chunk makes final), and how many streams kept up: every
speech frame arrived and (with --images) every frame carried its full-size image, the server
never having to degrade the stream (StreamEvent KIND_IMAGES_DEGRADED: the deepest level any
stream reached is printed). The last line says how many 512 px JPEG streams one core kept at
30 fps within the 150 ms budget (p95 of the chunk latency).

"server CPU" is the CPU time the server (and its image processes) spent per stream-second of
audio during each load: unlike the latencies, it hardly depends on what else the machine runs, so
1 / (server CPU) bounds the streams one core can keep, whoever else shares the machine.
--motion-stub runs the server with its speech motion computed from nothing
(benchmarks/serve_motion_stub.py: the same frames at the same times, constant values): its
"server CPU" is what gRPC, protobuf and the session cost on their own, the floor under the motion.

"clients" is how busy the clients' core was (their CPU time over the load's wall time): near 100 %
the clients themselves fall behind, and the latencies of that load are theirs as much as the server's.
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
import psutil

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.client import TalkingHeadClient, audio_chunk, control, stream_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHUNK_S = 0.1


def one_stream(target: str, speech: np.ndarray, images: bool, avatar: str | None, out: dict, quality: int = 90) -> None:
    pieces = [speech[i:i + int(CHUNK_S * SAMPLE_RATE)] for i in range(0, len(speech), int(CHUNK_S * SAMPLE_RATE))]
    sent: list[tuple[float, float]] = []
    t_config = []

    def requests():
        t_config.append(time.monotonic())
        yield stream_config(sample_rate=SAMPLE_RATE, params_only=not images, avatar=avatar, realtime=True, quality=quality)
        time.sleep(0.2)
        for i, p in enumerate(pieces):
            sent.append((time.monotonic(), i * CHUNK_S + len(p) / SAMPLE_RATE))
            yield audio_chunk((np.clip(p, -1, 1) * 32767).astype("<i2").tobytes())
            time.sleep(CHUNK_S)
        yield control("flush")
        time.sleep(0.3)

    frames, lookahead, start_index, level, with_image = [], 0.1, None, 0, 0
    with TalkingHeadClient(target, timeout=120) as c:
        for r in c.stream(requests()):
            which = r.WhichOneof("payload")
            if which == "header":
                lookahead = r.header.lookahead_seconds
            elif which == "frame":
                frames.append((time.monotonic(), r.frame.time, r.frame.idle))
                with_image += bool(r.frame.image)
            elif which == "event" and r.event.kind == 1 and start_index is None:
                start_index = r.event.frame_index
            elif which == "event" and r.event.HasField("images"):
                level = max(level, r.event.images.level)
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
    out["level"], out["images"], out["frames"] = level, with_image, len(frames)


def serve_command(cores: str, port: int, image_processes: int, motion_stub: bool = False) -> list[str]:
    """`talkinghead serve` pinned to `cores` (taskset's list), with room for the benchmarks' streams
    (motion_stub: through serve_motion_stub.py, the speech motion computed from nothing)."""
    run = [str(Path(__file__).with_name("serve_motion_stub.py"))] if motion_stub else ["-m", "talkinghead"]
    return ["taskset", "-c", cores, sys.executable, *run, "serve", "--port", str(port),
            "--workers", "2", "--max-concurrent", "200", "--max-per-client", "200",
            "--image-processes", str(image_processes)]


def wait_healthy(client: TalkingHeadClient, seconds: float = 30.0) -> None:
    """Until the server answers its health check (it is still starting)."""
    end = time.monotonic() + seconds
    while True:
        try:
            client.health()
            return
        except Exception:  # noqa: BLE001 - still starting
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def server_cpu(pid: int) -> float:
    """CPU seconds the process `pid` (taskset's child: the server) and its children have used."""
    total, server = 0.0, psutil.Process(pid)
    for p in [server] + server.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 10, 25, 50])
    ap.add_argument("--images", action="store_true", help="512 px JPEG frames instead of parameters only")
    ap.add_argument("--seconds", type=float, default=5.0, help="speech per stream")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality the streams ask for")
    ap.add_argument("--server-cores", type=int, default=1, help="cores the server is pinned to (0..N-1)")
    ap.add_argument("--image-processes", type=int, default=None,
                    help="serve --image-processes (default: -1, one per core, with --images; else 0, none started)")
    ap.add_argument("--motion-stub", action="store_true",
                    help="the server with its speech motion stubbed out (serve_motion_stub.py): its CPU is "
                         "what gRPC, protobuf and the session cost besides the motion")
    args = ap.parse_args()
    if args.image_processes is None:
        args.image_processes = -1 if args.images else 0
    last = os.cpu_count() - 1
    os.sched_setaffinity(0, {last})               # the clients: the last core
    speech = load_audio(EXAMPLES / "hello.flac")[: int(args.seconds * SAMPLE_RATE)]
    port = 50000 + os.getpid() % 1000
    cores = ",".join(str(c) for c in range(args.server_cores))
    server = subprocess.Popen(serve_command(cores, port, args.image_processes, args.motion_stub), stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    try:
        with TalkingHeadClient(target, timeout=5) as c:
            wait_healthy(c)
            avatar = None
            if args.images:
                avatar = c.create_avatar(EXAMPLES / "astronaut.jpg", size=512).avatar_id
        mode = ("512 px JPEG frames" if args.images else "parameters only") + \
            (", speech motion STUBBED (serve_motion_stub.py)" if args.motion_stub else "")
        print(f"server: {args.server_cores} core(s) (taskset -c {cores}), --image-processes {args.image_processes}; "
              f"clients on core {last}; {mode}; {CHUNK_S * 1000:.0f} ms chunks in real time")
        print(f"{'streams':>8} {'first frame':>12} {'chunk p50':>10} {'chunk p95':>10} {'kept up':>8} {'images':>7} "
              f"{'level':>6} {'server CPU':>11} {'clients':>8}")
        best = 0
        for n in args.streams:
            outs = [dict() for _ in range(n)]
            threads = [threading.Thread(target=one_stream, args=(target, speech, args.images, avatar, o, args.quality))
                       for o in outs]
            cpu0, client0, wall0 = server_cpu(server.pid), time.process_time(), time.monotonic()
            for t in threads:
                t.start()
                time.sleep(0.01)
            for t in threads:
                t.join()
            per_stream_s = (server_cpu(server.pid) - cpu0) / (n * len(speech) / SAMPLE_RATE)
            client_load = (time.process_time() - client0) / (time.monotonic() - wall0)
            lat = np.concatenate([o["lat"] for o in outs]) * 1000
            first = np.median([o["first"] for o in outs]) * 1000
            ok = sum(o["speech_frames"] >= o["expected"] and o["level"] == 0 for o in outs)
            share = sum(o["images"] for o in outs) / max(sum(o["frames"] for o in outs), 1)
            p95 = np.percentile(lat, 95)
            print(f"{n:>8} {first:>10.0f}ms {np.percentile(lat, 50):>8.0f}ms {p95:>8.0f}ms "
                  f"{ok:>4}/{n} {100 * share:>6.0f}% {max(o['level'] for o in outs):>6} {per_stream_s:>9.4f} s {100 * client_load:>7.0f}%", flush=True)
            if ok == n and p95 <= 150:
                best = max(best, n)
        what = "512 px JPEG streams" if args.images else "parameter streams"
        print(f"{args.server_cores} core(s) kept {best} {what} at 30 fps within the 150 ms budget (of those tried)")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
