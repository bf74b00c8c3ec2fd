"""The Stream RPC (live dialogue) with a real server on a loopback port."""

from __future__ import annotations

import threading
import time

import cv2
import grpc
import numpy as np
import pytest
from skimage import data

from talkinghead.arkit import BS
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.client import ClientError, TalkingHeadClient, audio_chunk, control, stream_config
from talkinghead.media import decode_frame
from talkinghead.motion.options import MotionOptions
from talkinghead.server.limits import Limits

LINE = "Bob bought a map of the big palm park."


@pytest.fixture(scope="module")
def speech(spoken):
    return spoken(LINE)


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def chunks(x: np.ndarray, seconds: float):
    n = int(seconds * SAMPLE_RATE)
    return [x[i:i + n] for i in range(0, len(x), n)]


@pytest.fixture(scope="module")
def server(serve):
    return serve(limits=Limits(max_per_client=10, max_concurrent=12))


def collect(responses):
    header, frames, events, summary = None, [], [], None
    for r in responses:
        which = r.WhichOneof("payload")
        if which == "header":
            header = r.header
        elif which == "frame":
            frames.append(r.frame)
        elif which == "event":
            events.append(r.event)
        elif which == "summary":
            summary = r.summary
    return header, frames, events, summary


def test_a_line_in_chunks_comes_back_as_continuous_frames(server, speech):
    with TalkingHeadClient(server.target, timeout=60) as c:
        reqs = [stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False)]
        reqs += [audio_chunk(pcm16(ch)) for ch in chunks(speech, 0.1)] + [control("flush")]
        header, frames, events, summary = collect(c.stream(reqs))
    assert header.fps == 30 and 0 < header.lookahead_seconds <= 0.15 and len(header.blendshape_names) == 52
    assert [f.index for f in frames] == list(range(len(frames)))
    assert len(frames) == int(np.ceil(len(speech) / SAMPLE_RATE * 30))
    np.testing.assert_allclose([f.time for f in frames], np.arange(len(frames)) / 30, atol=1e-9)
    jaw = np.array([f.params.blendshapes[BS["jawOpen"]] for f in frames])
    assert jaw.max() > 0.25 and jaw[-3:].max() < 0.1            # speaks, then relaxes closed
    kinds = [e.kind for e in events]
    assert kinds[0] == 1 and kinds[-1] == 2                      # LINE_STARTED ... LINE_FINISHED
    assert summary.frames == len(frames)


@pytest.mark.slow
def test_idle_frames_keep_the_face_alive_in_real_time(server):
    stop = threading.Event()

    def requests():
        yield stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=True,
                            motion=MotionOptions(blink_rate=40, seed=1))
        stop.wait(3.0)

    with TalkingHeadClient(server.target, timeout=30) as c:
        responses = c.stream(requests())
        arrivals, frames = [], []
        t0 = time.monotonic()
        for r in responses:
            if r.WhichOneof("payload") == "frame":
                arrivals.append(time.monotonic() - t0)
                frames.append(r.frame)
                if len(frames) == 75:
                    break
        responses.cancel()
    assert all(f.idle for f in frames)
    # Paced: 75 frames at 30 fps take about 2.5 s, not a burst.
    assert 2.0 < arrivals[-1] < 3.2, arrivals[-1]
    bs = np.array([f.params.blendshapes for f in frames])
    assert bs[:, BS["jawOpen"]].max() < 0.05                       # mouth shut
    head = np.array([[f.params.head.yaw, f.params.head.pitch] for f in frames])
    assert np.ptp(head, 0).max() > 0.05                             # alive, not frozen
    assert len({f.index for f in frames}) == len(frames)


@pytest.mark.slow
def test_chunks_sent_in_real_time_get_their_frames_within_150_ms(server, speech):
    lookahead = {}
    sent_at: dict[int, tuple[float, float]] = {}            # chunk -> (wall time sent, audio end in line)
    chunk_s = 0.1

    def requests():
        yield stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=True)
        time.sleep(0.3)                                         # some idle first
        for i, ch in enumerate(chunks(speech, chunk_s)):
            sent_at[i] = (time.monotonic(), (i * chunk_s) + len(ch) / SAMPLE_RATE)
            yield audio_chunk(pcm16(ch))
            time.sleep(chunk_s)
        yield control("flush")
        time.sleep(0.5)

    got: list[tuple[float, object]] = []
    with TalkingHeadClient(server.target, timeout=30) as c:
        for r in c.stream(requests()):
            which = r.WhichOneof("payload")
            if which == "header":
                lookahead["s"] = r.header.lookahead_seconds
            elif which == "frame":
                got.append((time.monotonic(), r.frame))
            elif which == "event" and r.event.kind == 1:
                lookahead["start"] = r.event.frame_index
    start = lookahead["start"] / 30
    latencies = []
    for i, (sent, audio_end) in sent_at.items():
        if i == len(sent_at) - 1:
            break                                               # the last chunk's frames come with the flush
        ready = start + audio_end - lookahead["s"]              # the last frame this chunk makes final
        first = next((t for t, f in got if not f.idle and f.time >= ready - 1 / 30 - 1e-9), None)
        assert first is not None
        latencies.append(first - sent)
    lat = np.array(latencies)
    assert np.percentile(lat, 95) <= 0.15, np.round(lat, 3)


