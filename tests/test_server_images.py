"""Stream images made in the server's image processes (server/images.py), with a real server
on a loopback port and real worker processes: the same images as the server's threads make,
a worker killed mid-stream is replaced (the stream goes on), and more avatars than a worker
keeps are each drawn from their own portrait."""

from __future__ import annotations

import asyncio
import os
import signal

import cv2
import numpy as np
import pytest
from skimage import data

from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.client import TalkingHeadClient, audio_chunk, control, stream_config
from talkinghead.face import analyze_portrait
from talkinghead.media import decode_frame
from talkinghead.motion.options import MotionOptions
from talkinghead.render.frames import ImageOptions
from talkinghead.server.images import RIGS_KEPT, ImageProcesses
from talkinghead.server.limits import Limits
from talkinghead.track import FaceParams

LINE = "Bob bought a map of the big palm park."


def _stream(target: str, png: bytes, speech: np.ndarray, seconds: float = 1.0, seed: int = 3, on_frame=None):
    pcm = (np.clip(speech[:int(seconds * SAMPLE_RATE)], -1, 1) * 32767).astype("<i2").tobytes()
    step = int(0.1 * SAMPLE_RATE) * 2
    with TalkingHeadClient(target, timeout=120) as c:
        avatar = c.create_avatar(png, size=256).avatar_id
        reqs = [stream_config(sample_rate=SAMPLE_RATE, avatar=avatar, realtime=False, motion=MotionOptions(seed=seed))]
        reqs += [audio_chunk(pcm[i:i + step]) for i in range(0, len(pcm), step)] + [control("flush")]
        frames = []
        for r in c.stream(iter(reqs)):
            if r.WhichOneof("payload") == "frame":
                frames.append(r.frame)
                if on_frame is not None:
                    on_frame(len(frames))
    return frames


def test_image_processes_make_the_threads_images(serve, spoken, astronaut_png):
    """The same stream through a server rendering on its threads and one with two image
    processes: every frame's image is the same, byte for byte (same renderer, watermark and
    JPEG encoder, only another process)."""
    speech = spoken(LINE)
    threads = serve(limits=Limits(image_processes=0))
    procs = serve(limits=Limits(image_processes=2))
    assert threads.running.servicer.images is None and procs.running.servicer.images.n == 2
    a, b = _stream(threads.target, astronaut_png, speech), _stream(procs.target, astronaut_png, speech)
    assert len(a) == len(b) >= 30
    assert all(f.image for f in b)
    assert [f.image for f in a] == [f.image for f in b]


def test_a_killed_image_process_is_replaced_and_the_stream_goes_on(serve, spoken, astronaut_png):
    speech = spoken(LINE)
    srv = serve(limits=Limits(image_processes=1))
    killed = []

    def kill_once(n):
        if n == 10 and not killed:
            images = srv.running.servicer.images
            (worker,) = images._workers
            killed.append(worker.pid)
            os.kill(worker.pid, signal.SIGKILL)

    frames = _stream(srv.target, astronaut_png, speech, seconds=2.0, on_frame=kill_once)
    assert killed and len(frames) >= 60
    assert [f.index for f in frames] == list(range(len(frames)))
    missing = [f.index for f in frames if not f.image]
    assert len(missing) <= 2, missing                     # the frame (or two) the dead process had
    assert all(f.image for f in frames[-30:])             # a fresh process makes the rest
    (fresh,) = srv.running.servicer.images._workers
    assert fresh.pid != killed[0]


def test_more_avatars_than_a_process_keeps_each_get_their_own_face(landmarker_rigs):
    """RIGS_KEPT + 3 rigs of different sizes in turn through one process, twice round (the
    process asks for each rig, the second time round because it has let it go), then the last
    one again (still kept): every image has its rig's size."""
    rigs = landmarker_rigs
    params = FaceParams(0.0, np.zeros(52, np.float32))

    async def run():
        images = ImageProcesses(1)
        try:
            return [decode_frame(await images.image(rig, params, ImageOptions()), "jpeg").shape[:2]
                    for rig in rigs + rigs + rigs[-1:]]
        finally:
            images.close()

    sizes = asyncio.run(run())
    assert sizes == [(r.size[1], r.size[0]) for r in rigs + rigs + rigs[-1:]]


def test_frames_waiting_for_a_process_that_cannot_be_replaced_fail_rather_than_wait(landmarker_rigs):
    """The only process dies and its replacement fails to start: the frame it had goes without
    its image, and the frame already waiting for a process (and every one after) fails with
    MediaError at once instead of waiting for a process that will never come."""
    from talkinghead.errors import MediaError
    from talkinghead.server.workers import WorkerCrashed

    rig, params = landmarker_rigs[0], FaceParams(0.0, np.zeros(52, np.float32))

    def cannot_start():
        raise WorkerCrashed("out of memory (the test says)")

    async def run():
        images = ImageProcesses(1)
        try:
            assert await images.image(rig, params, ImageOptions())
            images._spawn = cannot_start
            (worker,) = images._workers
            os.kill(worker.pid, signal.SIGKILL)
            crashed = await images.image(rig, params, ImageOptions())
            outcomes = []
            for _ in range(2):
                try:
                    await asyncio.wait_for(images.image(rig, params, ImageOptions()), 10)
                except MediaError as exc:
                    outcomes.append(str(exc))
            return crashed, outcomes
        finally:
            images.close()

    crashed, outcomes = asyncio.run(run())
    assert crashed == b""
    assert len(outcomes) == 2 and all("failed to restart" in o for o in outcomes), outcomes


