"""Stream images off the event loop, several streams' at once.

`ImageProcesses` (the CPU renderer): in processes of their own, one per core. The CPU renderer holds the GIL
for most of a frame (numpy's many small steps), so threads in the server's process share one
core however many it has (benchmarks/stream_image_throughput.py: 2 threads on 2 cores made 5 %
more frames than 1, 2 processes 77 % more). Each
`ImageProcesses` worker renders, watermarks and encodes whole frames (`render.FrameMaker`);
the server sends it, per frame, the rig's key, the FaceParams and the ImageOptions, and gets the
encoded image back (the rig itself goes only when the worker asks for it: it keeps the last RIGS_KEPT).

Any idle worker takes the next frame of any stream, so one busy avatar does not wait on its
own worker while others idle. The processes start with the first Stream that asks for images
(`ready()`, awaited before that stream's header goes out, so its first frames do not wait for
the imports), fresh (`python -m talkinghead.server.images`, never forked: see workers.py), at
the server's own priority (images are realtime). A worker that dies is replaced; the frame it
had goes out without its image (logged), the stream goes on.

`ImageBatches` (the torch renderer, on a GPU): the frames the streams want within BATCH_WAIT_S of
each other go to the device as one batch (`FrameMaker.images_across`, whatever their rigs), on
the server's thread pool; while a batch renders the next one gathers. Each stream has one frame
in flight, so without the wait streams would take turns rather than share trips.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import structlog

from talkinghead.errors import MediaError
from talkinghead.face.rig import Rig
from talkinghead.render.frames import FrameMaker, ImageOptions
from talkinghead.server.workers import WorkerCrashed, _Worker, reply, run_worker
from talkinghead.track import FaceParams

log = structlog.get_logger(__name__)

RIGS_KEPT = 8               # rigs a worker keeps (it asks for one it lacks)
MAX_AUTO = 8                # processes when the count is automatic: one per core, at most this
STREAM_BATCH = 32           # torch: frames of several streams per trip to the device
BATCH_WAIT_S = 0.008        # torch: how long a frame waits for others to join its batch
WARM_SIZES = (512, 256)     # frame sizes whose watermark pattern a process makes before it is ready


def auto_count(asked: int) -> int:
    """`asked` processes; -1: one per core this process may run on, at most MAX_AUTO."""
    if asked >= 0:
        return asked
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO))


class ImageProcesses:
    """`await images.image(rig, params, options)`: one encoded, watermarked frame from a worker
    process (`n` of them; `operator`: the watermark's operator id)."""

    def __init__(self, n: int, operator: int = 0) -> None:
        if n < 1:
            raise ValueError(f"image processes: at least 1, not {n}")
        self.n, self.operator = n, operator
        self._keys: collections.OrderedDict[int, tuple[Rig, int]] = collections.OrderedDict()
        self._next_key = 0
        self._reset()

    def _reset(self) -> None:
        self._threads = ThreadPoolExecutor(max_workers=self.n + 1, thread_name_prefix="talkinghead-images")
        self._idle: asyncio.Queue | None = None   # idle workers; None once none is left
        self._starting: asyncio.Future | None = None
        self._workers: set[_Worker] = set()
        self._spawning = 0                    # replacements on their way
        self._closed = False

    async def ready(self) -> None:
        """Start the processes (once) and wait until each has loaded the renderer."""
        if self._starting is None:
            self._idle = asyncio.Queue()
            self._starting = asyncio.gather(*(self._start() for _ in range(self.n)))
        starting = self._starting
        try:
            await asyncio.shield(starting)
        except WorkerCrashed as exc:
            if self._starting is starting:    # (the first of its waiters to hear)
                self.close()
                self._reset()                 # the next stream tries again
            raise MediaError(f"the image processes could not start ({exc}); see the server's log") from exc

    async def _start(self) -> None:
        """A fresh worker, once it has loaded the renderer, among the idle ones."""
        idle = self._idle
        worker = await asyncio.get_running_loop().run_in_executor(self._threads, self._spawn)
        if self._closed or self._idle is not idle:      # closed, or its start was given up (ready())
            worker.kill(self._threads)
            return
        self._workers.add(worker)
        idle.put_nowait(worker)

    def _spawn(self) -> _Worker:
        """In a thread: a fresh worker process, once it says it is ready."""
        worker = _Worker("talkinghead.server.images", (str(self.operator),))
        try:
            message = worker.conn.recv()
        except (EOFError, OSError) as exc:
            worker.kill()
            raise WorkerCrashed(f"an image process ended while starting (exit code {worker.exit_code()})") from exc
        if message != ("ready", None):
            worker.kill()
            raise WorkerCrashed(f"an image process said {message!r} instead of being ready")
        return worker

    def _key(self, rig: Rig) -> int:
        """The rig's key: the same while the rig is among the last 4 * RIGS_KEPT used (held here
        so its id cannot be reused meanwhile)."""
        hit = self._keys.get(id(rig))
        if hit is not None and hit[0] is rig:
            self._keys.move_to_end(id(rig))
            return hit[1]
        self._next_key += 1
        self._keys[id(rig)] = (rig, self._next_key)
        while len(self._keys) > 4 * RIGS_KEPT:
            self._keys.popitem(last=False)
        return self._next_key

    async def image(self, rig: Rig, params: FaceParams, options: ImageOptions) -> bytes:
        await self.ready()
        key = self._key(rig)
        worker = await self._idle.get()
        if worker is None:                        # every process died and none could be restarted
            self._idle.put_nowait(None)           # (for the next frame to hear it too)
            raise MediaError("no image process is running (they failed to restart); see the server's log")
        job = asyncio.get_running_loop().run_in_executor(self._threads, self._drive, worker, key, rig, params, options)
        # The worker goes back only once its reply is read, even if this call is cancelled first.
        job.add_done_callback(lambda done: self._release(worker, done))
        try:
            kind, value = await asyncio.shield(job)
        except WorkerCrashed as exc:
            log.warning("images.worker_crashed", detail=str(exc), note="this frame goes without its image")
            return b""
        if kind == "error":
            raise value
        return value

    @staticmethod
    def _drive(worker: _Worker, key: int, rig: Rig, params: FaceParams, options: ImageOptions):
        """In a thread: the frame's job (the rig too when the worker asks for it), its reply."""
        try:
            worker.conn.send((key, None, params, options))
            kind, value = worker.conn.recv()
            if kind == "missing":                 # a rig it has not had, or has let go
                worker.conn.send((key, rig, params, options))
                kind, value = worker.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise WorkerCrashed(f"an image process ended during a frame (exit code {worker.exit_code()})") from exc
        return kind, value

    def _release(self, worker: _Worker, done: asyncio.Future) -> None:
        if self._closed:
            return
        if done.cancelled() or done.exception() is not None:
            self._workers.discard(worker)
            worker.kill(self._threads)
            self._spawning += 1
            fresh = asyncio.ensure_future(self._start())        # a fresh one takes its place
            fresh.add_done_callback(self._spawned)
        else:
            self._idle.put_nowait(worker)

    def _spawned(self, done: asyncio.Future) -> None:
        self._spawning -= 1
        if not done.cancelled() and done.exception() is not None:
            log.error("images.respawn_failed", detail=str(done.exception()), running=len(self._workers))
            if not self._workers and not self._spawning:
                self._idle.put_nowait(None)       # none left: the frames waiting for one fail rather than wait on

    def close(self) -> None:
        self._closed = True
        for worker in list(self._workers):
            worker.kill()
        self._workers.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)


