"""Hostile and careless clients against a real `talkinghead serve` process on loopback (issue 16).

Each test sends the attack's request while `Watch` measures the server's RSS (server + worker
processes) and another client's health-check latency (from a process of its own). Bounds: RSS
growth as stated per test, health within 100 ms, a realtime stream's frames with no gap over
200 ms (both scaled up on an overloaded machine, see `health_ms`), SIGTERM done within --grace + 1 s. Where the server refuses from a header or a count, sizes are the issue's own
(10000 x 10000 PNG, 890 s FLAC, 60 MB uploads); the floods run for seconds, not the issue's 60 s,
since the bound holds from the first second (the growth is flat once the buffer is full).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf

from attacks import CLIP, silent_flac, transcript, zeros_png
from server_process import ServerProcess, Watch
from talkinghead.client import ClientError, TalkingHeadClient, audio_chunk, control, stream_config
from talkinghead.motion.options import MotionOptions
from talkinghead.v1 import talkinghead_pb2 as pb

TOKEN = "s3cret"
# A frozen event loop shows as one health check taking seconds (2-18 s before the fix). On a machine
# that is itself overloaded (more runnable processes than cores), scheduling alone delays a busy
# server process by about a time slice per waiting process: the bounds (100 ms for health, 200 ms
# for a realtime stream's frame gap) scale with the run-queue length per core, still far below a
# freeze. TALKINGHEAD_TEST_HEALTH_MS sets the health bound outright.
def _overload() -> float:
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def health_ms() -> float:
    return float(os.environ.get("TALKINGHEAD_TEST_HEALTH_MS", 100 * _overload()))


def gap_s() -> float:
    return 0.2 * _overload()


@pytest.fixture(scope="module")
def srv():
    with ServerProcess("--token", TOKEN, "--max-transcript-chars", "1100000", "--first-message-seconds", "1",
                       "--max-concurrent", "12", "--max-per-client", "12") as server:
        yield server


@pytest.fixture()
def client(srv):
    with TalkingHeadClient(srv.target, token=TOKEN, timeout=120) as c:
        yield c


class RealtimeListener:
    """Another client's realtime parameter stream (idle frames on the clock, 30 fps): the
    largest gap between frames while it runs."""

    def __init__(self, target: str) -> None:
        self.client = TalkingHeadClient(target, token=TOKEN, timeout=600)
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _requests(self):
        yield stream_config(sample_rate=16000, params_only=True, realtime=True, motion=MotionOptions(fps=30))
        self._stop.wait()

    def _run(self) -> None:
        self.responses = self.client.stream(self._requests())
        try:
            for msg in self.responses:
                if msg.WhichOneof("payload") == "frame":
                    self.times.append(time.monotonic())
        except grpc.RpcError:
            pass

    @property
    def worst_gap(self) -> float:
        return float(np.max(np.diff(self.times)))

    def __enter__(self) -> "RealtimeListener":
        self._thread.start()
        deadline = time.monotonic() + 10
        while len(self.times) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.responses.cancel()
        self._thread.join(10)
        self.client.close()


def _refused(call) -> ClientError:
    with pytest.raises(ClientError) as err:
        call()
    return err.value


# -- High 1: non-realtime streams buffer without limit --------------------------------------------

def _flood(srv, messages, seconds: float) -> Watch:
    """A stream from a client that sends `messages()` and never reads a frame."""
    stop = threading.Event()

    def requests():
        yield stream_config(sample_rate=16000, realtime=False, params_only=True, motion=MotionOptions(fps=240))
        while not stop.is_set():
            yield from messages()

    with TalkingHeadClient(srv.target, token=TOKEN, timeout=120) as c, Watch(srv) as watch:
        responses = c.stream(requests())
        time.sleep(seconds)
        stop.set()
        responses.cancel()
        time.sleep(0.3)
    return watch


@pytest.mark.slow
def test_a_never_reading_client_flooding_idle_controls_is_held_to_a_bounded_buffer(srv):
    """Control{IDLE, idle_frames: 100000} every 50 ms at 240 fps: was 534 -> 3,528 MB in 60 s."""
    def messages():
        time.sleep(0.05)
        yield control("idle", idle_frames=100000)

    watch = _flood(srv, messages, 8)
    assert watch.growth_mb < 60, f"RSS grew {watch.growth_mb:.0f} MB"
    assert watch.health_ms_but_outliers < health_ms() and watch.worst_health_ms < 3 * health_ms(), watch.report()


@pytest.mark.slow
def test_a_never_reading_client_sending_2s_chunks_every_20ms_is_held_to_a_bounded_buffer(srv):
    """2 s chunks every 20 ms, realtime false: grew ~1.1 MB/s (the limit was realtime-only)."""
    chunk = audio_chunk((np.random.default_rng(0).normal(0, 3000, 32000)).astype("<i2").tobytes())

    def messages():
        time.sleep(0.02)
        yield chunk

    _flood(srv, messages, 2)          # once first: the phone model's session and arenas are one-time memory
    watch = _flood(srv, messages, 8)
    assert watch.growth_mb < 60, f"RSS grew {watch.growth_mb:.0f} MB"
    assert watch.health_ms_but_outliers < health_ms() and watch.worst_health_ms < 3 * health_ms(), watch.report()


# -- High 2: image decompression bombs ------------------------------------------------------------

@pytest.mark.parametrize("size, depth, colour, channels", [(10000, 16, 6, 4), (20000, 8, 2, 3)],
                         ids=["10000px-rgba16", "20000px-rgb8"])
def test_image_bombs_are_refused_from_their_header(srv, client, size, depth, colour, channels):
    """778 KB PNG of 10000x10000 RGBA 16-bit zeros (was +4.1 GB, 13.6 s of CPU); 1.2 MB
    20000x20000 RGB (was +2.3 GB)."""
    bomb = zeros_png(size, size, depth, colour, channels)
    assert len(bomb) < 1.3e6
    with Watch(srv) as watch:
        start = time.monotonic()
        err = _refused(lambda: client.create_avatar(bomb))
        took = time.monotonic() - start
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "megapixel limit" in err.details, err
    assert f"declares {size * size // 10**6} megapixels" in err.details
    assert took < 1.0 and watch.growth_mb < 30, (took, watch.growth_mb)
    # inline in a Generate too, and a 10 ms deadline is an answer, not 8.5 s of decoding
    err = _refused(lambda: client.generate_all(CLIP, image=bomb))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "megapixel" in err.details


@pytest.mark.slow
def test_create_avatar_counts_against_the_call_limits(srv, client):
    """Four decodes at once were possible (CreateAvatar was outside the call limits): now two."""
    photo = (Path(__file__).parent.parent / "examples" / "astronaut.jpg").read_bytes()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _outcome(lambda: client.create_avatar(photo, size=256)), range(4)))
    refused = [r for r in results if isinstance(r, ClientError)]
    assert refused and all(e.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "portraits are being analysed"
                           in e.details for e in refused), results
    assert len(refused) < 4


def _outcome(call):
    try:
        return call()
    except ClientError as exc:
        return exc


# -- High 3: the GIL held for seconds -------------------------------------------------------------

@pytest.mark.slow
def test_a_generate_with_a_100kb_transcript_freezes_no_other_client(srv, client):
    """Was: health stalled 7-8 s, another realtime stream had a 2.15 s gap."""
    with RealtimeListener(srv.target) as stream, Watch(srv) as watch:
        time.sleep(0.3)
        summary = client.generate_all(CLIP, params_only=True, transcript=transcript(100_000))[2]
        time.sleep(0.3)
    print(f"[realtime stream] worst gap {stream.worst_gap * 1000:.0f} ms over {len(stream.times)} frames")
    assert summary.frames == 259
    assert watch.health_ms_but_outliers < health_ms() and watch.worst_health_ms < 3 * health_ms(), watch.report()
    assert stream.worst_gap < gap_s(), f"the realtime stream stalled {stream.worst_gap * 1000:.0f} ms"


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / 100          # utime + stime, clock ticks
        except OSError:
            pass
    return total


@pytest.mark.slow
def test_a_deadline_kills_the_work_of_a_1mb_transcript(srv, client):
    """A 1 MB transcript cost 70 s of CPU and ran on 17 s after the client's deadline."""
    err = _refused(lambda: client.generate_all(CLIP, params_only=True, transcript=transcript(1_000_000),
                                               timeout=2))
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.5)
    pids = srv.workers()
    before = _cpu_seconds(pids)
    time.sleep(1.0)
    assert _cpu_seconds(pids) - before < 0.2                     # nothing is still working on it
    assert client.generate_all(CLIP, params_only=True)[2].frames == 259
    statuses = [e["status"] for e in srv.events("rpc.request") if e["method"].endswith("/Generate")]
    assert "DEADLINE_EXCEEDED" in statuses


