"""The work of one batch line, the same on a local worker process and in a Ray task.

`process_line(job) -> LineResult` takes everything it needs inside the job (the audio file's bytes,
the transcript, the portrait's bytes, the options) and gives everything back inside the result (the
output files' bytes): no shared file system between the driver and the workers. It calls the same
pipeline functions as `talkinghead params` and `talkinghead render` (load_audio, motion_from_audio,
write_track, analyze_portrait, render_video), so a line's take is byte for byte what those give.

Models load once per worker process: the recogniser's decoders and the face landmarker are
process-wide caches in their modules, and portraits' rigs are kept here (a few, most recent first).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from talkinghead.errors import TalkingHeadError
from talkinghead.motion.options import MotionOptions

log = structlog.get_logger(__name__)

RIG_CACHE = 4   # portraits' rigs kept per worker: a batch is usually a few characters' lines


@dataclass(frozen=True)
class RenderSettings:
    """How MP4s are made, the same for every line of a batch. `signer`: the resolved C2PA signer
    (its PEM bytes travel to the workers), None for no manifest; `watermark`: the payload, None for none."""

    watermark: object | None = None
    signer: object | None = None
    renderer: str = "auto"


@dataclass(frozen=True)
class LineJob:
    """One line's inputs, all in memory. `audio`: the audio file's bytes; `portrait`: the photo's
    bytes (MP4s only); `key`: the content hash of inputs + options (see runner.line_key)."""

    id: str
    key: str
    audio: bytes
    formats: tuple[str, ...]
    motion: MotionOptions
    text: str | None = None
    portrait: bytes | None = None
    portrait_digest: str | None = None
    size: int = 512
    framing: str = "face"
    render: RenderSettings = field(default_factory=RenderSettings)
    marks: object = None                # a motion.line.Line: the TTS engine's timings, or None


@dataclass(frozen=True)
class LineResult:
    """What came of a line. `status`: "ok" or "failed"; `seconds`: the worker's wall time;
    `error`: the sentence that says what went wrong; `outputs`: format -> the file's bytes;
    `frames`, `duration` (s): the take's; `worker`: "host:pid" of the process that ran it."""

    id: str
    key: str
    status: str
    seconds: float
    error: str | None = None
    outputs: dict[str, bytes] = field(default_factory=dict)
    frames: int = 0
    duration: float = 0.0
    worker: str = ""


_rigs: OrderedDict = OrderedDict()


def process_line(job: LineJob) -> LineResult:
    """Run one line: decode, animate, export (and render). Never raises for a bad line: a user's
    mistake comes back as its error sentence, a bug as a sentence naming the exception."""
    start = time.perf_counter()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    try:
        outputs, track = _outputs(job)
        return LineResult(job.id, job.key, "ok", time.perf_counter() - start, outputs=outputs,
                          frames=track.n_frames, duration=track.duration, worker=worker)
    except TalkingHeadError as exc:
        error = str(exc)
    except Exception as exc:  # a bug must not stop the other lines; the log has the traceback
        log.exception("batch.line_crashed", id=job.id)
        error = f"internal error ({type(exc).__name__}: {exc}); please report it with this line's files"
    return LineResult(job.id, job.key, "failed", time.perf_counter() - start, error=error, worker=worker)


def _outputs(job: LineJob):
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.exports import write_track
    from talkinghead.motion import motion_from_audio

    samples = load_audio(job.audio)
    track = motion_from_audio(samples, SAMPLE_RATE, job.motion, job.text, marks=job.marks)
    outputs = {}
    with tempfile.TemporaryDirectory(prefix="talkinghead-batch-") as tmp:
        for fmt in job.formats:
            path = Path(tmp) / f"{job.id}.{fmt}"
            if fmt == "mp4":
                _render(job, track, samples, SAMPLE_RATE, path)
            else:
                write_track(track, path)
            outputs[fmt] = path.read_bytes()
    return outputs, track


def _render(job: LineJob, track, samples, rate: int, path: Path) -> None:
    from talkinghead.render import render_video

    render_video(_rig(job), track, samples, rate, path, backend=job.render.renderer,
                 watermark=job.render.watermark, signing=job.render.signer)


def _rig(job: LineJob):
    from talkinghead.face import analyze_portrait, load_portrait

    key = (job.portrait_digest, job.size, job.framing)
    if key not in _rigs:
        _rigs[key] = analyze_portrait(load_portrait(job.portrait), job.size, job.framing)
        while len(_rigs) > RIG_CACHE:
            _rigs.popitem(last=False)
    _rigs.move_to_end(key)
    return _rigs[key]


def warm_up() -> None:
    """Import the pipeline in a fresh worker before its first line (the slow part of a start)."""
    import talkinghead.audio.decode  # noqa: F401
    import talkinghead.exports  # noqa: F401
    import talkinghead.motion  # noqa: F401
