"""One Stream call's session: audio and controls in, paced frames (and Live Link) out.

The servicer parses the first message and resolves the portrait; everything after that — the
line state, idle frames on the stream's clock, backpressure, the message-rate throttle, the idle
timeout, the Live Link sender — lives here. The motion itself is `motion.stream.MotionStream`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from typing import AsyncIterator, Callable

import numpy as np
import soxr
import structlog

from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.errors import AudioError, LimitError, OptionsError
from talkinghead.face.rig import Rig
from talkinghead.motion.options import MotionOptions
from talkinghead.motion.stream import LOOKAHEAD_S, MotionStream   # here, not in the first Stream: seconds of imports
from talkinghead.render.frames import ImageOptions, shrunk_size
from talkinghead.server import convert
from talkinghead.server.jobs import pcm16_samples
from talkinghead.server.limits import Limits
from talkinghead.server.pushes import Pushes
from talkinghead.track import FaceParams
from talkinghead.v1 import talkinghead_pb2 as pb

log = structlog.get_logger(__name__)

AUTO_FLUSH_S = 1.0          # a line with no new audio for this long is finished
STREAM_RATES = (8000, 48000)
IDLE_BATCH = 60             # idle frames computed per trip to the thread pool
# Motion work this small runs on the event loop itself: a trip to the thread pool (a future, two
# thread switches, the loop woken through its pipe) cost more than a 100 ms chunk's motion
# (~1.5 ms) saves the loop, which holds the GIL's 5 ms switch interval against a pool thread
# anyway. Longer chunks and whole lines (begin_line, flush: a text's alignment) go to the pool.
INLINE_AUDIO_S = 0.4        # a chunk of at most this much audio
INLINE_IDLE_FRAMES = 8      # idle frames on the clock
# A realtime stream whose frames wait to be sent (the server is past what its core can do) has its
# next chunks held and pushed together, up to this much audio: a push costs mostly the same
# whatever its length (~1.3 ms of a 100 ms chunk's ~1.7), so past capacity the streams take
# bigger steps and keep up, a little later, instead of falling further behind with every chunk.
COALESCE_MAX_S = 0.3

# A realtime stream whose images cannot keep up with its clock steps down these levels (scale of
# the image, a cap on its JPEG quality, an image on every Nth frame), one step at a time, and back
# up once they are cheap again; the frames, their params and Live Link stay whole throughout.
IMAGE_LEVELS = ((1.0, 100, 1), (1.0, 60, 1), (0.75, 60, 1), (0.75, 50, 2), (0.5, 50, 3))
LATE_S = 0.1                # a frame that waited this long to be made (past its time and its audio) is behind
STEP_HOLD_S = 0.5           # at least this long between two steps down (a step takes a few frames to tell)
RESTORE_S = 2.0             # ... and this long of cheap images before a step back up
COST_SMOOTHING = 0.2        # weight of the newest image in the running mean of seconds per image


def stream_options(cfg: pb.StreamConfig) -> tuple[MotionOptions, str, int]:
    """The motion options and the image encoding a StreamConfig asks for, checked."""
    options = convert.motion_options(cfg.motion, streaming=True)
    if not STREAM_RATES[0] <= cfg.sample_rate <= STREAM_RATES[1]:
        raise AudioError(f"sample_rate {cfg.sample_rate} Hz is not usable for a stream: send PCM16 at "
                         f"{STREAM_RATES[0]}..{STREAM_RATES[1]} Hz and say which rate in StreamConfig.sample_rate")
    enc, quality = convert.encoding(cfg.output)
    if not cfg.output.params_only:
        convert.check_video_fps(options.fps)
    return options, enc, quality


def livelink_sender(cfg: pb.StreamConfig, fps: float, limits: Limits):
    """The LiveLinkSender a config asks for, if its host is one this server may send to."""
    from talkinghead.exports.livelink_udp import LiveLinkSender, parse_target

    host, _ = parse_target(cfg.livelink_target)
    allowed = limits.livelink_allow
    if "*" not in allowed and host not in allowed:
        raise OptionsError(f"this server does not send Live Link to {host!r} (allowed: {', '.join(allowed)}): "
                           "start it with --livelink-allow HOST, or send to the server's own machine")
    return LiveLinkSender(cfg.livelink_target, cfg.livelink_subject or "talkinghead", fps=fps)


class StreamSession:
    """One Stream call: reads audio and controls, turns them into frames, paces and sends them.

    The stream has one clock: frame i is at i / fps. In realtime mode frame i is sent at
    start + i / fps (or as soon as it is ready, when late); while no line is playing, idle frames
    fill the clock so the face stays alive. A line starts with its first audio chunk and ends
    with a flush, an interrupt, or AUTO_FLUSH_S without new audio.

    Bounds, in every mode: at most `max_pending` frames wait to be sent (past that the session
    stops reading the client's messages until the client reads frames: backpressure, which
    gRPC's flow control passes on to the sender), messages are read at most
    `Limits.max_messages_per_second` (faster senders wait), and a stream with no message for
    `Limits.stream_idle_seconds` is ended.
    """

    def __init__(self, motion: MotionStream, fps: float, rate: int, rig: Rig | None, enc: str, quality: int,
                 realtime: bool, header: pb.Header, *, limits: Limits, run: Callable, image: Callable,
                 livelink=None, pushes: Pushes | None = None) -> None:
        """`run(fn, *args)` awaits fn on the server's thread pool; `await image(rig, params,
        options)` renders, watermarks and encodes one frame (render.ImageOptions) off the event
        loop (the server's image processes, or that pool); `pushes`: the server's, where the
        streams' chunks that come together are pushed together (server.pushes); without it the
        session's chunks are pushed on their own."""
        self._pushes = pushes or Pushes()
        self.livelink = livelink               # a LiveLinkSender, or None
        self.motion, self.fps, self.rate, self.rig = motion, fps, rate, rig
        self.enc, self.quality, self.realtime, self.header = enc, quality, realtime, header
        self.limits, self._run, self._image = limits, run, image
        self.sent = 0
        self.pending: collections.deque = collections.deque()   # (FaceParams, idle) or pb.StreamEvent
        self.wake = asyncio.Event()
        self.lock = threading.Lock()          # MotionStream is not thread-safe
        self.line_active = False
        self.last_audio = 0.0
        self.audio_seconds = 0.0              # audio received in this session
        self.done = False
        self.max_pending = max(1, min(self.limits.max_buffered_frames, int(self.limits.max_buffered_seconds * fps)))
        self.room = asyncio.Event()           # set when a frame leaves `pending`
        self.last_message = time.monotonic()  # the idle clock (time spent waiting for room not counted)
        self.next_read = 0.0                  # the message-rate throttle's clock (loop time)
        # The image budget: wall seconds of image a frame may take (the frame interval unless the
        # limits say less), the running mean of what an image takes (frames sent without one do
        # not count: at the every-Nth levels the load a frame puts is this / N, `_image_load`),
        # the level and when it last changed.
        self.image_budget = min(1.0 / fps, limits.stream_image_seconds or 1.0 / fps)
        self.image_cost = 0.0
        self.level = 0
        self.level_since = 0                  # frames sent when the level last changed
        self.dropped = 0                      # frames sent without their image to catch up
        self.clock0: float | None = None      # loop time of frame 0 (run's start)
        self.held: list[np.ndarray] = []      # audio received but not pushed yet (_behind), 16 kHz
        self.coalesced = 0                    # chunks pushed together with the next

    @classmethod
    def open(cls, cfg: pb.StreamConfig, options: MotionOptions, rig: Rig | None, enc: str, quality: int, *,
             limits: Limits, run: Callable, image: Callable, pushes: Pushes | None = None) -> "StreamSession":
        """The session a StreamConfig asks for (options and encoding from `stream_options`)."""
        header = convert.header(options.fps, rig.size if rig else None, cfg.output.encoding, LOOKAHEAD_S)
        livelink = livelink_sender(cfg, options.fps, limits) if cfg.livelink_target else None
        return cls(MotionStream(options), options.fps, cfg.sample_rate, rig, enc, quality, cfg.realtime, header,
                   limits=limits, run=run, image=image, livelink=livelink, pushes=pushes)

    # Motion calls run on the pool, one at a time per stream, or inline when small (_motion).
    def _call(self, fn, *args):
        with self.lock:
            return fn(*args)

    async def _motion(self, inline: bool, fn, *args):
        """fn(*args) on the event loop when `inline` and no pool call of this stream holds the
        motion, else on the pool. Either way the other calls run before this one goes on (an
        inline call then yields once): a client sending chunks back to back does not hold the loop."""
        if inline and self.lock.acquire(blocking=False):
            try:
                out = fn(*args)
            finally:
                self.lock.release()
            await asyncio.sleep(0)
            return out
        return await self._run(self._call, fn, *args)

    def _queue_frames(self, frames: list[FaceParams], idle: bool) -> None:
        for f in frames:
            self.pending.append((f, idle, time.monotonic()))
        self.wake.set()

    def _event(self, kind: int, index: int) -> None:
        self.pending.append(pb.StreamEvent(kind=kind, frame_index=index))
        self.wake.set()

    async def _throttle(self) -> None:
        """At most max_messages_per_second, with a burst of one second's worth."""
        rate = self.limits.max_messages_per_second
        now = asyncio.get_running_loop().time()
        self.next_read = max(self.next_read, now - 1.0) + 1.0 / rate
        if self.next_read > now:
            await asyncio.sleep(self.next_read - now)

    async def _wait_for_room(self) -> None:
        """Backpressure: hold the client's next message until fewer than max_pending frames wait."""
        while len(self.pending) >= self.max_pending:
            self.room.clear()
            await self.room.wait()
            self.last_message = time.monotonic()

    def _sent_one(self) -> None:
        self.pending.popleft()
        self.room.set()

    def _behind(self) -> bool:
        """Whether the next frame to send has waited over LATE_S past when it could have gone (its
        time on the clock and its making, as the image levels measure it): realtime streams only
        (a stream off the clock is pushed chunk by chunk as the client sent it, reproducibly)."""
        if not self.realtime or self.clock0 is None:
            return False
        head = next((item for item in self.pending if isinstance(item, tuple)), None)
        if head is None:
            return False
        params, _, ready = head
        waited = min(asyncio.get_running_loop().time() - (self.clock0 + params.t), time.monotonic() - ready)
        return waited > LATE_S

    async def _push_held(self) -> None:
        """The audio held back, as one push."""
        if not self.held:
            return
        samples = self.held[0] if len(self.held) == 1 else np.concatenate(self.held)
        self.coalesced += len(self.held) - 1
        self.held = []
        inline = len(samples) <= INLINE_AUDIO_S * SAMPLE_RATE
        # inline: with other streams' chunks of the moment (None: a pool call holds the motion)
        frames = await self._pushes.push(self.lock, self.motion, samples) if inline else None
        if frames is None:
            frames = await self._motion(inline, self.motion.push, samples)
        self._queue_frames(frames, False)
        self._notices()

    async def _read(self, requests, cancel: threading.Event) -> None:
        try:
            async for msg in requests:
                self.last_message = time.monotonic()
                await self._throttle()
                await self._wait_for_room()
                which = msg.WhichOneof("payload")
                if which == "line" or (which == "audio" and msg.audio.HasField("line")):
                    await self._begin_line(msg.line if which == "line" else msg.audio.line)
                if which == "audio":
                    samples = pcm16_samples(bytes(msg.audio.pcm16), self.rate, STREAM_RATES)
                    seconds = len(samples) / self.rate
                    if seconds > self.limits.max_chunk_seconds:
                        raise AudioError(f"an audio chunk of {seconds:.2f} s is too long: send at most "
                                         f"{self.limits.max_chunk_seconds:g} s per AudioChunk")
                    ahead = self.audio_seconds - self.sent / self.fps
                    if self.realtime and ahead + seconds > self.limits.max_buffered_seconds:
                        raise LimitError(f"{ahead:.1f} s of audio are waiting to be played: send audio no faster "
                                         f"than {self.limits.max_buffered_seconds:g} s ahead of real time")
                    if self.rate != SAMPLE_RATE:
                        samples = soxr.resample(samples, self.rate, SAMPLE_RATE).astype(np.float32)
                    if not self.line_active:
                        self.line_active = True
                        self._event(pb.StreamEvent.KIND_LINE_STARTED, self.motion.frames_emitted)
                    self.audio_seconds += seconds
                    self.last_audio = time.monotonic()
                    self.held.append(samples)
                    if sum(map(len, self.held)) >= COALESCE_MAX_S * SAMPLE_RATE or not self._behind():
                        await self._push_held()
                elif which == "control":
                    await self._control(msg.control)
                elif which == "config":
                    raise OptionsError("a Stream takes one StreamConfig, as its first message only")
                if cancel.is_set():
                    return
        finally:
            if self.line_active:
                await self._finish_line(self.motion.flush, pb.StreamEvent.KIND_LINE_FINISHED)
            self.done = True
            self.wake.set()

    async def _control(self, control: pb.Control) -> None:
        action = control.action
        if action == pb.Control.ACTION_FLUSH:
            if self.line_active:
                await self._finish_line(self.motion.flush, pb.StreamEvent.KIND_LINE_FINISHED)
        elif action == pb.Control.ACTION_INTERRUPT:
            # Frames computed but not yet sent are dropped, and audio held back: the interrupt is heard now.
            self.pending = collections.deque(p for p in self.pending if not isinstance(p, tuple))
            self.held = []
            self.room.set()
            await self._finish_line(self.motion.interrupt, pb.StreamEvent.KIND_INTERRUPTED)
        elif action == pb.Control.ACTION_IDLE:
            await self._push_held()
            n = min(int(control.idle_frames), int(60 * self.fps), self.max_pending)
            while n > 0:            # in short batches: each holds the GIL while it is computed
                k = min(n, IDLE_BATCH)
                self._queue_frames(await self._run(self._call, self.motion.idle, k), True)
                n -= k
                await self._wait_for_room()
        else:
            raise OptionsError("Control.action must be FLUSH, INTERRUPT or IDLE")

    async def _begin_line(self, msg: pb.LineText) -> None:
        """What the next line says. A line still playing ends here (as FLUSH would)."""
        # read on the pool: a line of 20,000 marks takes 26 ms, over a realtime frame interval
        line = await self._run(convert.line_text, msg, self.motion.options.language, self.limits)
        await self._push_held()
        frames = await self._run(self._call, self.motion.begin_line, line)
        if self.line_active:
            self._queue_frames(frames, False)
            self.line_active = False
            self._notices()
            self._event(pb.StreamEvent.KIND_LINE_FINISHED, max(self.motion.frames_emitted - 1, 0))

    def _notices(self) -> None:
        for detail, index in self.motion.take_notices():
            self.pending.append(pb.StreamEvent(kind=pb.StreamEvent.KIND_TEXT_DROPPED, frame_index=index,
                                               detail=detail[: self.limits.max_text_chars]))
            self.wake.set()

    async def _finish_line(self, how, kind: int) -> None:
        await self._push_held()               # (an interrupt has dropped it)
        frames = await self._run(self._call, how)
        self._queue_frames(frames, False)
        self._notices()
        self.line_active = False
        self._event(kind, max(self.motion.frames_emitted - 1, 0))

    async def run(self, requests, cancel: threading.Event) -> AsyncIterator[pb.StreamResponse]:
        reader = asyncio.ensure_future(self._read(requests, cancel))
        loop = asyncio.get_running_loop()
        start = self.clock0 = loop.time()
        try:
            while True:
                if reader.done() and reader.exception() is not None:
                    raise reader.exception()
                if not self.done and time.monotonic() - self.last_message > self.limits.stream_idle_seconds:
                    raise LimitError(f"no message on this stream for {self.limits.stream_idle_seconds:g} s: the server "
                                     "ended it; send audio or a Control at least that often, or open a new stream")
                if self.pending:
                    item = self.pending[0]
                    if isinstance(item, pb.StreamEvent):
                        self._sent_one()
                        yield pb.StreamResponse(event=item)
                        continue
                    params, idle, ready = item
                    if self.realtime:
                        delay = start + params.t - loop.time()
                        if delay > 0:
                            await self._sleep(delay)
                            continue              # re-check: an interrupt may have emptied the queue
                    self._sent_one()
                    if self.realtime and self.rig is not None:
                        # How long it has waited past when it could have gone: past its time on the
                        # clock and past when its audio made it (speech frames come a chunk and the
                        # lookahead after their time; that is not the images' doing).
                        waited = min(loop.time() - (start + params.t), time.monotonic() - ready)
                        event = self._watch_images(params, waited)
                        if event is not None:
                            yield pb.StreamResponse(event=event)
                        # Behind: this frame goes without its image, so the stream catches up now
                        # rather than once the cheaper level tells.
                        if waited > LATE_S:
                            self.dropped += 1
                            yield pb.StreamResponse(frame=await self._frame(params, idle, cancel, image=False))
                            continue
                    yield pb.StreamResponse(frame=await self._frame(params, idle, cancel))
                    if self.sent % 8 == 0:          # frames sent back to back: let other calls run
                        await asyncio.sleep(0)
                    continue
                if self.held:                     # held back while frames waited: they are sent now
                    await self._push_held()
                    continue
                if self.done and reader.done():
                    if reader.exception() is not None:
                        raise reader.exception()
                    return
                if self.line_active and time.monotonic() - self.last_audio > AUTO_FLUSH_S:
                    await self._finish_line(self.motion.flush, pb.StreamEvent.KIND_LINE_FINISHED)
                    continue
                if self.realtime and not self.line_active:
                    due = start + self.motion.frames_emitted / self.fps
                    if loop.time() >= due:            # nothing playing: the face idles on the clock
                        n = max(1, int((loop.time() - due) * self.fps) + 1)
                        self._queue_frames(await self._motion(n <= INLINE_IDLE_FRAMES, self.motion.idle, n), True)
                        continue
                    timeout = due - loop.time()
                else:
                    timeout = 0.1
                await self._sleep(max(timeout, 0.001))
        finally:
            cancel.set()
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            if self.livelink is not None:
                self.livelink.close()
            if self.dropped or self.level:
                log.info("stream.images_degraded", frames=self.sent, dropped=self.dropped, level=self.level)
            if self.coalesced:
                log.info("stream.chunks_coalesced", chunks=self.coalesced, frames=self.sent)

    async def _sleep(self, seconds: float) -> None:
        """Until `seconds` pass or new frames/controls wake the session. A timer handle rather
        than asyncio.wait_for, which makes a task per frame: that overhead alone was a tenth of
        a core at 50 streams."""
        self.wake.clear()
        timer = asyncio.get_running_loop().call_later(seconds, self.wake.set)
        try:
            await self.wake.wait()
        finally:
            timer.cancel()

    def _image_options(self) -> ImageOptions:
        scale, cap, _ = IMAGE_LEVELS[self.level]
        return ImageOptions(self.enc, min(self.quality, cap) if self.enc == "jpeg" else self.quality,
                            scale if self.enc != "raw" else 1.0)     # raw frames carry no size: never shrunk

    def _image_load(self) -> float:
        """Wall seconds of image a frame costs at this level (an image on every Nth frame)."""
        return self.image_cost / IMAGE_LEVELS[self.level][2]

    def _watch_images(self, params: FaceParams, late: float) -> pb.StreamEvent | None:
        """Before frame `params` is made, `late` seconds after it could have been:
        a step down when the images cost more than the budget or the stream is behind, a step
        up when they have been cheap for RESTORE_S; the event that says so, or None."""
        held = (self.sent - self.level_since) / self.fps
        load = self._image_load()
        behind = load > self.image_budget or late > LATE_S
        if behind and held >= STEP_HOLD_S and self.level < len(IMAGE_LEVELS) - 1:
            self.level += 1
            kind = pb.StreamEvent.KIND_IMAGES_DEGRADED
            detail = (f"images took {1000 * load:.0f} ms a frame (budget {1000 * self.image_budget:.0f} ms), "
                      f"frames waited {1000 * max(late, 0.0):.0f} ms")
        elif (not behind and self.level > 0 and held >= RESTORE_S and late < LATE_S / 5
              and load < 0.5 * self.image_budget):
            self.level -= 1
            kind = pb.StreamEvent.KIND_IMAGES_RESTORED
            detail = f"images take {1000 * load:.0f} ms a frame (budget {1000 * self.image_budget:.0f} ms)"
        else:
            return None
        self.level_since = self.sent
        log.info("stream.images_level", level=self.level, detail=detail)
        options = self._image_options()
        w, h = shrunk_size(*self.rig.size, options.scale)
        level = pb.ImageLevel(level=self.level, width=w, height=h, every=IMAGE_LEVELS[self.level][2],
                              jpeg_quality=options.quality if self.enc == "jpeg" else 0)
        return pb.StreamEvent(kind=kind, frame_index=int(round(params.t * self.fps)), detail=detail, images=level)

    async def _frame(self, params: FaceParams, idle: bool, cancel: threading.Event, image: bool = True) -> pb.Frame:
        index = int(round(params.t * self.fps))
        wanted, image = image, b""
        if self.rig is not None and wanted and index % IMAGE_LEVELS[self.level][2] == 0:
            began = time.perf_counter()
            image = await self._image(self.rig, params, self._image_options())
            self.image_cost += COST_SMOOTHING * (time.perf_counter() - began - self.image_cost)
        self.sent += 1
        if self.livelink is not None:           # the same frame, at the same moment, to Unreal
            self.livelink.send(params, index)
        return pb.Frame(index=index, time=params.t, params=convert.face_params_msg(params), image=image, idle=idle)