@pytest.mark.slow
def test_sigterm_during_a_long_generate_ends_within_grace_plus_one_second():
    """`--grace 3` ended at 12.8 s: the drain started late behind the held GIL."""
    with ServerProcess("--grace", "3", "--max-transcript-chars", "1100000") as server:
        def run():
            with TalkingHeadClient(server.target, timeout=60) as c:
                _outcome(lambda: c.generate_all(CLIP, params_only=True, transcript=transcript(1_000_000)))
        caller = threading.Thread(target=run, daemon=True)
        caller.start()
        time.sleep(1.5)
        took = server.terminate()
        caller.join(10)
        log = server.log_text()
    assert took < 3 + 1, f"SIGTERM took {took:.1f} s"
    assert "server.stopped" in log
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]


@pytest.mark.slow
def test_sigterm_with_generates_and_live_streams_in_flight_logs_no_traceback():
    """gRPC's per-call tasks outlived `server.stop()` by a few ms when the grace ran out, asyncio.run
    cancelled them and gRPC printed a CancelledError traceback (4 shutdowns of 6 like this one)."""
    for _ in range(2):
        with ServerProcess("--grace", "1", "--max-transcript-chars", "1100000") as server:
            hold = threading.Event()

            def generate():
                with TalkingHeadClient(server.target, timeout=60) as c:
                    _outcome(lambda: c.generate_all(CLIP, params_only=True, transcript=transcript(1_000_000)))

            def live():
                def requests():
                    yield stream_config(sample_rate=16000, params_only=True, realtime=True,
                                        motion=MotionOptions(fps=30))
                    hold.wait()
                with TalkingHeadClient(server.target, timeout=60) as c, contextlib.suppress(grpc.RpcError):
                    list(c.stream(requests()))                   # ended by the shutdown

            callers = [threading.Thread(target=f, daemon=True) for f in (generate, generate, live, live, live)]
            for caller in callers:
                caller.start()
            time.sleep(2.0)
            took = server.terminate()
            hold.set()
            log = server.log_text()
        assert took < 1 + 1, f"SIGTERM took {took:.1f} s"
        assert "server.stopped" in log
        assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]