def test_interrupt_stops_the_line_and_closes_the_mouth(server, speech):
    def requests():
        yield stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False)
        for ch in chunks(speech[: int(1.2 * SAMPLE_RATE)], 0.1):
            yield audio_chunk(pcm16(ch))
        yield control("interrupt")
        yield control("idle", idle_frames=15)

    with TalkingHeadClient(server.target, timeout=30) as c:
        _, frames, events, _ = collect(c.stream(requests()))
    assert 3 in [e.kind for e in events]                          # INTERRUPTED
    at = next(e.frame_index for e in events if e.kind == 3)
    assert frames[-1].idle and sum(f.idle for f in frames) == 15
    # by frame index: frames made but not yet sent when the interrupt came are dropped (the indices skip them)
    jaw = {f.index: f.params.blendshapes[BS["jawOpen"]] for f in frames}
    assert jaw[at] < 0.1 and max(v for i, v in jaw.items() if i > at) < 0.06   # closed by the interrupt's last frame, then idle
    assert len([f for f in frames if not f.idle]) < 1.2 * 30 + 6    # the rest of the audio was dropped


@pytest.mark.slow
def test_stream_images_with_an_avatar(server, speech):
    png = cv2.imencode(".png", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    with TalkingHeadClient(server.target, timeout=60) as c:
        avatar = c.create_avatar(png, size=256)
        reqs = [stream_config(sample_rate=24000, avatar=avatar.avatar_id, realtime=False)]
        x24 = np.interp(np.arange(0, len(speech), SAMPLE_RATE / 24000), np.arange(len(speech)), speech)
        reqs += [audio_chunk(pcm16(ch)) for ch in [x24[i:i + 4800] for i in range(0, 24000, 4800)]]
        reqs += [control("flush")]
        header, frames, _, _ = collect(c.stream(reqs))
    assert (header.width, header.height) == (256, 256)
    images = [decode_frame(f.image, "jpeg") for f in frames]
    assert all(im.shape == (256, 256, 3) for im in images) and len(images) == 30
    assert np.abs(images[15].astype(int) - images[0]).mean() > 0.3


@pytest.mark.slow
def test_eight_streams_at_once_do_not_mix(server, speech):
    from concurrent.futures import ThreadPoolExecutor

    from talkinghead.motion.stream import MotionStream
    from talkinghead.server.jobs import pcm16_samples

    pieces = chunks(speech, 0.2)

    def expected(seed):
        ms = MotionStream(MotionOptions(seed=seed, lipsync="acoustic"))
        out = []
        for p in pieces:   # what the server hears: the chunk as PCM16
            out += ms.push(pcm16_samples(pcm16(p), SAMPLE_RATE, (SAMPLE_RATE, SAMPLE_RATE)))
        out += ms.flush()
        return np.array([f.blendshapes for f in out])

    def one(seed):
        with TalkingHeadClient(server.target, timeout=60) as c:
            reqs = [stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False,
                                  motion=MotionOptions(seed=seed))]
            reqs += [audio_chunk(pcm16(p)) for p in pieces] + [control("flush")]
            frames = collect(c.stream(reqs))[1]
            return seed, np.array([f.params.blendshapes for f in frames])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for seed, got in results:
        want = expected(seed)
        assert got.shape == want.shape
        assert np.array_equal(got, want), seed     # each stream exactly its own, whatever it was batched with
    assert not np.allclose(results[0][1], results[1][1])


