"""Soak the gRPC service with mixed good and bad clients (issue 16).

    python benchmarks/server_soak.py --minutes 10

Starts `talkinghead serve` (in its own process, on a free loopback port), then runs until the
time is up: good clients (parameter Generates with a transcript, realtime Streams, health checks)
next to bad ones (image and FLAC bombs, streams that never send a config or never read, 1 ms
chunk floods, uploads without a token, malformed protobuf, 2-sample audio, calls cancelled or
past their deadline). Every 30 s it prints the server's RSS (with its worker processes); at the
end, per kind of client: calls, p50/p95 latency, and the status codes they got. A good client's
error, a bad one's unexpected code, or a server that dies is a failure (exit status 1).
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from attacks import CLIP, silent_flac, transcript, zeros_png  # noqa: E402
from server_process import ServerProcess  # noqa: E402
from talkinghead.client import ClientError, TalkingHeadClient, audio_chunk, control, stream_config  # noqa: E402
from talkinghead.motion.options import MotionOptions  # noqa: E402
from talkinghead.v1 import talkinghead_pb2 as pb  # noqa: E402

TOKEN = "soak"
OK = "OK"


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.codes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def add(self, kind: str, seconds: float, code: str) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            self.codes[kind][code] += 1


def _code(call) -> str:
    try:
        call()
        return OK
    except ClientError as exc:
        return exc.code.name
    except grpc.RpcError as exc:
        return exc.code().name


def clients(target: str, bombs: dict) -> dict:
    """kind -> (callable, expected status codes, pause between calls in seconds)."""
    pcm = (np.random.default_rng(0).normal(0, 3000, 1600)).astype("<i2").tobytes()     # 100 ms

    def good():
        return TalkingHeadClient(target, token=TOKEN, timeout=120)

    def generate():
        with good() as c:
            assert c.generate_all(CLIP, params_only=True, transcript=transcript(140))[2].frames > 0

    def stream():
        def requests():
            yield stream_config(sample_rate=16000, params_only=True, realtime=True, motion=MotionOptions(fps=30))
            for _ in range(30):
                yield audio_chunk(pcm)
                time.sleep(0.1)
            yield control("flush")
        with good() as c:
            for msg in c.stream(requests()):
                if msg.WhichOneof("payload") == "event" and msg.event.kind == pb.StreamEvent.KIND_LINE_FINISHED:
                    break

    def health():
        with TalkingHeadClient(target, timeout=10) as c:
            assert c.health() == "SERVING"

    def image_bomb():
        with good() as c:
            c.create_avatar(bombs["png"])

    def flac_bomb():
        with good() as c:
            c.generate_all(bombs["flac"], params_only=True)

    def silent_stream():
        def requests():                                         # never sends a config
            time.sleep(30)
            yield from ()
        with good() as c:
            list(c.stream(requests()))

    def never_reads():
        stop = time.monotonic() + 5

        def requests():
            yield stream_config(sample_rate=16000, realtime=False, params_only=True, motion=MotionOptions(fps=240))
            while time.monotonic() < stop:
                time.sleep(0.05)
                yield control("idle", idle_frames=100000)
        with good() as c:
            responses = c.stream(requests())
            time.sleep(5)
            responses.cancel()
            raise ClientError(grpc.StatusCode.CANCELLED, "cancelled by the soak (it never read a frame)")

    def tiny_chunks():
        def requests():
            yield stream_config(sample_rate=16000, realtime=False, params_only=True)
            yield from [audio_chunk(bytes(32))] * 500
            yield control("flush")
        with good() as c:
            list(c.stream(requests()))

    def unauthenticated():
        with TalkingHeadClient(target, timeout=30) as c:
            c.create_avatar(b"\xff\xd8" + bytes(20 << 20))

    def malformed():
        with good() as c:
            c.channel.unary_unary("/talkinghead.v1.TalkingHead/CreateAvatar")(b"\xff\xff\xff\xff\x0f",
                                                                                metadata=c.metadata, timeout=10)

    def tiny_audio():
        with good() as c:
            list(c.checked(c.stub.Generate(pb.GenerateRequest(audio=pb.Audio(pcm16=b"\x01\x00", sample_rate=16000),
                                                              output=pb.OutputOptions(params_only=True)),
                                           metadata=c.metadata)))

    def deadline():
        with good() as c:
            c.generate_all(CLIP, params_only=True, transcript=transcript(300_000), timeout=1.5)

    return {
        "generate (good)": (generate, {OK}, 1.0),
        "stream (good)": (stream, {OK}, 0.5),
        "health (good)": (health, {OK}, 0.1),
        "image bomb": (image_bomb, {"INVALID_ARGUMENT"}, 2.0),
        "flac bomb": (flac_bomb, {"RESOURCE_EXHAUSTED"}, 2.0),
        "silent stream": (silent_stream, {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}, 0.5),
        "never reads": (never_reads, {"CANCELLED"}, 1.0),
        "1 ms chunks": (tiny_chunks, {OK}, 1.0),
        "no token, 20 MB": (unauthenticated, {"UNAUTHENTICATED"}, 1.0),
        "malformed": (malformed, {"INVALID_ARGUMENT"}, 1.0),
        "2-sample audio": (tiny_audio, {"INVALID_ARGUMENT"}, 1.0),
        "past deadline": (deadline, {"DEADLINE_EXCEEDED"}, 3.0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to soak (default 10)")
    args = ap.parse_args()
    bombs = {"png": zeros_png(10000, 10000, 16, 6, 4), "flac": silent_flac(890, 192000, 2)}
    tally, end = Tally(), time.monotonic() + args.minutes * 60
    with ServerProcess("--token", TOKEN, "--max-transcript-chars", "400000", "--first-message-seconds", "2",
                       "--max-concurrent", "32", "--max-per-client", "32") as server:
        base = server.rss()
        print(f"server up, RSS {base / 2**20:.0f} MB (server + {len(server.workers())} workers); "
              f"soaking {args.minutes:g} min", flush=True)

        def loop(kind, call, pause):
            while time.monotonic() < end and server.process.poll() is None:
                start = time.perf_counter()
                code = _code(call)
                tally.add(kind, time.perf_counter() - start, code)
                time.sleep(pause)

        threads = [threading.Thread(target=loop, args=(kind, call, pause), daemon=True)
                   for kind, (call, _, pause) in clients(server.target, bombs).items()]
        for t in threads:
            t.start()
        peak, next_print = base, time.monotonic() + 30
        while time.monotonic() < end and server.process.poll() is None:
            time.sleep(0.5)
            rss = server.rss()
            peak = max(peak, rss)
            if time.monotonic() >= next_print:
                next_print += 30
                print(f"{args.minutes * 60 - (end - time.monotonic()):5.0f} s  RSS {rss / 2**20:.0f} MB "
                      f"(peak {peak / 2**20:.0f} MB)", flush=True)
        for t in threads:
            t.join(60)
        alive = server.process.poll() is None
        final = server.rss()
    expected = {kind: codes for kind, (_, codes, _) in clients("x", bombs).items()}
    print(f"\nRSS: start {base / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB, end {final / 2**20:.0f} MB; "
          f"server {'alive' if alive else 'DIED'}")
    print("\n| client | calls | p50 s | p95 s | status codes |\n|---|---|---|---|---|")
    failed = not alive
    for kind, lat in tally.latency.items():
        codes = tally.codes[kind]
        wrong = {c: n for c, n in codes.items() if c not in expected[kind]}
        failed |= bool(wrong)
        print(f"| {kind} | {len(lat)} | {np.percentile(lat, 50):.3f} | {np.percentile(lat, 95):.3f} | "
              f"{', '.join(f'{c} {n}' for c, n in codes.most_common())}{'  <- unexpected' if wrong else ''} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
