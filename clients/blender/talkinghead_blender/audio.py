"""Speech files -> PCM16 mono for the Stream RPC (bpy-free).

Bake sends the file's bytes as they are (the server decodes WAV, FLAC, OGG, MP3, M4A). Live streams
PCM16 chunks, so the add-on decodes: WAV with the standard library, anything else with Blender's
own audio module `aud` (audaspace: whatever Blender can play) when it is there.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .errors import AddonError

MIN_RATE, MAX_RATE = 8000, 48000     # what StreamConfig.sample_rate accepts
STREAM_RATE = 16000                  # the rate other formats are decoded to
CHUNK_SECONDS = 0.1                  # Live sends 100 ms chunks, in real time


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        width, channels, rate, n = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 8388608
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648
    else:
        raise AddonError(f"{path.name}: {8 * width}-bit WAV is not supported; save it as 16-bit PCM")
    return x.reshape(-1, channels).mean(axis=1), rate


def _read_aud(path: Path) -> tuple[np.ndarray, int]:
    try:
        import aud  # Blender's audaspace module: only inside Blender
    except ImportError:
        raise AddonError(f"{path.name}: only WAV files can be streamed here (Blender's audio module is "
                         "missing); convert it to WAV or use Bake") from None
    try:
        data = aud.Sound(str(path)).rechannel(1).resample(STREAM_RATE, False).data()
    except Exception as exc:  # noqa: BLE001 - aud raises plain errors for unreadable files
        raise AddonError(f"cannot decode {path.name}: {exc}; use a WAV, FLAC, OGG or MP3 file") from exc
    return np.asarray(data, np.float32).reshape(-1), STREAM_RATE


def load_pcm16(path: str | Path) -> tuple[bytes, int]:
    """A speech file -> (PCM16 little-endian mono bytes, sample rate 8000..48000)."""
    path = Path(path)
    if not path.is_file():
        raise AddonError(f"the audio file {path} does not exist: choose a speech file (or a sound strip)")
    try:
        samples, rate = _read_wav(path)
    except (wave.Error, EOFError):
        samples, rate = _read_aud(path)
    if rate < MIN_RATE or rate > MAX_RATE:
        n = int(round(len(samples) * STREAM_RATE / rate))
        samples = np.interp(np.arange(n) * (rate / STREAM_RATE), np.arange(len(samples)), samples)
        rate = STREAM_RATE
    if len(samples) == 0:
        raise AddonError(f"{path.name} has no audio samples: choose a speech file")
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), rate


def chunks(pcm16: bytes, rate: int, seconds: float = CHUNK_SECONDS) -> list[bytes]:
    step = 2 * max(1, int(rate * seconds))
    return [pcm16[i:i + step] for i in range(0, len(pcm16), step)]


def duration_seconds(path: str | Path) -> float | None:
    """The file's length in seconds when it can be read cheaply (WAV header, or Blender's `aud`),
    else None (progress is then shown as a frame count)."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError, OSError):
        pass
    try:
        import aud
        sound = aud.Sound(str(path))
        return sound.length / sound.specs[0]
    except Exception:  # noqa: BLE001 - only an estimate for the progress bar
        return None
