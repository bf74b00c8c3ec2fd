"""The TalkingHead servicer: parse, run the pipeline as cancellable work, yield.

Face and speech analysis (which hold the GIL for seconds) run in worker processes (`workers.py`),
killed when their call ends early; rendering, encoding and the streaming motion run on a thread
pool. Each call has a `threading.Event` that its threaded work checks, set when the call ends for
any reason (done, failed, cancelled by the client, past its deadline), so a client that goes away
stops its work within a frame. Everything a client controls is bounded by `Limits`. Domain errors
become status codes in one place (`status.code_for`). A Stream call, once its config is parsed and its
portrait resolved, is a `session.StreamSession`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable

import structlog

from talkinghead.audio.decode import check_header
from talkinghead.errors import AudioError, OptionsError, PortraitError, TalkingHeadError
from talkinghead.face.landmarks import check_image_size
from talkinghead.face.rig import Rig
from talkinghead.motion import animate
from talkinghead.provenance import DEFAULT_PAYLOAD, Payload
from talkinghead.render.frames import FrameMaker, ImageOptions
from talkinghead.server import convert, jobs
from talkinghead.server.analyses import AnalysisCache, analysis_key
from talkinghead.server.avatars import AvatarCache
from talkinghead.server.images import ImageBatches, ImageProcesses, auto_count
from talkinghead.server.limits import Limits, Slots
from talkinghead.server.pushes import Pushes
from talkinghead.server.session import StreamSession, stream_options
from talkinghead.server.status import Cancelled, LimitError, abort
from talkinghead.server.workers import Workers
from talkinghead.track import FaceParams
from talkinghead.v1 import talkinghead_pb2 as pb
from talkinghead.v1 import talkinghead_pb2_grpc as pb_grpc

log = structlog.get_logger(__name__)

RENDER_BATCH = 8            # Generate: frames rendered per trip to the thread pool


def _client_of(context) -> str:
    """The client a call counts against: its address without the port."""
    peer = context.peer() or "unknown"
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class TalkingHeadServicer(pb_grpc.TalkingHeadServicer):
    def __init__(self, limits: Limits = Limits(), workers: int = 4, renderer: str = "cpu",
                 watermark_operator: int = 0) -> None:
        self.limits = limits
        # Every image the server sends carries the provenance watermark; there is no switch to
        # turn it off in the service, only the operator id it carries. Generate renders
        # RENDER_BATCH frames per trip (one batched warp with the torch backend on a GPU).
        self.frames = FrameMaker(renderer, watermark=Payload(version=DEFAULT_PAYLOAD.version, operator=watermark_operator),
                                 batch=RENDER_BATCH)
        self.slots = Slots(limits)
        self.avatars = AvatarCache(limits.avatar_cache_bytes, limits.avatar_ttl)
        self.analyses = AnalysisCache()               # Generate: speech analysed before is animated again
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="talkinghead")
        self.workers = Workers(limits.analysis_processes)
        self.pushes = Pushes()                        # Stream: the chunks of a moment pushed together
        # Stream images: with the CPU renderer in processes of their own, one per core; with the
        # torch one, all streams' frames of the moment in one batch on the device.
        self.images: ImageProcesses | ImageBatches | None = None
        if self.frames.kind == "torch":
            self.images = ImageBatches(self.frames, self._run)
        elif n_images := auto_count(limits.image_processes):
            self.images = ImageProcesses(n_images, watermark_operator)

    def image(self, rig: Rig, params: FaceParams, options: ImageOptions) -> bytes:
        """One frame rendered, marked as synthetic (the provenance watermark) and encoded."""
        return self.frames.images(rig, [params], options)[0]

    async def stream_image(self, rig: Rig, params: FaceParams, options: ImageOptions) -> bytes:
        """A Stream's frame image: from the image processes, or on the thread pool."""
        if self.images is not None:
            return await self.images.image(rig, params, options)
        return await self._run(self.image, rig, params, options)

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
        convert.check_text(request, self.limits.max_text_chars, skip=("transcript", "line"))
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
        """The clip's speech analysed in a worker process (`jobs.clip_analysis`), or found in
        `analyses` when this clip was analysed before, then animated here; yields pb.Progress
        while it works, then the track. A cancelled call kills the worker."""
        audio = request.audio
        # On the pool, as the hashing: up to 20,000 marks take tens of ms to read and to repr.
        marks = None
        if request.line.marks:
            marks = await self._run(convert.line_text, request.line, options.language, self.limits)
        key = await self._run(analysis_key, bytes(audio.file), bytes(audio.pcm16), audio.sample_rate,
                              request.transcript, options.lipsync, options.language, marks)
        analysis = self.analyses.get(key)
        if analysis is None:
            async for item in self._analysis(request, options, marks):
                if isinstance(item, pb.Progress):
                    yield item
                else:
                    analysis = item
            self.analyses.put(key, analysis)
        yield pb.Progress(stage="motion", fraction=0.2 * 0.7)
        yield await self._run(animate, analysis, options)

    async def _analysis(self, request: pb.GenerateRequest, options, marks) -> AsyncIterator:
        queue: asyncio.Queue = asyncio.Queue()
        audio, lim = request.audio, self.limits
        limits = {"max_seconds": lim.max_audio_seconds, "max_samples": lim.max_audio_samples,
                  "min_seconds": lim.min_audio_seconds}
        task = asyncio.ensure_future(self.workers.run(
            jobs.clip_analysis, bytes(audio.file), bytes(audio.pcm16), audio.sample_rate,
            request.transcript or None, options.lipsync, options.language, limits, marks=marks,
            progress=lambda stage, fraction: queue.put_nowait(pb.Progress(stage=stage, fraction=0.2 * fraction))))
        getter = None
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
            if getter is not None and not getter.done():
                getter.cancel()           # cancelled mid-wait: it would wait on the queue forever
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def _frames(self, rig, track, start, stop, enc, quality, cancel) -> list[pb.Frame]:
        if cancel.is_set():
            raise Cancelled()
        params = [track.frame(i) for i in range(start, stop)]
        images = [b""] * len(params)
        if rig is not None:
            images = self.frames.images(rig, params, ImageOptions(enc, quality), stop=cancel)
            if cancel.is_set():
                raise Cancelled()
        return [pb.Frame(index=start + k, time=p.t, params=convert.face_params_msg(p), image=image)
                for k, (p, image) in enumerate(zip(params, images))]

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

    async def _stream_session(self, cfg: pb.StreamConfig) -> StreamSession:
        options, enc, quality = stream_options(cfg)
        rig = None if cfg.output.params_only else await self._rig(cfg.portrait)
        if rig is not None and self.images is not None:
            await self.images.ready()             # started with the first stream of images
        return StreamSession.open(cfg, options, rig, enc, quality, limits=self.limits, run=self._run,
                                  image=self.stream_image, pushes=self.pushes)
