"""A small Python client for the talkinghead gRPC service (used by the CLI, the tests and the add-ons).

    with TalkingHeadClient("127.0.0.1:50051", token="secret") as client:
        avatar = client.create_avatar("face.jpg")
        header, frames, summary = client.generate_all("line.wav", avatar=avatar.avatar_id)

Every call raises `ClientError` (a TalkingHeadError) with the server's status code and sentence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import grpc
import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.errors import TalkingHeadError
from talkinghead.motion.line import Line
from talkinghead.motion.options import MotionOptions
from talkinghead.track import GAZE_FIELDS, HEAD_FIELDS, MotionTrack
from talkinghead.v1 import talkinghead_pb2 as pb
from talkinghead.v1 import talkinghead_pb2_grpc as pb_grpc

ENCODINGS = {"jpeg": pb.IMAGE_ENCODING_JPEG, "png": pb.IMAGE_ENCODING_PNG, "raw": pb.IMAGE_ENCODING_RAW_RGB}
FRAMINGS = {"face": pb.FRAMING_FACE, "full": pb.FRAMING_FULL}
ACTIONS = {"flush": pb.Control.ACTION_FLUSH, "interrupt": pb.Control.ACTION_INTERRUPT, "idle": pb.Control.ACTION_IDLE}


class ClientError(TalkingHeadError):
    """The server refused or failed a call; `code` is its gRPC status code."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{details} ({code.name})")
        self.code, self.details = code, details


def _bytes(data: bytes | str | os.PathLike) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    try:
        return Path(data).read_bytes()
    except OSError as exc:
        raise TalkingHeadError(f"cannot read {data}: {exc.strerror}; check the path") from exc


def motion_message(options: MotionOptions | None) -> pb.MotionOptions:
    o = options or MotionOptions()
    return pb.MotionOptions(fps=o.fps, seed=o.seed, expressiveness=o.expressiveness, head_motion=o.head_motion,
                            blink_rate=o.blink_rate, emotion=o.emotion, emotion_intensity=o.emotion_intensity,
                            gaze=o.gaze, lipsync=o.lipsync, language=o.language)


def output_message(params_only: bool = False, encoding: str = "jpeg", quality: int = 90) -> pb.OutputOptions:
    return pb.OutputOptions(params_only=params_only, encoding=ENCODINGS[encoding], jpeg_quality=quality)


def portrait_message(avatar: str | None = None, image: bytes | str | os.PathLike | None = None,
                     size: int = 512, framing: str = "face") -> pb.Portrait | None:
    if avatar:
        return pb.Portrait(avatar_id=avatar)
    if image is not None:
        return pb.Portrait(inline=pb.CreateAvatarRequest(image=_bytes(image), size=size, framing=FRAMINGS[framing]))
    return None