class ImageBatches:
    """`await batches.image(rig, params, options)`: one encoded, watermarked frame, rendered in
    a batch with the frames other streams asked for meanwhile (at most STREAM_BATCH a trip).
    `run(fn, *args)` awaits fn on the server's thread pool."""

    def __init__(self, frames: FrameMaker, run: Callable) -> None:
        self.frames, self._run = frames, run
        self._queue: list[tuple[Rig, FaceParams, ImageOptions, asyncio.Future]] = []
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.batches = self.mixed = 0          # batches made; of them, with frames of several rigs

    async def ready(self) -> None:
        """Nothing to start (the device's renderer is made with a rig's first frame)."""

    async def image(self, rig: Rig, params: FaceParams, options: ImageOptions) -> bytes:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((rig, params, options, done))
        if self._full is None:
            self._full = asyncio.Event()
        if len(self._queue) >= STREAM_BATCH:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._queue:
            if len(self._queue) < STREAM_BATCH:                 # other streams' frames join the batch
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), BATCH_WAIT_S)
            self._full.clear()
            batch = [item for item in self._queue[:STREAM_BATCH] if not item[3].cancelled()]
            del self._queue[:STREAM_BATCH]
            if not batch:
                continue
            self.batches += 1
            self.mixed += len({id(rig) for rig, *_ in batch}) > 1
            try:
                images = await self._run(self.frames.images_across, [item[:3] for item in batch], STREAM_BATCH)
            except Exception:  # noqa: BLE001 - one frame's failure must not fail the others: one by one
                log.warning("images.batch_failed", frames=len(batch), note="rendering its frames one by one")
                for rig, params, options, done in batch:
                    try:
                        image = await self._run(self.frames.images_across, [(rig, params, options)])
                    except Exception as exc:  # noqa: BLE001 - handed to that frame's stream
                        if not done.done():
                            done.set_exception(exc)
                    else:
                        if not done.done():
                            done.set_result(image[0])
                continue
            for (_, _, _, done), image in zip(batch, images):
                if not done.done():
                    done.set_result(image)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _worker_main(conn, operator: str) -> None:
    """The image process: the rigs it was sent (the last RIGS_KEPT), a frame per job (operator:
    the watermark's operator id, from its command line)."""
    import cv2

    from talkinghead.provenance import DEFAULT_PAYLOAD, Payload, watermarker
    from talkinghead.render.frames import FrameMaker

    cv2.setNumThreads(1)                    # one process per core: OpenCV's own threads would only contend
    frames = FrameMaker("cpu", watermark=Payload(version=DEFAULT_PAYLOAD.version, operator=int(operator)))
    for size in WARM_SIZES:                 # the watermark's pattern for the usual sizes (tens of ms each)
        watermarker(frames.watermark).offsets(size, size)
    rigs: collections.OrderedDict[int, Rig] = collections.OrderedDict()
    log.info("images.worker_ready", pid=os.getpid())
    conn.send(("ready", None))
    while True:
        try:
            key, rig, params, options = conn.recv()
        except (EOFError, OSError):
            return
        if rig is not None:
            rigs[key] = rig
        rig = rigs.get(key)
        if rig is None:
            conn.send(("missing", None))
            continue
        rigs.move_to_end(key)
        while len(rigs) > RIGS_KEPT:
            rigs.popitem(last=False)
        reply(conn, lambda: frames.images(rig, [params], options)[0])


if __name__ == "__main__":
    run_worker(_worker_main)