@pytest.mark.parametrize("kind, code, words", [
    ("no config", grpc.StatusCode.INVALID_ARGUMENT, "StreamConfig"),
    ("long chunk", grpc.StatusCode.INVALID_ARGUMENT, "too long"),
    ("bad rate", grpc.StatusCode.INVALID_ARGUMENT, "sample_rate"),
    ("flood", grpc.StatusCode.RESOURCE_EXHAUSTED, "faster"),
])
def test_bad_streams_get_the_right_code(server, speech, kind, code, words):
    cfg = stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=True)
    second = audio_chunk(pcm16(speech[: SAMPLE_RATE]))
    plans = {
        "no config": [second],
        "long chunk": [cfg, audio_chunk(pcm16(np.zeros(3 * SAMPLE_RATE, np.float32)))],
        "bad rate": [stream_config(sample_rate=4000, params_only=True)],
        "flood": [cfg] + [audio_chunk(pcm16(np.zeros(2 * SAMPLE_RATE, np.float32)))] * 20,
    }
    with TalkingHeadClient(server.target, timeout=30) as c, pytest.raises(ClientError) as err:
        collect(c.checked(c.stream(plans[kind])))
    assert err.value.code == code and words in err.value.details, err.value


def test_stream_also_drives_a_live_link_target(server, speech):
    """The server sends each frame's parameters to Unreal's Live Link port as it streams them."""
    import socket
    import struct

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    reqs = [stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False,
                          livelink_target=f"127.0.0.1:{port}", livelink_subject="NPC_07")]
    reqs += [audio_chunk(pcm16(ch)) for ch in chunks(speech, 0.25)] + [control("flush")]
    with TalkingHeadClient(server.target, timeout=60) as c:
        frames = collect(c.stream(reqs))[1]
    packets = []
    for _ in frames:
        packets.append(sock.recv(2048))
    sock.close()
    first = packets[0]
    assert first[0] == 6                                           # protocol version
    n = struct.unpack(">i", first[1:5])[0]
    m = struct.unpack(">i", first[5 + n:9 + n])[0]
    assert first[9 + n:9 + n + m] == b"NPC_07"
    values = struct.unpack(">61f", packets[10][-244:])
    jaw = values[BS["jawOpen"]]
    assert abs(jaw - frames[10].params.blendshapes[BS["jawOpen"]]) < 1e-6


def test_live_link_to_other_hosts_needs_the_servers_permission(server):
    reqs = [stream_config(sample_rate=SAMPLE_RATE, params_only=True, livelink_target="192.0.2.7:11111")]
    with TalkingHeadClient(server.target, timeout=30) as c, pytest.raises(ClientError) as err:
        collect(c.checked(c.stream(reqs)))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "--livelink-allow" in err.value.details


def _realtime_image_stream(target: str, speech: np.ndarray, avatar: str):
    def requests():
        yield stream_config(sample_rate=SAMPLE_RATE, avatar=avatar, realtime=True, quality=90)
        for ch in chunks(speech, 0.1):
            yield audio_chunk(pcm16(ch))
            time.sleep(0.1)
        yield control("flush")
        time.sleep(0.3)

    with TalkingHeadClient(target, timeout=60) as c:
        return collect(c.stream(requests()))


def test_a_stream_whose_images_cannot_keep_up_degrades_and_says_so(serve, speech, astronaut_png):
    """A server whose image budget no image can meet (stream_image_seconds far below what a
    frame costs) steps the images down, one level at a time, each step a KIND_IMAGES_DEGRADED
    event naming the new level; the frames and their params stay whole (every index, in order),
    only images shrink, lose quality and then come on every Nth frame."""
    from talkinghead.server.session import IMAGE_LEVELS
    from talkinghead.v1 import talkinghead_pb2 as pb

    srv = serve(limits=Limits(stream_image_seconds=1e-4))
    with TalkingHeadClient(srv.target, timeout=60) as c:
        avatar = c.create_avatar(astronaut_png, size=256).avatar_id
    header, frames, events, summary = _realtime_image_stream(srv.target, speech[:2 * SAMPLE_RATE], avatar)
    steps = [e for e in events if e.kind == pb.StreamEvent.KIND_IMAGES_DEGRADED]
    assert [e.images.level for e in steps] == list(range(1, len(IMAGE_LEVELS))), steps
    assert "budget" in steps[0].detail
    assert [f.index for f in frames] == list(range(len(frames))) and summary.frames == len(frames)
    assert all(f.HasField("params") for f in frames)
    first, last = steps[0].frame_index, steps[-1].frame_index
    assert all(f.image for f in frames if f.index < first), "full images until the first step"
    for f in frames:
        if f.index >= last:          # the last level: every 3rd frame's image, at half size
            assert bool(f.image) == (f.index % steps[-1].images.every == 0), f.index
    small = decode_frame(next(f.image for f in frames if f.index >= last and f.image), "jpeg")
    assert small.shape == (steps[-1].images.height, steps[-1].images.width, 3) == (128, 128, 3)
    assert len(next(f.image for f in frames if f.index >= last and f.image)) < 0.5 * len(frames[0].image)


