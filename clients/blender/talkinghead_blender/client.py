"""The add-on's own small gRPC client: jobs that run a call on a worker thread (bpy-free).

A job never touches Blender data. It talks to the server on its own thread and puts `Message`s on
`job.queue`; Blender's main thread drains that queue from a timer (ops.py) and does the writing.
`job.cancel()` cancels the call at once (gRPC cancellation: the server stops the work within a
frame) and is safe from any thread.

    job = BakeJob(ServerSettings("127.0.0.1:50051", token="..."), audio_bytes, MotionSettings(fps=24)).start()
    ... job.queue.get() -> Message("header" | "progress" | "done" | "error" | "cancelled", data)

The stubs in `_proto/` are generated from protos/talkinghead/v1 by `talkinghead blender-addon`
(the package build's own stubs, imports made relative); this file imports nothing of `talkinghead`.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from . import audio
from ._proto import talkinghead_pb2 as pb
from ._proto import talkinghead_pb2_grpc as pb_grpc
from .convert import Take, TakeBuilder, parse_address, raw_rgb_to_pixels, resample_indices
from .errors import AddonError

IMAGE_ENCODINGS = {"JPEG": pb.IMAGE_ENCODING_JPEG, "PNG": pb.IMAGE_ENCODING_PNG}
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png"}
FRAMINGS = {"FACE": pb.FRAMING_FACE, "FULL": pb.FRAMING_FULL}
SEQUENCE_PREFIX = "frame_"          # frame_000001.jpg, ...: Blender reads the digits as the frame number


@dataclass(frozen=True)
class ServerSettings:
    address: str = "127.0.0.1:50051"    # host:port of `talkinghead serve`
    token: str = ""                      # sent as `authorization: Bearer <token>` when set
    use_tls: bool = False
    ca_file: str = ""                    # PEM of the server's CA for TLS; empty = the system's roots
    timeout: float = 900.0               # seconds a Bake call may take

    @property
    def target(self) -> str:
        return parse_address(self.address)


@dataclass(frozen=True)
class MotionSettings:
    """StreamConfig/GenerateRequest motion options (the proto's MotionOptions)."""

    fps: float = 30.0
    seed: int = 0
    expressiveness: float = 1.0
    head_motion: float = 1.0
    blink_rate: float = 17.0
    emotion: str = "neutral"
    emotion_intensity: float = 0.5
    gaze: str = "camera"
    lipsync: str = "auto"
    language: str = "en"                 # ISO code of the speech and transcript; "auto" ignores the transcript

    def message(self) -> pb.MotionOptions:
        return pb.MotionOptions(fps=self.fps, seed=self.seed, expressiveness=self.expressiveness,
                                head_motion=self.head_motion, blink_rate=self.blink_rate, emotion=self.emotion,
                                emotion_intensity=self.emotion_intensity, gaze=self.gaze, lipsync=self.lipsync,
                                language=self.language)


@dataclass(frozen=True)
class PortraitSettings:
    image: bytes                         # the photo's file bytes (JPEG, PNG, ...)
    size: int = 512                      # output pixels, 256..1024
    framing: str = "FACE"                # FACE or FULL

    def message(self) -> pb.Portrait:
        return pb.Portrait(inline=pb.CreateAvatarRequest(image=self.image, size=self.size,
                                                         framing=FRAMINGS[self.framing]))


@dataclass
class Message:
    kind: str            # header | progress | frame | event | done | error | cancelled
    data: object = None


@dataclass
class LiveFrame:
    """One streamed frame for the main thread: `take` has one frame; `pixels` shape =
    (height * width * 4,) float32 RGBA bottom-up (image mode) or None."""

    index: int
    idle: bool
    take: Take
    pixels: object = None
    width: int = 0
    height: int = 0


@dataclass
class BakeResult:
    take: Take                                   # at the requested fps
    images: list[str] = field(default_factory=list)  # the sequence's files, one per scene frame
    width: int = 0
    height: int = 0
    compute_seconds: float = 0.0


def _channel(settings: ServerSettings) -> grpc.Channel:
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    if settings.use_tls:
        ca = None
        if settings.ca_file:
            try:
                ca = Path(settings.ca_file).read_bytes()
            except OSError as exc:
                raise AddonError(f"cannot read the CA file {settings.ca_file}: {exc.strerror}; fix the path in "
                                 "the add-on's preferences or clear it to use the system's roots") from exc
        return grpc.secure_channel(settings.target, grpc.ssl_channel_credentials(ca), options)
    return grpc.insecure_channel(settings.target, options)


def describe(error: grpc.RpcError, settings: ServerSettings) -> str:
    """A gRPC failure as a sentence that says what to do."""
    code, details = error.code(), error.details() or ""
    target = settings.target
    if code == grpc.StatusCode.UNAVAILABLE:
        return (f"cannot reach the talkinghead server at {target} ({details}): start it with "
                "`talkinghead serve`, or fix the address in the talkinghead panel")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (f"the server at {target} refused the token ({details}): enter the token it was started "
                "with (talkinghead serve --token) in the talkinghead panel")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (f"the server took longer than {settings.timeout:g} s: raise the timeout in the add-on's "
                "preferences, or bake a shorter line")
    return f"the server refused the request: {details} ({code.name})"


class Job:
    """A call on a worker thread. Subclasses implement `run()`; messages go to `self.queue`."""

    kind = "job"

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.target = settings.target         # a malformed address fails here, on the caller's thread
        self.queue: queue.Queue[Message] = queue.Queue()
        self.finished = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._call = None
        self._thread = threading.Thread(target=self._main, name=f"talkinghead-{self.kind}", daemon=True)

    def start(self) -> "Job":
        self._thread.start()
        return self

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop now: cancels the call in flight (the server stops its work too)."""
        self._cancel.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def join(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    def _put(self, kind: str, data: object = None) -> None:
        self.queue.put(Message(kind, data))

    def _track(self, call):
        with self._lock:
            self._call = call
        if self._cancel.is_set():
            call.cancel()
        return call

    @property
    def metadata(self) -> tuple:
        return (("authorization", f"Bearer {self.settings.token}"),) if self.settings.token else ()

    def _main(self) -> None:
        channel = None
        try:
            channel = _channel(self.settings)
            self.run(pb_grpc.TalkingHeadStub(channel))
        except grpc.RpcError as exc:
            if self.cancelled:
                self._put("cancelled")
            else:
                self._put("error", describe(exc, self.settings))
        except AddonError as exc:
            self._put("cancelled" if self.cancelled else "error", None if self.cancelled else str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the panel waiting forever
            traceback.print_exc()
            self._put("error", f"internal error in the talkinghead add-on ({type(exc).__name__}: {exc}); "
                               "see the system console, and please report it")
        finally:
            if channel is not None:
                channel.close()
            self.finished.set()

    def run(self, stub) -> None:
        raise NotImplementedError


class BakeJob(Job):
    """Generate: the whole line in, every frame out. Character mode asks for parameters only;
    image mode (a `portrait`) also writes the frames to `image_dir` as an image sequence with
    one file per scene frame (the service renders 25, 30 or 60 fps; other scene rates pick the
    nearest frame in time)."""

    kind = "bake"

    def __init__(self, settings: ServerSettings, audio_file: bytes, motion: MotionSettings, *,
                 transcript: str = "", portrait: PortraitSettings | None = None, image_dir: str | None = None,
                 image_format: str = "JPEG", scene_fps: float | None = None,
                 expected_seconds: float | None = None) -> None:
        super().__init__(settings)
        if portrait is not None and not image_dir:
            raise AddonError("no folder for the image sequence: set the output folder in the talkinghead panel")
        self.audio_file, self.motion, self.transcript = audio_file, motion, transcript
        self.portrait, self.image_dir, self.image_format = portrait, image_dir, image_format
        self.scene_fps = scene_fps or motion.fps
        self.expected_frames = int(expected_seconds * motion.fps) if expected_seconds else 0

    def run(self, stub) -> None:
        request = pb.GenerateRequest(
            portrait=self.portrait.message() if self.portrait else None, audio=pb.Audio(file=self.audio_file),
            transcript=self.transcript, motion=self.motion.message(),
            output=pb.OutputOptions(params_only=self.portrait is None,
                                    encoding=IMAGE_ENCODINGS[self.image_format], jpeg_quality=95))
        call = self._track(stub.Generate(request, metadata=self.metadata, timeout=self.settings.timeout))
        builder, header, files, summary = None, None, [], None
        folder = written = None                # written: where the service's frames go (source/ if resampled)
        if self.portrait:
            folder = self._prepare_folder()
            written = folder if self._same_rate() else folder / "source"
        for msg in call:
            which = msg.WhichOneof("payload")
            if which == "header":
                header = msg.header
                builder = TakeBuilder(header.fps, header.blendshape_names)
                self._put("progress", ("analysing", 0.0))
            elif which == "progress":
                self._put("progress", (msg.progress.stage, float(msg.progress.fraction)))
            elif which == "frame":
                builder.add(msg.frame)
                if folder is not None:
                    files.append(self._write_image(written, len(files), msg.frame.image))
                n = len(builder)
                if n % 10 == 0:
                    frac = 0.2 + 0.8 * min(n / self.expected_frames, 0.99) if self.expected_frames else 0.2
                    self._put("progress", (f"frame {n}", frac))
            elif which == "summary":
                summary = msg.summary
        if builder is None or not len(builder):
            raise AddonError("the server sent no frames for this audio: check that the file holds speech")
        take = builder.build()
        images = self._sequence(folder, files, take.fps) if folder is not None else []
        self._put("done", BakeResult(take, images, header.width, header.height,
                                     summary.compute_seconds if summary else 0.0))

    def _prepare_folder(self) -> Path:
        folder = Path(self.image_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for old in list(folder.glob(SEQUENCE_PREFIX + "*")) + list((folder / "source").glob("*")):
                old.unlink()
            if not self._same_rate():
                (folder / "source").mkdir(exist_ok=True)       # the service's frames, before resampling
        except OSError as exc:
            raise AddonError(f"cannot write the image sequence to {folder}: {exc.strerror}; choose another "
                             "output folder") from exc
        return folder

    def _write_image(self, folder: Path, i: int, data: bytes) -> str:
        path = folder / f"{SEQUENCE_PREFIX}{i + 1:06d}{EXTENSIONS[self.image_format]}"
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise AddonError(f"cannot write {path}: {exc.strerror}; choose another output folder") from exc
        return str(path)

    def _same_rate(self) -> bool:
        return abs(self.scene_fps - self.motion.fps) < 1e-6

    def _sequence(self, folder: Path, files: list[str], fps: float) -> list[str]:
        """One file per scene frame: the service's own files when the rates agree, else links to
        the nearest-in-time source frame."""
        if self._same_rate():
            return files
        out = []
        for j, i in enumerate(resample_indices(len(files), fps, self.scene_fps)):
            dst = folder / f"{SEQUENCE_PREFIX}{j + 1:06d}{EXTENSIONS[self.image_format]}"
            try:
                os.link(files[i], dst)
            except OSError:
                shutil.copyfile(files[i], dst)
            out.append(str(dst))
        return out


class LiveJob(Job):
    """Stream: the line's audio sent in 100 ms chunks in real time, frames back as they are made;
    after the line the face idles (blinks, breathing) until `cancel()`. A transcript goes with the
    first chunk (LineText, in the motion's language): the lips then follow the words."""

    kind = "live"

    def __init__(self, settings: ServerSettings, audio_path: str, motion: MotionSettings, *,
                 portrait: PortraitSettings | None = None, transcript: str = "") -> None:
        super().__init__(settings)
        self.audio_path, self.motion, self.portrait = audio_path, motion, portrait
        self.transcript = transcript.strip()

    def _requests(self, pcm16: bytes, rate: int):
        yield pb.StreamRequest(config=pb.StreamConfig(
            portrait=self.portrait.message() if self.portrait else None, motion=self.motion.message(),
            output=pb.OutputOptions(params_only=self.portrait is None, encoding=pb.IMAGE_ENCODING_RAW_RGB),
            sample_rate=rate, realtime=True))
        start = time.monotonic()
        for k, piece in enumerate(audio.chunks(pcm16, rate)):
            if self._cancel.wait(max(0.0, start + k * audio.CHUNK_SECONDS - time.monotonic())):
                return
            line = pb.LineText(text=self.transcript, language=self.motion.language) if k == 0 and self.transcript else None
            yield pb.StreamRequest(audio=pb.AudioChunk(pcm16=piece, line=line))
        yield pb.StreamRequest(control=pb.Control(action=pb.Control.ACTION_FLUSH))
        self._cancel.wait()                # keep the stream open: the server sends idle frames

    def run(self, stub) -> None:
        pcm16, rate = audio.load_pcm16(self.audio_path)
        call = self._track(stub.Stream(self._requests(pcm16, rate), metadata=self.metadata))
        names, fps, width, height = None, self.motion.fps, 0, 0
        for msg in call:
            which = msg.WhichOneof("payload")
            if which == "header":
                h = msg.header
                names, fps, width, height = list(h.blendshape_names), h.fps, h.width, h.height
                self._put("header", msg.header)
            elif which == "frame":
                f = msg.frame
                builder = TakeBuilder(fps, names)
                builder.add(f)
                pixels = raw_rgb_to_pixels(f.image, width, height) if f.image else None
                self._put("frame", LiveFrame(int(f.index), bool(f.idle), builder.build(), pixels, width, height))
            elif which == "event" and msg.event.kind == pb.StreamEvent.KIND_TEXT_DROPPED:
                self._put("warning", f"the transcript does not match the audio ({msg.event.detail}): "
                                     "lips from the audio alone")
            elif which == "event":
                self._put("event", int(msg.event.kind))
        self._put("cancelled" if self.cancelled else "done", None)
