"""Decode any common audio file into the mono 16 kHz float32 samples the pipeline works on.

libsndfile (through `soundfile`) reads WAV, FLAC, OGG/Vorbis and MP3 quickly and reports an
exact frame count; everything it cannot open (M4A/AAC, other containers) goes through FFmpeg
(PyAV). Every failure becomes one `AudioError` sentence, never a library traceback.
"""

from __future__ import annotations

import io
import os

import av
import numpy as np
import soundfile as sf
import soxr
import structlog

from talkinghead.errors import AudioError, AudioTooLongError

log = structlog.get_logger(__name__)

SAMPLE_RATE = 16000  # the pocketsphinx acoustic models are trained on 16 kHz audio
MAX_SECONDS = 15 * 60  # default limit: longer uploads are almost always mistakes and cost minutes
# Samples x channels a file may declare (15 min of 48 kHz stereo, 346 MB as float32): the
# duration alone does not bound memory, 890 s of 192 kHz stereo FLAC silence is 183 KB on disk
# and 2.7 GB decoded.
MAX_SAMPLES = 15 * 60 * 48000 * 2

_FORMATS = "WAV, FLAC, OGG, MP3 or M4A"


def load_audio(source: str | os.PathLike | bytes, *, max_seconds: float = MAX_SECONDS,
               max_samples: int = MAX_SAMPLES) -> np.ndarray:
    """Decode `source` (a path, or a whole file's bytes) to mono float32 at SAMPLE_RATE.

    Returns shape (n_samples,), values about -1..1. Channels are averaged; any source rate is
    resampled with soxr. Raises AudioError (AudioTooLongError past `max_seconds`, or past
    `max_samples` samples x channels, both read from the header before decoding where it has
    them) with a message that says what is wrong and what to do.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        path, name = None, "the audio data"
        if len(source) == 0:
            raise AudioError("The audio data is empty (0 bytes); send the content of an audio file.")
        opener = lambda: io.BytesIO(source)  # noqa: E731 - each decoder needs a fresh stream
    else:
        path = os.fspath(source)
        name = f"the file '{path}'"
        _check_readable(path)
        opener = lambda: path  # noqa: E731

    try:
        samples, rate, fmt = _read_soundfile(opener(), name, max_seconds, max_samples)
    except _NotForSoundfile:
        samples, rate, fmt = _read_av(opener(), name, max_seconds, max_samples)

    if samples.shape[0] == 0:
        raise AudioError(f"There are no audio samples in {name}; export the recording again with sound in it.")
    if not np.isfinite(samples).all():  # float WAVs can hold them; they would poison every later stage
        raise AudioError(f"There are NaN or infinite sample values in {name}; re-export it as ordinary PCM.")

    channels = samples.shape[1]
    seconds = samples.shape[0] / rate
    mono = samples.mean(axis=1, dtype=np.float32)  # average, so a centred voice keeps its level
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE)
    log.info("audio.loaded", path=path, format=fmt, source_rate=rate, channels=channels,
             seconds=round(seconds, 3))
    return np.ascontiguousarray(mono, dtype=np.float32)


class _NotForSoundfile(Exception):
    """libsndfile cannot open this input; try FFmpeg instead."""


def _check_readable(path: str) -> None:
    """Turn missing, unreadable and empty files into AudioError: the decoders' own errors are vague."""
    try:
        with open(path, "rb") as fh:
            empty = not fh.read(1)
    except FileNotFoundError as e:
        raise AudioError(f"There is no such file: '{path}'; check the path and try again.") from e
    except IsADirectoryError as e:
        raise AudioError(f"The path '{path}' is a directory; give the path of an audio file.") from e
    except OSError as e:
        raise AudioError(f"Cannot read the file '{path}' ({e.strerror}); check that it is readable.") from e
    if empty:
        raise AudioError(f"The file '{path}' is empty (0 bytes); give a file that contains a recording.")


def _too_long(name: str, seconds: float, max_seconds: float) -> AudioTooLongError:
    return AudioTooLongError(f"The audio in {name} is {seconds:.0f} s long, over the {max_seconds:.0f} s "
                             "limit; trim it or split it into shorter parts.")


def _too_big(name: str, samples: int, channels: int, rate: int, max_samples: int) -> AudioTooLongError:
    return AudioTooLongError(f"The audio in {name} holds {samples * channels / 1e6:.0f} million samples "
                             f"({channels} channels at {rate} Hz), over the limit of {max_samples / 1e6:.0f} "
                             "million; send mono (or stereo) at 48 kHz or less, or a shorter clip.")


