"""Server CPU per stream-second of two checkouts, measured in alternation on the same core.

    python benchmarks/stream_cpu_ab.py --base ../old/service [--streams 30] [--pairs 8]

The machine's speed drifts by 10 % and more from minute to minute (a shared VM), more than most
changes to the stream's cost: one benchmark run before and one after a change cannot tell them
apart. Here two servers run at once, both pinned to core 0: A from `--base` (a checkout's
`service` folder, put first on PYTHONPATH; it needs its generated `talkinghead/v1` stubs:
`python scripts/gen_stubs.py` there) and B from this tree. Loads of `--streams` realtime
parameter streams (benchmarks/stream_latency.py's clients: 100 ms chunks of the example line in
real time) go to one server, then the other, the order alternating, and each pair's B/A ratio
of server CPU per stream-second is printed; their median is the comparison to read. The first
load of each server (warm-up) is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from stream_latency import CHUNK_S, EXAMPLES, one_stream, serve_command, server_cpu, wait_healthy

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.client import TalkingHeadClient


def start(port: int, pythonpath: str | None, cache: str) -> subprocess.Popen:
    # a model cache of its own: the two checkouts may register different model files (SHA-256s)
    env = dict(os.environ, TALKINGHEAD_CACHE=cache)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(serve_command("0", port, 0), env=env, stderr=subprocess.DEVNULL)


def load(server: subprocess.Popen, target: str, speech: np.ndarray, n: int) -> tuple[float, float]:
    """(server CPU per stream-second, p95 chunk latency ms) of n streams at once."""
    outs = [dict() for _ in range(n)]
    threads = [threading.Thread(target=one_stream, args=(target, speech, False, None, o)) for o in outs]
    cpu0 = server_cpu(server.pid)
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    lat = np.concatenate([o["lat"] for o in outs]) * 1000
    return (server_cpu(server.pid) - cpu0) / (n * len(speech) / SAMPLE_RATE), float(np.percentile(lat, 95))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the other checkout's service folder (A)")
    ap.add_argument("--streams", type=int, default=30)
    ap.add_argument("--pairs", type=int, default=8)
    args = ap.parse_args()
    base = Path(args.base).resolve()
    if not (base / "talkinghead" / "v1" / "talkinghead_pb2.py").exists():
        sys.exit(f"{base} has no generated talkinghead/v1 stubs: run `python scripts/gen_stubs.py` in that checkout")
    os.sched_setaffinity(0, {os.cpu_count() - 1})
    speech = load_audio(EXAMPLES / "hello.flac")[: int(5 * SAMPLE_RATE)]
    port = 51000 + os.getpid() % 500
    caches = {k: tempfile.TemporaryDirectory(prefix=f"ab-models-{k}-") for k in "AB"}
    servers = {"A": (start(port, str(base), caches["A"].name), f"127.0.0.1:{port}"),
               "B": (start(port + 1, None, caches["B"].name), f"127.0.0.1:{port + 1}")}
    print(f"A: {base}; B: this tree; {args.streams} streams of {CHUNK_S * 1000:.0f} ms chunks in real time, "
          f"both servers on core 0, clients on core {os.cpu_count() - 1}")
    cost: dict[str, list[float]] = {"A": [], "B": []}
    try:
        for _, target in servers.values():
            with TalkingHeadClient(target, timeout=5) as c:
                wait_healthy(c)
        for k in "AB":   # warm-up, not counted
            load(*servers[k], speech, args.streams)
        p95s: dict[str, float] = {}
        for pair in range(args.pairs):
            for k in ("AB" if pair % 2 else "BA"):
                cost_k, p95s[k] = load(*servers[k], speech, args.streams)
                cost[k].append(cost_k)
            print(f"pair {pair + 1}: A {cost['A'][-1]:.4f} s  B {cost['B'][-1]:.4f} s  B/A {cost['B'][-1] / cost['A'][-1]:.3f}"
                  f"  (p95 chunk latency A {p95s['A']:.0f} ms, B {p95s['B']:.0f} ms)", flush=True)
        ratios = [b / a for a, b in zip(cost["A"], cost["B"])]
        print(f"server CPU per stream-second: A median {statistics.median(cost['A']):.4f} s, "
              f"B median {statistics.median(cost['B']):.4f} s; B/A median {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(10)
        for cache in caches.values():
            cache.cleanup()


if __name__ == "__main__":
    main()