# -- High 4: audio decompression bombs ------------------------------------------------------------

@pytest.fixture(scope="module")
def flac_bomb() -> bytes:
    return silent_flac(890, 192000, 2)


@pytest.mark.slow
def test_an_audio_bomb_is_refused_from_its_stream_info(srv, client, flac_bomb):
    """183 KB FLAC of 890 s of 2-ch 192 kHz silence: was +2 GB (the limit was on duration only)."""
    assert len(flac_bomb) < 1e6
    with Watch(srv) as watch:
        start = time.monotonic()
        err = _refused(lambda: client.generate_all(flac_bomb, params_only=True))
        took = time.monotonic() - start
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "million samples" in err.details, err
    assert took < 2.0 and watch.growth_mb < 30, (took, watch.growth_mb)


# -- Medium 5 and 6: held slots, unauthenticated payloads ----------------------------------------

def test_streams_that_never_send_a_config_do_not_hold_their_slots(srv, client):
    """Streams that never send a config locked every other client out for as long as they
    stayed open. Here they fill all 12 slots; within --first-message-seconds (1 s) they are
    ended and the slots are free."""
    hold = threading.Event()

    def silent():
        hold.wait()
        yield from ()

    calls = [client.stream(silent()) for _ in range(12)]
    time.sleep(0.3)
    busy = _refused(lambda: client.generate_all(CLIP, params_only=True))
    assert busy.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "busy" in busy.details
    errors = []
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            list(call)
        errors.append(err.value)
    hold.set()
    assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "no StreamConfig within 1 s" in e.details()
               for e in errors), errors[0]
    assert client.generate_all(CLIP, params_only=True)[2].frames == 259


@pytest.mark.slow
def test_unauthenticated_uploads_are_refused_before_they_are_buffered(srv):
    """Eight 60 MB CreateAvatar calls without a token: +1 GB before each got UNAUTHENTICATED."""
    payload = b"\xff\xd8" + bytes(60 << 20)
    with TalkingHeadClient(srv.target, timeout=60) as anonymous, Watch(srv) as watch:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: _outcome(lambda: anonymous.create_avatar(payload)), range(8)))
    assert all(isinstance(r, ClientError) and r.code == grpc.StatusCode.UNAUTHENTICATED for r in results), results
    assert watch.growth_mb < 100, f"RSS grew {watch.growth_mb:.0f} MB"