def test_a_process_that_starts_after_the_others_failed_is_not_left_running():
    """Of two processes, one fails to start while the other is still starting: ready() fails
    (the next stream tries again), and the one that starts late is ended, not left running
    where no frame ever reaches it."""
    import threading
    import time

    from talkinghead.errors import MediaError
    from talkinghead.server.workers import WorkerCrashed

    late = []
    calls = threading.Lock()
    first = [True]

    async def run():
        images = ImageProcesses(2)
        spawn = images._spawn

        def one_fails_one_is_slow():
            with calls:
                failing, first[0] = first[0], False
            time.sleep(0.2)                           # both on their way
            if failing:
                raise WorkerCrashed("could not start (the test says)")
            time.sleep(0.5)
            late.append(spawn())
            return late[-1]

        images._spawn = one_fails_one_is_slow
        try:
            with pytest.raises(MediaError, match="could not start"):
                await images.ready()
            for _ in range(300):                      # until the late one has started and been dealt with
                if late and late[0].process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            return set(images._workers)
        finally:
            images.close()

    kept = asyncio.run(run())
    assert late, "the slow process never started"
    assert not kept and late[0].process.poll() is not None, "the late process was left running"


@pytest.fixture(scope="module")
def landmarker_rigs():
    from talkinghead.face import FaceLandmarker

    with FaceLandmarker() as lm:
        return [analyze_portrait(data.astronaut(), 256 + 16 * k, "face", lm) for k in range(RIGS_KEPT + 3)]


@pytest.mark.slow
def test_torch_streams_share_batches_and_each_gets_its_own_frames(serve, spoken, astronaut_png):
    """A server with the torch renderer (torch's CPU build here; a GPU in production): two
    streams of different avatars at once have their frames rendered in shared batches (frames
    of both rigs in one trip), and each stream's images are exactly those it gets alone."""
    pytest.importorskip("torch")
    speech = spoken(LINE)
    srv = serve(renderer="torch")
    batches = srv.running.servicer.images
    assert type(batches).__name__ == "ImageBatches"
    pngs = [astronaut_png, cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(data.astronaut()[:, ::-1]),
                                                      cv2.COLOR_RGB2BGR))[1].tobytes()]

    with TalkingHeadClient(srv.target, timeout=300) as c:
        avatars = [c.create_avatar(png, size=256).avatar_id for png in pngs]
    pcm = (np.clip(speech[:SAMPLE_RATE], -1, 1) * 32767).astype("<i2").tobytes()

    def run(avatar, seed):
        with TalkingHeadClient(srv.target, timeout=300) as c:
            reqs = [stream_config(sample_rate=SAMPLE_RATE, avatar=avatar, realtime=False, motion=MotionOptions(seed=seed))]
            reqs += [audio_chunk(pcm[i:i + 3200]) for i in range(0, len(pcm), 3200)] + [control("flush")]
            return [r.frame.image for r in c.stream(iter(reqs)) if r.WhichOneof("payload") == "frame"]

    from concurrent.futures import ThreadPoolExecutor

    alone = [run(avatar, seed) for seed, avatar in enumerate(avatars)]
    mixed_before = batches.mixed
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(run, avatars, range(2)))
    assert batches.mixed > mixed_before, ("no batch held frames of both streams", batches.batches, batches.mixed)
    for a, t in zip(alone, together):
        assert len(a) == len(t) >= 30 and all(t)
        assert a == t
    assert alone[0] != alone[1]


def test_full_torch_batches_go_at_once(monkeypatch):
    """Three batches' worth of frames waiting: each batch goes as soon as the one before is back,
    none waits BATCH_WAIT_S for frames to join it (it is full). A stand-in renderer (the batching
    is the point; the real one is in the test above)."""
    import time

    from talkinghead.server import images as module

    monkeypatch.setattr(module, "BATCH_WAIT_S", 1.0)

    class Renderer:
        def images_across(self, items, batch=None):
            return [b"image"] * len(items)

    async def run():
        async def pool(fn, *args):
            return fn(*args)

        batches = module.ImageBatches(Renderer(), pool)
        began = time.monotonic()
        got = await asyncio.gather(*(batches.image(None, None, None) for _ in range(3 * module.STREAM_BATCH)))
        return batches.batches, got, time.monotonic() - began

    n, got, seconds = asyncio.run(run())
    assert n == 3 and got == [b"image"] * (3 * module.STREAM_BATCH)
    assert seconds < 0.5, seconds
