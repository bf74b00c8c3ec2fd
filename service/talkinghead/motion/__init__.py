"""Speech -> facial motion.

`analyze_speech(samples, rate, transcript, lipsync, language) -> SpeechAnalysis` (recognition,
alignment, features) apart from `animate(analysis, options) -> MotionTrack` (the motion engine,
`stream.MotionStream`, pushed the whole take at once); `motion_from_audio` is the two in a row.
A stream (`MotionStream`) runs the same engine on audio as it arrives.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import structlog

from talkinghead.audio.features import HOP
from talkinghead.errors import OptionsError
from talkinghead.motion.line import Line
from talkinghead.motion.options import MotionOptions
from talkinghead.motion.speech import Progress, SpeechAnalysis, analyze_speech
from talkinghead.motion.stream import LOOKAHEAD_S, MotionStream
from talkinghead.track import MotionTrack

__all__ = ["LOOKAHEAD_S", "MotionOptions", "MotionStream", "SpeechAnalysis", "analyze_speech", "animate",
           "line_and_idle", "motion_from_audio"]

IDLE_CHUNK_S = 10.0  # line_and_idle makes idle in parts this long: "idle forever" needs no unbounded memory

log = structlog.get_logger(__name__)


def animate(analysis: SpeechAnalysis, options: MotionOptions = MotionOptions()) -> MotionTrack:
    """The motion of an analysed take at options.fps, frames covering its audio. Cheap next to
    analyze_speech: animate one analysis with as many seeds, emotions and rates as wanted."""
    track = MotionStream(options).play(analysis)
    log.info("motion.done", seconds=round(analysis.duration, 3), frames=track.n_frames, fps=options.fps,
             segments=len(analysis.segments), speech_seconds=round(float(analysis.features.speech.sum()) * HOP, 2))
    return track


def motion_from_audio(samples: np.ndarray, rate: int, options: MotionOptions = MotionOptions(),
                      transcript: str | None = None, progress: Progress | None = None,
                      marks: Line | None = None) -> MotionTrack:
    """samples: float32 mono, shape = (n,), at `rate` Hz. Returns frames at options.fps covering the audio.
    marks: a TTS engine's timings for the take (analyze_speech)."""
    report = progress or (lambda stage, frac: None)
    analysis = analyze_speech(samples, rate, transcript, options.lipsync, options.language, report, marks)
    report("motion", 0.7)
    track = animate(analysis, options)
    report("done", 1.0)
    return track


def line_and_idle(analysis: SpeechAnalysis, options: MotionOptions, idle_after: float = 0.0,
                  loop: bool = False) -> Iterator[MotionTrack]:
    """The parts to play for one line, all from one engine: the line, then `idle_after` seconds of
    idle (math.inf: no end) in parts of at most IDLE_CHUNK_S; with loop=True the line again after
    the idle, and so on without end. The engine's life carries on from part to part (no seams);
    a repeated line has the same lips, its life goes on. Raises OptionsError for a negative or NaN
    idle_after."""
    if not idle_after >= 0:
        raise OptionsError(f"idle time must be 0 or more seconds (or inf), got {idle_after!r}")
    stream = MotionStream(options)
    fps = options.fps
    while True:
        yield stream.play(analysis)
        left = idle_after
        while left > 0.5 / fps:
            part = stream.idle_track(min(MotionTrack.frame_count(left, fps), round(IDLE_CHUNK_S * fps)))
            yield part
            left -= part.n_frames / fps
        if not loop:
            return
