"""Messages <-> the pipeline's values. The servicer only maps; the meaning lives in the pipeline."""

from __future__ import annotations

import numpy as np

from talkinghead import __version__
from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.errors import OptionsError
from talkinghead.face.rig import FRAMINGS
from talkinghead.media import FPS_CHOICES
from talkinghead.motion.line import Line, Mark
from talkinghead.motion.options import MotionOptions
from talkinghead.track import EyeGaze, FaceParams, HeadPose
from talkinghead.v1 import talkinghead_pb2 as pb

DEFAULT_SIZE = 512
ENCODINGS = {pb.IMAGE_ENCODING_UNSPECIFIED: "jpeg", pb.IMAGE_ENCODING_JPEG: "jpeg",
             pb.IMAGE_ENCODING_PNG: "png", pb.IMAGE_ENCODING_RAW_RGB: "raw"}


def motion_options(msg: pb.MotionOptions, *, streaming: bool = False) -> MotionOptions:
    """pb.MotionOptions -> MotionOptions (unset fields take the CLI's defaults). Raises
    OptionsError for out-of-range values, as the CLI does."""
    d = MotionOptions()
    kw = {"fps": msg.fps or d.fps, "seed": int(msg.seed), "emotion": msg.emotion or d.emotion,
          "gaze": msg.gaze or d.gaze, "lipsync": "model" if streaming else (msg.lipsync or d.lipsync),
          "language": msg.language or d.language}
    for name in ("expressiveness", "head_motion", "blink_rate", "emotion_intensity"):
        kw[name] = getattr(msg, name) if msg.HasField(name) else getattr(d, name)
    return MotionOptions(**kw)


_MARK_KINDS = {pb.TimedMark.KIND_WORD: "word", pb.TimedMark.KIND_PHONEME: "phoneme", pb.TimedMark.KIND_VISEME: "viseme"}


def line_text(msg: pb.LineText, language: str, limits) -> Line:
    """pb.LineText -> motion.line.Line (language: the stream's when the message names none).
    Raises OptionsError for oversized or unreadable fields."""
    if len(msg.text) > limits.max_transcript_chars:
        raise OptionsError(f"the line's text is {len(msg.text)} characters long, over the limit of "
                           f"{limits.max_transcript_chars}: send one line at a time")
    check_text(msg, limits.max_text_chars, skip=("text", "marks"))
    marks = []
    for m in msg.marks:
        if m.kind not in _MARK_KINDS:
            raise OptionsError("TimedMark.kind must be WORD, PHONEME or VISEME")
        if len(m.value) > limits.max_text_chars:
            raise OptionsError(f"a timing mark's value is {len(m.value)} characters long: send one word, phoneme or viseme")
        marks.append(Mark(_MARK_KINDS[m.kind], m.value, m.start_seconds, m.end_seconds or None))
    return Line(text=msg.text, language=msg.language or language, marks=tuple(marks),
                viseme_set=msg.viseme_set or "oculus", phoneme_set=msg.phoneme_set or "ipa")


def check_video_fps(fps: float) -> None:
    if fps not in FPS_CHOICES:
        raise OptionsError(f"fps must be one of {', '.join(map(str, FPS_CHOICES))} when images are sent, not {fps:g}; "
                           "use params_only for other rates")


def framing(value: int) -> str:
    return {pb.FRAMING_UNSPECIFIED: "face", pb.FRAMING_FACE: "face", pb.FRAMING_FULL: "full"}.get(value) or \
        _bad(f"framing must be one of {', '.join(FRAMINGS)}")


def _bad(message: str):
    raise OptionsError(message)


def encoding(output: pb.OutputOptions) -> tuple[str, int]:
    """(encoding name for media.encode_frame, JPEG quality)."""
    if output.encoding not in ENCODINGS:
        raise OptionsError("output.encoding must be JPEG, PNG or RAW_RGB")
    quality = output.jpeg_quality or 90
    if not 1 <= quality <= 100:
        raise OptionsError(f"output.jpeg_quality must be 1..100, not {quality}")
    return ENCODINGS[output.encoding], quality


def face_params_msg(p: FaceParams) -> pb.FaceParams:
    h = p.head
    return pb.FaceParams(time=p.t, blendshapes=np.asarray(p.blendshapes, np.float32).tolist(),
                         head=pb.HeadPose(yaw=h.yaw, pitch=h.pitch, roll=h.roll, x=h.x, y=h.y, z=h.z),
                         gaze_left=pb.EyeGaze(yaw=p.gaze_left.yaw, pitch=p.gaze_left.pitch),
                         gaze_right=pb.EyeGaze(yaw=p.gaze_right.yaw, pitch=p.gaze_right.pitch),
                         viseme=p.viseme)


def face_params(msg: pb.FaceParams) -> FaceParams:
    """The inverse, for clients."""
    h = msg.head
    return FaceParams(t=msg.time, blendshapes=np.asarray(msg.blendshapes, np.float32),
                      head=HeadPose(h.yaw, h.pitch, h.roll, h.x, h.y, h.z),
                      gaze_left=EyeGaze(msg.gaze_left.yaw, msg.gaze_left.pitch),
                      gaze_right=EyeGaze(msg.gaze_right.yaw, msg.gaze_right.pitch), viseme=msg.viseme)


def header(fps: float, size: tuple[int, int] | None, enc: int, lookahead: float = 0.0) -> pb.Header:
    w, h = size or (0, 0)
    return pb.Header(fps=fps, width=w, height=h, encoding=enc or pb.IMAGE_ENCODING_JPEG,
                     blendshape_names=list(BLENDSHAPE_NAMES), lookahead_seconds=lookahead,
                     server_version=__version__)


def check_text(msg, max_chars: int, skip: tuple[str, ...] = ()) -> None:
    """Refuse any string field of `msg` (and its sub-messages) longer than `max_chars`: names and
    targets are a few words, and a long one would only be echoed back in an error."""
    from google.protobuf.descriptor import FieldDescriptor

    for field, value in msg.ListFields():
        if field.name in skip:
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            check_text(value, max_chars, skip)
        elif field.type == FieldDescriptor.TYPE_STRING and len(value) > max_chars:
            raise OptionsError(f"{field.name} is {len(value)} characters long, over the limit of {max_chars}: "
                               f"send one of the documented values")