def test_a_stream_that_keeps_up_keeps_its_images_whole(server, speech, astronaut_png):
    with TalkingHeadClient(server.target, timeout=60) as c:
        avatar = c.create_avatar(astronaut_png, size=256).avatar_id
    _, frames, events, _ = _realtime_image_stream(server.target, speech[:SAMPLE_RATE], avatar)
    assert not [e for e in events if e.images.level], events
    assert all(f.image for f in frames)


def test_images_a_little_over_budget_settle_on_every_other_frame_without_bouncing(monkeypatch):
    """Images that take 1.05 frame intervals each: the stream steps down to the first level
    that sends an image on every other frame (half the load) and stays there; it does not step
    back up to every frame (where they cannot keep up) and down again, over 20 s of frames.
    The session's own level logic, on a clock the fake image advances (no server: the point is
    the bookkeeping, frame by frame)."""
    import asyncio
    import types

    from talkinghead.server import session as sess
    from talkinghead.track import FaceParams
    from talkinghead.v1 import talkinghead_pb2 as pb

    fps, clock = 30.0, [0.0]
    monkeypatch.setattr(sess, "time", types.SimpleNamespace(perf_counter=lambda: clock[0], monotonic=time.monotonic))

    async def image(rig, params, options):
        clock[0] += 1.05 / fps
        return b"jpeg"

    async def run():
        s = sess.StreamSession(None, fps, SAMPLE_RATE, types.SimpleNamespace(size=(256, 256)), "jpeg", 90, True,
                               pb.Header(), limits=Limits(), run=None, image=image)
        events = []
        for i in range(int(20 * fps)):
            params = FaceParams(i / fps, np.zeros(52, np.float32))
            event = s._watch_images(params, 0.0)
            if event is not None:
                events.append(event)
            await s._frame(params, False, threading.Event())
        return s.level, events

    level, events = asyncio.run(run())
    every = [e.images.every for e in events]
    assert [e.kind for e in events].count(pb.StreamEvent.KIND_IMAGES_RESTORED) == 0, every
    assert sess.IMAGE_LEVELS[level][2] == 2 and every[-1] == 2, every


def test_a_chunks_motion_runs_on_the_event_loop_and_long_chunks_and_line_ends_on_the_pool(speech):
    """A trip to the thread pool costs more than a 100 ms chunk's motion (session.INLINE_AUDIO_S):
    such chunks are pushed on the event loop; a chunk longer than that and the line's flush go to
    the pool. The frames are the same either way: those of one MotionStream pushed the same audio."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from talkinghead.motion.stream import MotionStream
    from talkinghead.server import session as sess
    from talkinghead.server.jobs import pcm16_samples
    from talkinghead.v1 import talkinghead_pb2 as pb

    pool, trips = ThreadPoolExecutor(1), []
    pieces = chunks(speech[:SAMPLE_RATE], 0.1) + [speech[SAMPLE_RATE: SAMPLE_RATE + SAMPLE_RATE // 2]]

    async def run(fn, *args):   # the server's run: on the pool, recorded
        trips.append(args[0].__name__ if fn.__name__ == "_call" else fn.__name__)
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def requests():
        for p in pieces:
            yield audio_chunk(p)
        yield control("flush")

    async def main():
        s = sess.StreamSession(MotionStream(MotionOptions(seed=3)), 30.0, SAMPLE_RATE, None, "jpeg", 90, False,
                               pb.Header(), limits=Limits(), run=run, image=None)
        await s._read(requests(), threading.Event())
        return [item[0] for item in s.pending if isinstance(item, tuple)]

    frames = asyncio.run(main())
    assert trips == ["push", "flush"]                  # the 0.5 s chunk, the flush; ten 0.1 s chunks inline
    alone = MotionStream(MotionOptions(seed=3))
    expected = [f for p in pieces for f in alone.push(pcm16_samples(pcm16(p), SAMPLE_RATE, sess.STREAM_RATES))]
    expected += alone.flush()
    assert len(frames) == len(expected) == 45
    assert np.allclose([f.blendshapes for f in frames], [f.blendshapes for f in expected], atol=1e-6)


def test_streams_whose_chunks_come_together_are_pushed_in_one_batch(speech):
    """The server's Pushes: the chunks several streams send in the same turn of the event loop are
    pushed together (one phone-model call), each stream getting the frames of a MotionStream
    pushed the same audio alone. A stream whose motion a pool call holds pushes on the pool; a
    stream whose chunk fails fails alone."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from talkinghead.motion.stream import MotionStream
    from talkinghead.server import session as sess
    from talkinghead.server.jobs import pcm16_samples
    from talkinghead.server.pushes import Pushes
    from talkinghead.v1 import talkinghead_pb2 as pb

    pool, trips = ThreadPoolExecutor(1), []
    lines = [speech[k * 4000: k * 4000 + SAMPLE_RATE] for k in range(5)]

    async def run(fn, *args):
        trips.append(args[0].__name__ if fn.__name__ == "_call" else fn.__name__)
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def requests(x):
        for p in chunks(x, 0.1):
            yield audio_chunk(p)
        yield control("flush")

    async def main(pushes):
        sessions = [sess.StreamSession(MotionStream(MotionOptions(seed=k)), 30.0, SAMPLE_RATE, None, "jpeg", 90,
                                       False, pb.Header(), limits=Limits(), run=run, image=None, pushes=pushes)
                    for k in range(5)]
        sessions[3].lock.acquire()          # a pool call of stream 3 holds its motion...
        asyncio.get_running_loop().call_later(0.05, sessions[3].lock.release)   # ...for a while
        sessions[4].motion.feed = lambda x: 1 / 0                                 # stream 4's chunks fail
        results = await asyncio.gather(*(s._read(requests(x), threading.Event()) for s, x in zip(sessions, lines)),
                                       return_exceptions=True)
        return results, [[item[0] for item in s.pending if isinstance(item, tuple)] for s in sessions]

    pushes = Pushes()
    results, frames = asyncio.run(main(pushes))
    assert results[:4] == [None] * 4 and isinstance(results[4], ZeroDivisionError)
    assert pushes.pushed - pushes.batches >= 20           # streams 0-2 in step: their 30 chunks in ~10 batches
    assert trips.count("push") == 1 and trips.count("flush") == 5     # stream 3's first chunk on the pool
    for k in range(4):
        alone = MotionStream(MotionOptions(seed=k))
        want = [f for p in chunks(lines[k], 0.1) for f in alone.push(pcm16_samples(pcm16(p), SAMPLE_RATE, sess.STREAM_RATES))]
        want += alone.flush()
        assert len(frames[k]) == len(want) == 30
        assert np.array_equal([f.blendshapes for f in frames[k]], [f.blendshapes for f in want])


