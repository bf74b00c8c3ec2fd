"""Speech -> facial motion.

`analyze_speech(samples, rate, transcript, lipsync, language) -> SpeechAnalysis` (recognition,
alignment, features) apart from `animate(analysis, options) -> MotionTrack` (the motion engine,
`stream.MotionStream`, pushed the whole take at once); `motion_from_audio` is the two in a row.
A stream (`MotionStream`) runs the same engine on audio as it arrives.
"""

from __future__ import annotations

import numpy as np
import structlog

from talkinghead.audio.features import HOP
from talkinghead.motion.options import MotionOptions
from talkinghead.motion.speech import Progress, SpeechAnalysis, analyze_speech
from talkinghead.motion.stream import LOOKAHEAD_S, MotionStream
from talkinghead.track import MotionTrack

__all__ = ["LOOKAHEAD_S", "MotionOptions", "MotionStream", "SpeechAnalysis", "analyze_speech", "animate",
           "motion_from_audio"]

log = structlog.get_logger(__name__)


def animate(analysis: SpeechAnalysis, options: MotionOptions = MotionOptions()) -> MotionTrack:
    """The motion of an analysed take at options.fps, frames covering its audio. Cheap next to
    analyze_speech: animate one analysis with as many seeds, emotions and rates as wanted."""
    return MotionStream(options).play(analysis)


def motion_from_audio(samples: np.ndarray, rate: int, options: MotionOptions = MotionOptions(),
                      transcript: str | None = None, progress: Progress | None = None) -> MotionTrack:
    """samples: float32 mono, shape = (n,), at `rate` Hz. Returns frames at options.fps covering the audio."""
    report = progress or (lambda stage, frac: None)
    analysis = analyze_speech(samples, rate, transcript, options.lipsync, options.language, report)
    report("motion", 0.7)
    track = animate(analysis, options)
    report("done", 1.0)
    log.info("motion.done", seconds=round(analysis.duration, 3), frames=track.n_frames, fps=options.fps,
             segments=len(analysis.segments), speech_seconds=round(float(analysis.features.speech.sum()) * HOP, 2))
    return track