def check_header(data: bytes, *, max_seconds: float = MAX_SECONDS, max_samples: int = MAX_SAMPLES,
                 min_seconds: float = 0.0) -> None:
    """The checks `load_audio` makes from a file's header, without decoding anything: a cheap
    first look (the server's, before a clip goes to a worker). Formats libsndfile does not
    read are left to load_audio."""
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except sf.SoundFileError:
        return
    with f:
        _check_info(f, "the audio data", max_seconds, max_samples)
        check_duration(f.frames / f.samplerate, min_seconds)


def check_duration(seconds: float, min_seconds: float) -> None:
    """Audio shorter than `min_seconds` cannot be animated (the server's least clip length)."""
    if seconds < min_seconds:
        raise AudioError(f"the audio is {seconds * 1000:.1f} ms long, too short to animate: "
                         f"send at least {min_seconds * 1000:.0f} ms of sound")


def _check_info(f: sf.SoundFile, name: str, max_seconds: float, max_samples: int) -> None:
    # The header's frame count is exact for these formats: refuse long files before decoding.
    if f.frames / f.samplerate > max_seconds:
        raise _too_long(name, f.frames / f.samplerate, max_seconds)
    if f.frames * f.channels > max_samples:
        raise _too_big(name, f.frames, f.channels, f.samplerate, max_samples)


def _read_soundfile(file, name: str, max_seconds: float, max_samples: int) -> tuple[np.ndarray, int, str]:
    """Read with libsndfile. Returns (samples (n, channels) float32, source rate in Hz, format)."""
    try:
        f = sf.SoundFile(file)
    except sf.SoundFileError as e:
        raise _NotForSoundfile() from e  # e.g. M4A: "Format not recognised"
    with f:
        _check_info(f, name, max_seconds, max_samples)
        try:
            samples = f.read(dtype="float32", always_2d=True)
        except sf.SoundFileError as e:
            raise AudioError(f"Cannot decode {name}: it is corrupt or truncated; export it again "
                             f"as {_FORMATS}.") from e
        return samples, f.samplerate, f.format


def _read_av(file, name: str, max_seconds: float, max_samples: int) -> tuple[np.ndarray, int, str]:
    """Decode with FFmpeg (PyAV). Returns (samples (n, channels) float32, source rate in Hz, format)."""
    bad = (f"Cannot decode {name}: it is not a readable audio file (corrupt, truncated or "
           f"unsupported); use {_FORMATS}.")
    try:
        with av.open(file, mode="r") as container:
            if not container.streams.audio:
                raise AudioError(f"There is no audio stream in {name}; give a file that contains sound.")
            stream = container.streams.audio[0]
            # Container duration is in microseconds; stream duration in stream time_base units.
            if stream.duration is not None and stream.time_base is not None:
                declared = float(stream.duration * stream.time_base)
            else:
                declared = container.duration / av.time_base if container.duration else None
            if declared is not None and declared > max_seconds:
                raise _too_long(name, declared, max_seconds)
            channels = max(1, getattr(stream.codec_context, "channels", 1) or 1)
            if declared is not None and stream.codec_context.sample_rate and \
                    declared * stream.codec_context.sample_rate * channels > max_samples:
                raise _too_big(name, int(declared * stream.codec_context.sample_rate), channels,
                               stream.codec_context.sample_rate, max_samples)
            # Planar float keeps each channel in its own row whatever the codec's native format.
            to_float = av.AudioResampler(format="fltp")
            chunks, rate, n = [], stream.codec_context.sample_rate, 0
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray())
                    n += converted.samples
                    rate = converted.sample_rate
                if rate and n / rate > max_seconds:  # no (or a wrong) duration: stop once past the limit
                    raise _too_long(name, n / rate, max_seconds)
                if n * channels > max_samples:
                    raise _too_big(name, n, channels, rate, max_samples)
            fmt = container.format.name
    except (av.error.FFmpegError, ValueError, IndexError, EOFError) as e:  # PyAV's many ways to fail
        raise AudioError(bad) from e
    if not rate:
        raise AudioError(bad)
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), rate, fmt
    return np.concatenate(chunks, axis=1).T, rate, fmt