def test_a_realtime_stream_whose_frames_wait_pushes_its_next_chunks_together(speech):
    """Past what its core can do the server's frames wait to be sent; a realtime stream then holds
    its next chunks back and pushes them together (up to session.COALESCE_MAX_S of audio: a push
    costs about the same whatever its length), and once its frames have gone the audio held is
    pushed at once. A stream whose frames go out in time pushes each chunk as it comes."""
    import asyncio

    from talkinghead.motion.stream import MotionStream
    from talkinghead.server import session as sess
    from talkinghead.track import FaceParams
    from talkinghead.v1 import talkinghead_pb2 as pb

    pieces = chunks(speech[: int(0.4 * SAMPLE_RATE)], 0.1)

    async def run(fn, *args):
        return fn(*args)

    def session(waiting: bool, pushed: list[int]):
        motion = MotionStream(MotionOptions(seed=3))
        feed = motion.feed           # every push, on the loop or the pool, feeds its chunk once
        motion.feed = lambda x: (pushed.append(len(x)), feed(x))[1]
        s = sess.StreamSession(motion, 30.0, SAMPLE_RATE, None, "jpeg", 90, True, pb.Header(), limits=Limits(),
                               run=run, image=None)
        s.clock0 = -1e9
        if waiting:   # a frame made a second ago, still not sent
            s.pending.append((FaceParams(0.0, np.zeros(52, np.float32)), False, time.monotonic() - 1.0))
        return s

    async def requests():
        for p in pieces:
            yield audio_chunk(p)

    for waiting, want in ((False, [1600] * 4), (True, [4800, 1600])):   # the last held, pushed by the line's end
        pushed: list[int] = []
        asyncio.run(session(waiting, pushed)._read(requests(), threading.Event()))
        assert pushed == want, (waiting, pushed)

    async def sender():   # the frame that waited is sent, then the audio held is pushed and its frames sent
        pushed: list[int] = []
        s = session(True, pushed)
        s.held = [speech[: int(0.3 * SAMPLE_RATE)]]
        s.line_active = True
        forever = asyncio.Event()

        async def quiet():
            await forever.wait()
            yield   # pragma: no cover

        frames = []
        async for r in s.run(quiet(), threading.Event()):
            frames.append(r.frame.time)
            if len(frames) == 4:
                break
        return pushed, frames

    pushed, frames = asyncio.run(asyncio.wait_for(sender(), 10))   # never pushed: times out, fails
    assert pushed == [4800] and frames[0] == 0.0 and len(frames) == 4