class TalkingHeadClient:
    """Blocking client. `target` is host:port; TLS when `ca` (the server's CA, PEM) is given,
    mutual TLS with `cert` + `key` as well."""

    def __init__(self, target: str = "127.0.0.1:50051", *, token: str | None = None, ca: bytes | str | None = None,
                 cert: bytes | str | None = None, key: bytes | str | None = None, timeout: float | None = None,
                 max_message_bytes: int = 64 << 20) -> None:
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if ca is not None:
            creds = grpc.ssl_channel_credentials(_bytes(ca), _bytes(key) if key else None, _bytes(cert) if cert else None)
            self.channel = grpc.secure_channel(target, creds, options)
        else:
            self.channel = grpc.insecure_channel(target, options)
        self.stub = pb_grpc.TalkingHeadStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "TalkingHeadClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, timeout=None):
        try:
            return method(request, metadata=self.metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise ClientError(exc.code(), exc.details()) from None

    def checked(self, responses) -> Iterator:
        """A call's responses, a failed call raising ClientError instead of grpc.RpcError."""
        try:
            yield from responses
        except grpc.RpcError as exc:
            raise ClientError(exc.code(), exc.details()) from None

    def health(self, service: str = "") -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        reply = self._call(stub.Check, health_pb2.HealthCheckRequest(service=service), 10)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def create_avatar(self, image, size: int = 512, framing: str = "face", ttl_seconds: int = 0) -> pb.Avatar:
        return self._call(self.stub.CreateAvatar, pb.CreateAvatarRequest(
            image=_bytes(image), size=size, framing=FRAMINGS[framing], ttl_seconds=ttl_seconds))

    def delete_avatar(self, avatar_id: str) -> None:
        self._call(self.stub.DeleteAvatar, pb.DeleteAvatarRequest(avatar_id=avatar_id))

    def generate(self, audio, *, avatar: str | None = None, image=None, transcript: str = "",
                 motion: MotionOptions | None = None, params_only: bool = False, encoding: str = "jpeg",
                 quality: int = 90, size: int = 512, framing: str = "face",
                 timeout: float | None = None, marks: Line | None = None) -> Iterator[pb.GenerateResponse]:
        """The response stream: header, progress..., frame..., summary. `audio`: a file's bytes or path;
        marks: a TTS engine's timings for the clip (its marks and viseme/phoneme sets are sent)."""
        request = pb.GenerateRequest(portrait=portrait_message(avatar, image, size, framing),
                                     audio=pb.Audio(file=_bytes(audio)), transcript=transcript,
                                     motion=motion_message(motion), output=output_message(params_only, encoding, quality),
                                     line=line_text(marks) if marks else None)
        call = self.stub.Generate(request, metadata=self.metadata, timeout=timeout or self.timeout)
        return self.checked(call)

    def generate_all(self, audio, **kw) -> tuple[pb.Header, list[pb.Frame], pb.Summary]:
        header, frames, summary = None, [], None
        for msg in self.generate(audio, **kw):
            which = msg.WhichOneof("payload")
            if which == "header":
                header = msg.header
            elif which == "frame":
                frames.append(msg.frame)
            elif which == "summary":
                summary = msg.summary
        return header, frames, summary

    def stream(self, requests: Iterable[pb.StreamRequest], timeout: float | None = None):
        """Bidirectional stream: `requests` yields StreamRequest (config first). Returns the
        response iterator (grpc's: a failed call raises grpc.RpcError; wrap it in `checked` for
        ClientError); call `.cancel()` on it to stop."""
        return self.stub.Stream(iter(requests), metadata=self.metadata, timeout=timeout or self.timeout)


def encoding_name(value: int) -> str:
    """A Header's image encoding (pb.ImageEncoding) as ENCODINGS names it; unspecified is JPEG."""
    if value == pb.IMAGE_ENCODING_UNSPECIFIED:
        return "jpeg"
    for name, enc in ENCODINGS.items():
        if enc == value:
            return name
    raise ClientError(grpc.StatusCode.UNIMPLEMENTED, f"the server sent image encoding {value}, which this client "
                      "does not know: update the client")


def frames_track(header: pb.Header, frames: list[pb.Frame]) -> MotionTrack:
    """The parameters of received frames as a MotionTrack (for write_track and the exporters)."""
    return MotionTrack(
        fps=header.fps, duration=len(frames) / header.fps,
        blendshapes=np.array([f.params.blendshapes for f in frames], np.float32).reshape(-1, len(BLENDSHAPE_NAMES)),
        head=np.array([[getattr(f.params.head, k) for k in HEAD_FIELDS] for f in frames],
                      np.float32).reshape(-1, len(HEAD_FIELDS)),
        gaze=np.array([[f.params.gaze_left.yaw, f.params.gaze_left.pitch, f.params.gaze_right.yaw,
                        f.params.gaze_right.pitch] for f in frames], np.float32).reshape(-1, len(GAZE_FIELDS)),
        visemes=[f.params.viseme for f in frames])


def stream_config(*, sample_rate: int, avatar: str | None = None, image=None, motion: MotionOptions | None = None,
                  params_only: bool = False, encoding: str = "jpeg", quality: int = 90, realtime: bool = True,
                  size: int = 512, framing: str = "face", livelink_target: str = "",
                  livelink_subject: str = "") -> pb.StreamRequest:
    return pb.StreamRequest(config=pb.StreamConfig(
        portrait=portrait_message(avatar, image, size, framing), motion=motion_message(motion),
        output=output_message(params_only, encoding, quality), sample_rate=sample_rate, realtime=realtime,
        livelink_target=livelink_target, livelink_subject=livelink_subject))


def audio_chunk(pcm16: bytes | np.ndarray, line: pb.LineText | None = None) -> pb.StreamRequest:
    """An AudioChunk. pcm16: little-endian 16-bit PCM bytes, or float samples in -1..1 (converted);
    `line` (from line_text) on a line's first chunk says what the line says."""
    if isinstance(pcm16, np.ndarray):
        pcm16 = (np.clip(pcm16, -1, 1) * 32767).astype("<i2").tobytes()
    return pb.StreamRequest(audio=pb.AudioChunk(pcm16=pcm16, line=line))


_MARK_KINDS = {"word": pb.TimedMark.KIND_WORD, "phoneme": pb.TimedMark.KIND_PHONEME, "viseme": pb.TimedMark.KIND_VISEME}


def line_text(line: Line) -> pb.LineText:
    """A motion.line.Line (text, language, a TTS engine's marks) as the message."""
    return pb.LineText(text=line.text, language=line.language, viseme_set=line.viseme_set,
                       phoneme_set=line.phoneme_set,
                       marks=[pb.TimedMark(kind=_MARK_KINDS[m.kind], value=m.value, start_seconds=m.start,
                                           end_seconds=m.end or 0.0) for m in line.marks])


def line_request(line: Line) -> pb.StreamRequest:
    """The LineText message sent before a line's first chunk."""
    return pb.StreamRequest(line=line_text(line))


def control(action: str, idle_frames: int = 0) -> pb.StreamRequest:
    """action: one of ACTIONS (flush, interrupt, idle)."""
    return pb.StreamRequest(control=pb.Control(action=ACTIONS[action], idle_frames=idle_frames))
