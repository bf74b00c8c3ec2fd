"""The server's heavy calls as plain functions of plain values, run in worker processes
(`workers.py`): the portrait's decode and analysis, the clip's decode and speech analysis (the
animation, cheap, runs in the server's thread pool).
No grpc here: a worker process imports only the pipeline.
"""

from __future__ import annotations

import numpy as np
import soxr

from talkinghead.audio.decode import SAMPLE_RATE, check_duration, load_audio
from talkinghead.errors import AudioError, LimitError
from talkinghead.face import analyze_portrait, load_portrait
from talkinghead.face.rig import Rig
from talkinghead.motion import SpeechAnalysis, analyze_speech

PCM_RATES = (8000, 192000)     # Generate's PCM16 rates, Hz


def portrait_rig(image: bytes, size: int, framing: str, max_pixels: int) -> Rig:
    """A portrait file's bytes -> its Rig (`size` px square, `framing` "face" or "full")."""
    return analyze_portrait(load_portrait(image, max_pixels=max_pixels), size, framing)


def check_pcm16(n_bytes: int, rate: int, allowed: tuple[int, int]) -> None:
    """Refuse PCM16 of `n_bytes` at `rate` Hz when the rate is outside `allowed` or the bytes
    are not whole samples."""
    if not allowed[0] <= rate <= allowed[1]:
        raise AudioError(f"sample_rate {rate} Hz is not usable: say the rate the PCM16 samples were recorded at, "
                         f"{allowed[0]}..{allowed[1]} Hz")
    if n_bytes % 2:
        raise AudioError(f"PCM16 audio must have an even number of bytes (2 per sample), got {n_bytes}: "
                         "send whole 16-bit little-endian mono samples")


def pcm16_samples(data: bytes, rate: int, allowed: tuple[int, int]) -> np.ndarray:
    """PCM16 little-endian mono bytes -> float32 samples, shape (n,), checked."""
    check_pcm16(len(data), rate, allowed)
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def clip_samples(file: bytes, pcm16: bytes, rate: int, *, max_seconds: float, max_samples: int,
                 min_seconds: float) -> np.ndarray:
    """A Generate clip (a file's bytes, or PCM16 at `rate` Hz) -> mono float32 at SAMPLE_RATE,
    shape (n,), refused when shorter than `min_seconds` or longer than `max_seconds`, or (files)
    when its header declares more than `max_samples` samples x channels."""
    if file:
        samples = load_audio(file, max_seconds=max_seconds, max_samples=max_samples)
    elif pcm16:
        samples = pcm16_samples(pcm16, rate, PCM_RATES)
        if len(samples) / rate > max_seconds:
            raise LimitError(f"the audio is {len(samples) / rate:.0f} s long, over the server's "
                             f"limit of {max_seconds:.0f} s: split it into shorter clips")
        samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)
    else:
        raise AudioError("no audio in the request: set audio.file (a WAV/FLAC/MP3/... file's bytes) or "
                         "audio.pcm16 with audio.sample_rate")
    check_duration(len(samples) / SAMPLE_RATE, min_seconds)
    return samples


def clip_analysis(file: bytes, pcm16: bytes, rate: int, transcript: str | None, lipsync: str, language: str,
                  limits: dict, progress=None, marks=None) -> SpeechAnalysis:
    """Decode a clip and analyse its speech: `clip_samples` then `analyze_speech`. `limits` holds
    clip_samples' keyword limits; marks: a TTS engine's timings (motion.line.Line) or None."""
    samples = clip_samples(file, pcm16, rate, **limits)
    return analyze_speech(samples, SAMPLE_RATE, transcript, lipsync, language, progress, marks)