# -- Low 7 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["flac", "pcm16"])
def test_two_samples_of_audio_get_invalid_argument_with_a_sentence(client, kind):
    if kind == "flac":
        buf = io.BytesIO()
        sf.write(buf, np.array([0.1, -0.1]), 16000, format="FLAC")
        call = lambda: client.generate_all(buf.getvalue(), params_only=True)   # noqa: E731
    else:
        call = lambda: list(client.checked(client.stub.Generate(pb.GenerateRequest(   # noqa: E731
            audio=pb.Audio(pcm16=b"\x01\x00", sample_rate=16000), output=pb.OutputOptions(params_only=True)),
            metadata=client.metadata)))
    err = _refused(call)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "too short" in err.details, err


@pytest.mark.parametrize("method, shape", [("CreateAvatar", "unary_unary"), ("Generate", "unary_stream"),
                                           ("Stream", "stream_stream")])
def test_malformed_protobuf_gets_invalid_argument_and_a_log_line(srv, client, method, shape):
    path = f"/talkinghead.v1.TalkingHead/{method}"
    before = len([e for e in srv.events("rpc.request") if e["method"] == path])
    call = getattr(client.channel, shape)(path, request_serializer=None, response_deserializer=None)
    junk = b"\xff\xff\xff\xff\x0f"
    with pytest.raises(grpc.RpcError) as err:
        if shape == "unary_unary":
            call(junk, metadata=client.metadata, timeout=10)
        elif shape == "unary_stream":
            list(call(junk, metadata=client.metadata, timeout=10))
        else:
            list(call(iter([junk]), metadata=client.metadata, timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    assert "not a valid protobuf" in err.value.details() and "Traceback" not in err.value.details()
    time.sleep(0.2)
    logged = [e for e in srv.events("rpc.request") if e["method"] == path]
    assert len(logged) == before + 1 and logged[-1]["status"] == "INVALID_ARGUMENT"


@pytest.mark.slow
def test_one_ms_chunks_are_throttled_and_health_stays_fast(srv):
    """1 ms chunks cost 25x the CPU of 100 ms ones with no rate limit. 800 chunks sent at once
    are read at the default 200 messages/s (after a 1 s burst): about 3 s, not a spin."""
    chunk = audio_chunk(bytes(32))

    def requests():
        yield stream_config(sample_rate=16000, realtime=False, params_only=True)
        yield from [chunk] * 800
        yield control("flush")

    with TalkingHeadClient(srv.target, token=TOKEN, timeout=60) as c, Watch(srv) as watch:
        start = time.monotonic()
        summary = [m for m in c.stream(requests()) if m.WhichOneof("payload") == "summary"][0]
        took = time.monotonic() - start
    assert summary.summary.frames > 0
    assert took > (800 - 200) / 200 * 0.9, f"800 messages read in {took:.2f} s"
    assert watch.health_ms_but_outliers < health_ms() and watch.worst_health_ms < 3 * health_ms(), watch.report()


@pytest.mark.slow
def test_cancelled_calls_log_cancelled_without_tracebacks(srv, client):
    responses = client.stub.Generate(pb.GenerateRequest(audio=pb.Audio(file=CLIP.read_bytes()),
                                                        transcript=transcript(50_000),
                                                        output=pb.OutputOptions(params_only=True)),
                                     metadata=client.metadata)
    next(responses)                                    # the header: the work is under way
    time.sleep(0.5)
    responses.cancel()
    time.sleep(1.0)
    statuses = [e["status"] for e in srv.events("rpc.request") if e["method"].endswith("/Generate")]
    assert statuses[-1] == "CANCELLED", statuses
    log = srv.log_text()
    assert "Future exception was never retrieved" not in log and "Traceback" not in log, log[-3000:]


def test_error_messages_truncate_echoed_inputs(client):
    """A 100,000-character emotion name came back as a metadata-size error, not the real one."""
    err = _refused(lambda: list(client.checked(client.stub.Generate(pb.GenerateRequest(
        audio=pb.Audio(file=CLIP.read_bytes()), motion=pb.MotionOptions(emotion="x" * 100_000),
        output=pb.OutputOptions(params_only=True)), metadata=client.metadata))))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "emotion" in err.details, err
    assert len(err.details) < 1000


def test_the_default_transcript_limit_refuses_100kb():
    from grpc_server import ServerThread
    from talkinghead.server import ServerConfig

    with ServerThread(ServerConfig(port=0)) as server, TalkingHeadClient(server.target, timeout=30) as c:
        err = _refused(lambda: c.generate_all(CLIP, params_only=True, transcript=transcript(100_000)))
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 20000" in err.details
