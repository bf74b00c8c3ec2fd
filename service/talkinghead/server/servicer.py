"""The TalkingHead servicer: parse, run the pipeline as cancellable work, yield.

Face and speech analysis (which hold the GIL for seconds) run in worker processes (`workers.py`),
killed when their call ends early; rendering, encoding and the streaming motion run on a thread
pool. Each call has a `threading.Event` that its threaded work checks, set when the call ends for
any reason (done, failed, cancelled by the client, past its deadline), so a client that goes away
stops its work within a frame. Everything a client controls is bounded by `Limits`. Domain errors
become status codes in one place (`status.code_for`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable

import numpy as np
import soxr
import structlog

from talkinghead.audio.decode import SAMPLE_RATE, check_header
from talkinghead.errors import AudioError, OptionsError, PortraitError, TalkingHeadError
from talkinghead.face.landmarks import check_image_size
from talkinghead.face.rig import Rig
from talkinghead.media import encode_frame
from talkinghead.motion.stream import LOOKAHEAD_S, MotionStream   # here, not in the first Stream: seconds of imports
from talkinghead.provenance import DEFAULT_PAYLOAD, Payload, Watermarker
from talkinghead.render import render
from talkinghead.server import convert, jobs
from talkinghead.server.avatars import AvatarCache
from talkinghead.server.jobs import pcm16_samples
from talkinghead.server.limits import Limits, Slots
from talkinghead.server.status import Cancelled, LimitError, abort
from talkinghead.server.workers import Workers
from talkinghead.track import FaceParams
from talkinghead.v1 import talkinghead_pb2 as pb
from talkinghead.v1 import talkinghead_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

RENDER_BATCH = 8            # Generate: frames rendered per trip to the thread pool
AUTO_FLUSH_S = 1.0          # Stream: a line with no new audio for this long is finished
STREAM_RATES = (8000, 48000)
IDLE_BATCH = 60             # Stream: idle frames computed per trip to the thread pool


def _client_of(context) -> str:
    """The client a call counts against: its address without the port."""
    peer = context.peer() or "unknown"
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class TalkingHeadServicer(pb_grpc.TalkingHeadServicer):
    def __init__(self, limits: Limits = Limits(), workers: int = 4, renderer: str = "cpu",
                 watermark_operator: int = 0) -> None:
        from talkinghead.render.device import pick_backend

        self.limits = limits
        # Generate renders RENDER_BATCH frames per trip: with the torch backend (a CUDA GPU)
        # that is one batched warp; Stream renders frame by frame on the CPU renderer.
        self.backend, self.device = pick_backend(renderer)
        self._torch: dict[int, object] = {}          # id(rig) -> TorchRenderer, a few recent ones
        self.slots = Slots(limits)
        self.avatars = AvatarCache(limits.avatar_cache_bytes, limits.avatar_ttl)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="talkinghead")
        self.workers = Workers(limits.analysis_processes)
        # Every image the server sends carries the provenance watermark; there is no switch to
        # turn it off in the service, only the operator id it carries.
        self.watermark = Watermarker(Payload(version=DEFAULT_PAYLOAD.version, operator=watermark_operator))

    def image(self, rig: Rig, params: FaceParams, enc: str, quality: int) -> bytes:
        """One frame rendered, marked as synthetic (the provenance watermark) and encoded."""
        return encode_frame(self.watermark.mark(render(rig, params)), enc, quality)

    async def _run(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # -- avatars -----------------------------------------------------------------------------

    async def _analyze(self, req: pb.CreateAvatarRequest) -> Rig:
        """The portrait's rig, from a worker process. The header is read here first: a file that
        declares too many pixels is refused before anything is decoded."""
        if not req.image:
            raise PortraitError("the portrait image is empty (0 bytes): send the bytes of a JPEG or PNG photo")
        if len(req.image) > self.limits.max_image_bytes:
            raise LimitError(f"the portrait is {len(req.image) / 1e6:.1f} MB, over the server's limit of "
                             f"{self.limits.max_image_bytes / 1e6:.0f} MB: send a smaller JPEG")
        image = bytes(req.image)
        check_image_size(image, max_pixels=self.limits.max_image_pixels)
        return await self.workers.run(jobs.portrait_rig, image, req.size or convert.DEFAULT_SIZE,
                                      convert.framing(req.framing), self.limits.max_image_pixels)

    async def CreateAvatar(self, request, context):
        try:
            with self.slots.take(_client_of(context)), self.slots.avatar():
                rig = await self._analyze(request)
            avatar_id, ttl = self.avatars.put(rig, request.ttl_seconds)
            return pb.Avatar(avatar_id=avatar_id, width=rig.width, height=rig.height, ttl_seconds=int(ttl),
                             faces_found=rig.faces_found)
        except TalkingHeadError as exc:
            await abort(context, exc)

    async def DeleteAvatar(self, request, context):
        try:
            convert.check_text(request, self.limits.max_text_chars)
            self.avatars.delete(request.avatar_id)
            return pb.DeleteAvatarResponse()
        except TalkingHeadError as exc:
            await abort(context, exc)

    async def _rig(self, portrait: pb.Portrait) -> Rig:
        which = portrait.WhichOneof("source")
        if which == "avatar_id":
            return self.avatars.get(portrait.avatar_id)
        if which == "inline":
            with self.slots.avatar():
                return await self._analyze(portrait.inline)
        raise PortraitError("no portrait in the request: set portrait.avatar_id (from CreateAvatar) or "
                            "portrait.inline, or ask for output.params_only")

    # -- Generate ----------------------------------------------------------------------------

    def _check_generate(self, request: pb.GenerateRequest) -> None:
        convert.check_text(request, self.limits.max_text_chars, skip=("transcript",))
        if len(request.transcript) > self.limits.max_transcript_chars:
            raise LimitError(f"the transcript is {len(request.transcript)} characters long, over the server's limit "
                             f"of {self.limits.max_transcript_chars}: send the words of this clip only, or split "
                             "the clip")
        if not request.audio.file and not request.audio.pcm16:
            raise AudioError("no audio in the request: set audio.file (a WAV/FLAC/MP3/... file's bytes) or "
                             "audio.pcm16 with audio.sample_rate")
        lim = self.limits              # cheap checks here, before the clip goes to a worker
        if request.audio.pcm16:
            jobs.check_pcm16(len(request.audio.pcm16), request.audio.sample_rate, jobs.PCM_RATES)
            jobs.check_duration(len(request.audio.pcm16) / 2 / request.audio.sample_rate, lim.min_audio_seconds)
        else:
            check_header(bytes(request.audio.file), max_seconds=lim.max_audio_seconds,
                         max_samples=lim.max_audio_samples, min_seconds=lim.min_audio_seconds)

    async def Generate(self, request, context):
        cancel = threading.Event()
        started = time.perf_counter()
        try:
            with self.slots.take(_client_of(context)):
                self._check_generate(request)
                options = convert.motion_options(request.motion)
                params_only = request.output.params_only
                enc, quality = convert.encoding(request.output)
                rig = None
                if not params_only:
                    convert.check_video_fps(options.fps)
                    rig = await self._rig(request.portrait)
                yield pb.GenerateResponse(header=convert.header(options.fps, rig.size if rig else None,
                                                                request.output.encoding))
                track = None
                async for item in self._motion(request, options):
                    if isinstance(item, pb.Progress):
                        yield pb.GenerateResponse(progress=item)
                    else:
                        track = item
                for start in range(0, track.n_frames, RENDER_BATCH):
                    stop = min(start + RENDER_BATCH, track.n_frames)
                    frames = await self._run(self._frames, rig, track, start, stop, enc, quality, cancel)
                    for frame in frames:
                        yield pb.GenerateResponse(frame=frame)
                yield pb.GenerateResponse(summary=pb.Summary(frames=track.n_frames, duration_seconds=track.duration,
                                                             compute_seconds=time.perf_counter() - started))
        except TalkingHeadError as exc:
            await abort(context, exc)
        finally:
            cancel.set()

    async def _motion(self, request: pb.GenerateRequest, options) -> AsyncIterator:
        """Decodes and animates the clip in a worker process (`jobs.clip_track`); yields
        pb.Progress while it works, then the track. A cancelled call kills the worker."""
        queue: asyncio.Queue = asyncio.Queue()
        audio, lim = request.audio, self.limits
        limits = {"max_seconds": lim.max_audio_seconds, "max_samples": lim.max_audio_samples,
                  "min_seconds": lim.min_audio_seconds}
        task = asyncio.ensure_future(self.workers.run(
            jobs.clip_track, bytes(audio.file), bytes(audio.pcm16), audio.sample_rate, options,
            request.transcript or None, limits,
            progress=lambda stage, fraction: queue.put_nowait(pb.Progress(stage=stage, fraction=0.2 * fraction))))
        try:
            while not task.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait((getter, task), return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            yield task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def _frames(self, rig, track, start, stop, enc, quality, cancel) -> list[pb.Frame]:
        if cancel.is_set():
            raise Cancelled()
        params = [track.frame(i) for i in range(start, stop)]
        if rig is None:
            images = [b""] * len(params)
        elif self.backend == "torch":
            batch = self._torch_renderer(rig).render_batch(params)
            images = [encode_frame(self.watermark.mark(f), enc, quality) for f in batch]
        else:
            images = []
            for p in params:
                if cancel.is_set():
                    raise Cancelled()
                images.append(self.image(rig, p, enc, quality))
        return [pb.Frame(index=start + k, time=p.t, params=convert.face_params_msg(p), image=image)
                for k, (p, image) in enumerate(zip(params, images))]

    def _torch_renderer(self, rig: Rig):
        from talkinghead.render.torch_backend import TorchRenderer

        key = id(rig)
        if key not in self._torch:
            if len(self._torch) >= 4:                      # keep GPU memory bounded
                self._torch.pop(next(iter(self._torch)))
            self._torch[key] = TorchRenderer(rig, self.device)
        return self._torch[key]

    # -- Stream ------------------------------------------------------------------------------

    async def Stream(self, request_iterator, context):
        cancel = threading.Event()
        started = time.perf_counter()
        try:
            with self.slots.take(_client_of(context)):
                requests = aiter(request_iterator)
                try:
                    first = await asyncio.wait_for(anext(requests, None), self.limits.first_message_seconds)
                except asyncio.TimeoutError:
                    raise LimitError(f"no StreamConfig within {self.limits.first_message_seconds:g} s of opening the "
                                     "stream: send the config as the first message, at once") from None
                if first is None or first.WhichOneof("payload") != "config":
                    raise OptionsError("the first message of a Stream must be a StreamConfig (config)")
                convert.check_text(first.config, self.limits.max_text_chars)
                session = await self._stream_session(first.config)
                yield pb.StreamResponse(header=session.header)
                async for response in session.run(requests, cancel):
                    yield response
                yield pb.StreamResponse(summary=pb.Summary(frames=session.sent,
                                                           duration_seconds=session.sent / session.fps,
                                                           compute_seconds=time.perf_counter() - started))
        except TalkingHeadError as exc:
            await abort(context, exc)
        finally:
            cancel.set()

    async def _stream_session(self, cfg: pb.StreamConfig) -> "StreamSession":
        options = convert.motion_options(cfg.motion, streaming=True)
        if not STREAM_RATES[0] <= cfg.sample_rate <= STREAM_RATES[1]:
            raise AudioError(f"sample_rate {cfg.sample_rate} Hz is not usable for a stream: send PCM16 at "
                             f"{STREAM_RATES[0]}..{STREAM_RATES[1]} Hz and say which rate in StreamConfig.sample_rate")
        enc, quality = convert.encoding(cfg.output)
        rig = None
        if not cfg.output.params_only:
            convert.check_video_fps(options.fps)
            rig = await self._rig(cfg.portrait)
        header = convert.header(options.fps, rig.size if rig else None, cfg.output.encoding, LOOKAHEAD_S)
        livelink = self._livelink(cfg, options.fps) if cfg.livelink_target else None
        return StreamSession(self, MotionStream(options), options.fps, cfg.sample_rate, rig, enc, quality,
                             cfg.realtime, header, livelink)

    def _livelink(self, cfg: pb.StreamConfig, fps: float):
        from talkinghead.exports.livelink_udp import LiveLinkSender, parse_target

        host, _ = parse_target(cfg.livelink_target)
        allowed = self.limits.livelink_allow
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

    def __init__(self, servicer: TalkingHeadServicer, motion, fps: float, rate: int, rig: Rig | None,
                 enc: str, quality: int, realtime: bool, header: pb.Header, livelink=None) -> None:
        self.livelink = livelink               # a LiveLinkSender, or None
        self.servicer, self.motion, self.fps, self.rate, self.rig = servicer, motion, fps, rate, rig
        self.enc, self.quality, self.realtime, self.header = enc, quality, realtime, header
        self.limits = servicer.limits
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

    # Motion calls run on the pool, one at a time per stream.
    def _call(self, fn, *args):
        with self.lock:
            return fn(*args)

    def _queue_frames(self, frames: list[FaceParams], idle: bool) -> None:
        for f in frames:
            self.pending.append((f, idle))
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

    async def _read(self, requests, cancel: threading.Event) -> None:
        run = self.servicer._run
        try:
            async for msg in requests:
                self.last_message = time.monotonic()
                await self._throttle()
                await self._wait_for_room()
                which = msg.WhichOneof("payload")
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
                    self._queue_frames(await run(self._call, self.motion.push, samples), False)
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
            # Frames computed but not yet sent are dropped: the interrupt is heard now.
            self.pending = collections.deque(p for p in self.pending if not isinstance(p, tuple))
            self.room.set()
            await self._finish_line(self.motion.interrupt, pb.StreamEvent.KIND_INTERRUPTED)
        elif action == pb.Control.ACTION_IDLE:
            n = min(int(control.idle_frames), int(60 * self.fps), self.max_pending)
            while n > 0:            # in short batches: each holds the GIL while it is computed
                k = min(n, IDLE_BATCH)
                self._queue_frames(await self.servicer._run(self._call, self.motion.idle, k), True)
                n -= k
                await self._wait_for_room()
        else:
            raise OptionsError("Control.action must be FLUSH, INTERRUPT or IDLE")

    async def _finish_line(self, how, kind: int) -> None:
        frames = await self.servicer._run(self._call, how)
        self._queue_frames(frames, False)
        self.line_active = False
        self._event(kind, max(self.motion.frames_emitted - 1, 0))

    async def run(self, requests, cancel: threading.Event) -> AsyncIterator[pb.StreamResponse]:
        reader = asyncio.ensure_future(self._read(requests, cancel))
        loop = asyncio.get_running_loop()
        start = loop.time()
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
                    params, idle = item
                    if self.realtime:
                        delay = start + params.t - loop.time()
                        if delay > 0:
                            await self._sleep(delay)
                            continue              # re-check: an interrupt may have emptied the queue
                    self._sent_one()
                    yield pb.StreamResponse(frame=await self._frame(params, idle, cancel))
                    if self.sent % 8 == 0:          # frames sent back to back: let other calls run
                        await asyncio.sleep(0)
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
                        self._queue_frames(await self.servicer._run(self._call, self.motion.idle, n), True)
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

    async def _frame(self, params: FaceParams, idle: bool, cancel: threading.Event) -> pb.Frame:
        index = int(round(params.t * self.fps))
        image = b""
        if self.rig is not None:
            image = await self.servicer._run(self.servicer.image, self.rig, params, self.enc, self.quality)
        self.sent += 1
        if self.livelink is not None:           # the same frame, at the same moment, to Unreal
            self.livelink.send(params, index)
        return pb.Frame(index=index, time=params.t, params=convert.face_params_msg(params), image=image, idle=idle)
