"""Options for turning speech into motion. The CLI and the server only map onto this."""

from __future__ import annotations

from dataclasses import dataclass

from talkinghead.errors import OptionsError

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")
GAZE_MODES = ("camera", "wander")
# auto: a transcript is aligned (pocketsphinx for English, the phone model for other languages);
# without one (or when it does not fit) English takes motion.AUDIO_ONLY, other languages the
# phone model (motion.speech._viseme_segments); phones: pocketsphinx only; model: the project's phone model
# only; acoustic: the old formant/loudness rules (kept for comparison)
LIPSYNC_MODES = ("auto", "phones", "model", "acoustic")


@dataclass(frozen=True)
class MotionOptions:
    fps: float = 30.0                 # output frame rate, frames per second (1..240)
    seed: int = 0                     # same seed + same input -> identical output
    expressiveness: float = 1.0       # scales brows, nods and articulation emphasis (0..2)
    head_motion: float = 1.0          # scales head rotation/translation (0 = still head, 2 = lively)
    blink_rate: float = 17.0          # mean blinks per minute (humans: ~15-20 in conversation)
    emotion: str = "neutral"          # one of EMOTIONS
    emotion_intensity: float = 0.5    # 0..1
    gaze: str = "camera"              # "camera": hold the camera with saccades; "wander": look around more
    lipsync: str = "auto"             # one of LIPSYNC_MODES
    language: str = "en"              # ISO code of the speech (and transcript), e.g. "it"; "auto": no text used

    def __post_init__(self) -> None:
        def check(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if not (lo <= v <= hi):
                raise OptionsError(f"{name.replace('_', '-')} must be between {lo} and {hi}, got {v}")

        check("fps", 1, 240)
        check("expressiveness", 0, 2)
        check("head_motion", 0, 2)
        check("blink_rate", 0, 60)
        check("emotion_intensity", 0, 1)
        if not self.language or not self.language.replace("-", "").isalpha():
            raise OptionsError(f"language must be an ISO code such as en, it or fi, or auto; got {self.language!r}")
        for name, allowed in (("emotion", EMOTIONS), ("gaze", GAZE_MODES), ("lipsync", LIPSYNC_MODES)):
            if getattr(self, name) not in allowed:
                raise OptionsError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
