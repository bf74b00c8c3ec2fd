"""Frame-level acoustic features at 100 frames/s: loudness, voice activity, pitch, formants, and the
prosodic events (syllable nuclei, pitch accents) that drive brows and head.

Praat (through parselmouth) is the reference tool for pitch and formant tracking; pocketsphinx's
WebRTC-style VAD finds speech. `analyze` takes a whole recording; the pieces it is made of
(`frame_rms_db`, `VoiceActivity`, `loud`, `bridged`, `relative_loudness`, `prosody.Prosody`) are
what a stream runs on its windows (motion.stream), with running statistics in place of the whole
take's; a stream's pitch is Praat's method in numpy (`audio.pitch`: 60 % of Praat's cost on a
chunk's frames, its agreement with `pitch_at` measured in tests/test_fast_paths.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import parselmouth
from pocketsphinx import Vad
from scipy.ndimage import gaussian_filter1d

from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.phones import HOP, HOP_SAMPLES, pcm16
from talkinghead.audio.pitch import CEILING_HZ, FLOOR_HZ
from talkinghead.audio.prosody import Prosody

SILENCE_DB = -55.0         # frames quieter than this (dBFS) are never speech
VAD_BRIDGE_S = 0.12        # gaps shorter than this inside speech are stop closures, not pauses
VAD_MIN_SPEECH_S = 0.06    # shorter bursts are clicks
LOUD_BELOW_PEAK_DB = 35.0  # speech is within this of the recording's loud frames (95th percentile)


@dataclass
class SpeechFeatures:
    """All arrays have shape = (n,), one value per HOP seconds; frame k covers [k*HOP, (k+1)*HOP)."""

    rms_db: np.ndarray     # loudness, dBFS
    speech: np.ndarray     # bool voice activity (pauses shorter than VAD_BRIDGE_S bridged)
    f0: np.ndarray         # Hz, 0 where unvoiced
    f1: np.ndarray         # first formant Hz (nan where unvoiced)
    f2: np.ndarray         # second formant Hz (nan where unvoiced)
    hf_ratio: np.ndarray   # share of energy above 3.5 kHz (fricatives), 0..1
    loudness: np.ndarray   # 0..1 relative to this speaker's speech level (for articulation gain)
    nuclei: np.ndarray     # shape = (k,), times (s) of syllable nuclei
    nucleus_strength: np.ndarray  # shape = (k,), 0..1 prominence of each nucleus
    accents: np.ndarray    # shape = (m,), times (s) of pitch accents (subset of nuclei)

    @property
    def duration(self) -> float:
        return len(self.rms_db) * HOP

    def at(self, name: str, times: np.ndarray) -> np.ndarray:
        """Sample a per-frame feature at arbitrary times (s) by nearest frame."""
        arr = getattr(self, name)
        idx = np.minimum(np.maximum((np.asarray(times) / HOP).astype(int), 0), len(arr) - 1)   # np.clip, cheaper
        return arr[idx]


def analyze(samples: np.ndarray) -> SpeechFeatures:
    """samples: float32 mono at SAMPLE_RATE, shape = (n_samples,)."""
    n = max(1, len(samples) // HOP_SAMPLES)
    frames = np.zeros((n, HOP_SAMPLES), np.float32)
    flat = samples[: n * HOP_SAMPLES]
    frames.reshape(-1)[: len(flat)] = flat
    rms_db = frame_rms_db(frames)
    speech = bridged(_vad(samples, n) & loud(rms_db, float(np.percentile(rms_db, 95))))
    sound = parselmouth.Sound(samples.astype(np.float64), SAMPLE_RATE)
    f0 = pitch_at(samples, (np.arange(n) + 0.5) * HOP, sound)
    f1, f2 = _formants(sound, n, f0 > 0)
    ref = np.median(rms_db[speech]) if speech.any() else np.max(rms_db)
    nuclei = Prosody.take(rms_db, f0, speech)
    return SpeechFeatures(rms_db, speech, f0, f1, f2, hf_ratio(frames), relative_loudness(rms_db, ref),
                          np.array([x.t for x in nuclei]), np.array([x.strength for x in nuclei]),
                          np.array([x.t for x in nuclei if x.accent]))


def frame_rms_db(frames: np.ndarray) -> np.ndarray:
    """Loudness (dBFS) of each frame, frames: shape = (n, samples) -> shape = (n,)."""
    x = frames.astype(np.float64)
    return 20 * np.log10(np.sqrt(np.add.reduce(x * x, axis=1) / x.shape[1]) + 1e-6)   # np.mean's sum / n


def _vad(samples: np.ndarray, n: int) -> np.ndarray:
    """The VAD's raw decision per feature frame of a whole recording, shape = (n,)."""
    vad = VoiceActivity()
    vad.extend(samples)
    return vad.frames(0, n)


class VoiceActivity:
    """pocketsphinx's VAD fed audio as it arrives (a take: all at once), 30 ms at a time; each
    30 ms decision is its feature frames' raw voice activity. Not thread-safe."""

    def __init__(self) -> None:
        self._vad = Vad(mode=2, sample_rate=SAMPLE_RATE, frame_length=0.03)
        self._step = self._vad.frame_bytes              # bytes of 16-bit audio a decision hears
        self._per = self._step // 2 // HOP_SAMPLES      # feature frames a decision covers
        self._pcm = b""                                 # audio not decided on yet, 16-bit
        self._raw: list[bool] = []                      # decisions not yet read, from decision _first on
        self._first = 0

    def extend(self, samples: np.ndarray) -> None:
        """More audio (float mono at SAMPLE_RATE): every whole 30 ms it completes is decided."""
        pcm = self._pcm + pcm16(samples).tobytes()
        whole = len(pcm) - len(pcm) % self._step
        self._raw += [self._vad.is_speech(pcm[k: k + self._step]) for k in range(0, whole, self._step)]
        self._pcm = pcm[whole:]

    def frames(self, start: int, end: int) -> np.ndarray:
        """The decisions of feature frames [start, end), shape = (end - start,) bool (frames not
        decided yet: False); start is at least the last call's end. The decisions of frames
        before `end` are forgotten (a long stream keeps none it will not read)."""
        per, raw, first = self._per, self._raw, self._first
        heard = len(raw)
        out = np.array([k // per - first < heard and raw[k // per - first] for k in range(start, end)], bool)
        done = min(end // per - first, heard)
        del raw[:done]
        self._first += done
        return out


def loud(rms_db: np.ndarray, level_p95: float | None) -> np.ndarray:
    """The VAD alone calls steady noise speech: speech is also near the speech level. level_p95:
    the 95th percentile of the recording's frame loudness (dBFS), None when unknown."""
    floor = SILENCE_DB if level_p95 is None else max(SILENCE_DB, level_p95 - LOUD_BELOW_PEAK_DB)
    return rms_db > floor


def bridged(raw: np.ndarray, open_start: bool = False, open_end: bool = False) -> np.ndarray:
    """Voice activity cleaned up: gaps shorter than VAD_BRIDGE_S bridged, bursts shorter than
    VAD_MIN_SPEECH_S (clicks) dropped. raw: shape = (n,) bool.

    For a window of a stream: an open start continues its first value; an open end (audio still to
    come) is taken as speech going on, so a silence just after speech, shorter than VAD_BRIDGE_S so
    far, is a stop closure until it grows longer (a whole take, knowing the gap's length, bridges it
    the same way); without this every p/b/t/k would first be seen as the start of a pause."""
    bridge, click = int(VAD_BRIDGE_S / HOP), int(VAD_MIN_SPEECH_S / HOP)
    before, after = (bridge if open_start and len(raw) else 0), (bridge if open_end else 0)
    x = np.concatenate([np.full(before, raw[0] if len(raw) else False), raw, np.ones(after, bool)])
    x = _dilate(_erode(_erode(_dilate(x, bridge), bridge), click), click)   # closing, then opening
    return x[before: len(x) - after]


def _window_counts(x: np.ndarray, size: int, left: int) -> np.ndarray:
    """True values of bool x in each window x[i - left: i - left + size] (outside x: False)."""
    padded = np.concatenate([np.zeros(left + 1, np.int32), x, np.zeros(size - left, np.int32)])
    sums = np.cumsum(padded)
    return sums[size: size + len(x)] - sums[: len(x)]


# scipy.ndimage's binary morphology with a 1-D structure np.ones(size) and border 0 (what
# binary_closing / binary_opening do), as window counts: some ten times faster on a stream's windows
def _dilate(x: np.ndarray, size: int) -> np.ndarray:
    return _window_counts(x, size, (size - 1) // 2) > 0


def _erode(x: np.ndarray, size: int) -> np.ndarray:
    return _window_counts(x, size, size // 2) == size


def pitch_at(audio: np.ndarray, centres: np.ndarray, sound: parselmouth.Sound | None = None) -> np.ndarray:
    """Pitch (Hz, 0 unvoiced) at `centres` (s into `audio`, float mono at SAMPLE_RATE): Praat's
    autocorrelation pitch, frame by frame at HOP. sound: `audio` as a parselmouth.Sound, if made."""
    f0 = np.zeros(len(centres))
    sound = sound or parselmouth.Sound(audio.astype(np.float64), SAMPLE_RATE)
    try:
        pitch = sound.to_pitch_ac(time_step=HOP, pitch_floor=FLOOR_HZ, pitch_ceiling=CEILING_HZ)
    except parselmouth.PraatError:   # shorter than one pitch window: too short to be voiced
        return f0
    values = pitch.selected_array["frequency"]
    if not len(values):
        return f0
    # Praat's frame k is centred at xs[k]: the value of the nearest one
    return values[np.clip(np.round((centres - pitch.xs()[0]) / HOP).astype(int), 0, len(values) - 1)]


def _formants(sound: parselmouth.Sound, n: int, voiced: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    formant = sound.to_formant_burg(time_step=HOP, max_number_of_formants=5, maximum_formant=5500)
    f1 = np.full(n, np.nan)
    f2 = np.full(n, np.nan)
    for k in np.flatnonzero(voiced):
        t = (k + 0.5) * HOP
        f1[k] = formant.get_value_at_time(1, t)
        f2[k] = formant.get_value_at_time(2, t)
    return f1, f2


def hf_ratio(frames: np.ndarray) -> np.ndarray:
    """Share of each frame's energy above 3.5 kHz (fricatives), frames: shape = (n, samples)."""
    spec = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
    freqs = np.fft.rfftfreq(frames.shape[1], 1 / SAMPLE_RATE)
    return spec[:, freqs > 3500].sum(1) / (spec.sum(1) + 1e-12)


def relative_loudness(rms_db: np.ndarray, ref: float) -> np.ndarray:
    """0..1: 0.5 at the speaker's typical speech level `ref` (dBFS), 1 at +8 dB, 0 at -16 dB."""
    smooth = gaussian_filter1d(rms_db, 3)
    return np.minimum(np.maximum(0.5 + np.where(smooth > ref, (smooth - ref) / 16, (smooth - ref) / 32), 0), 1)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def value_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the runs of one value in a 1-D array, in order (none if empty)."""
    if not len(values):
        return []
    bounds = [0, *(np.flatnonzero(values[1:] != values[:-1]) + 1).tolist(), len(values)]
    return list(zip(bounds[:-1], bounds[1:]))


def speech_chunks(speech: np.ndarray, max_seconds: float = 20.0) -> list[tuple[float, float]]:
    """Split a recording into spans (start s, end s) of at most ~max_seconds, cut in the middle of
    pauses, so the recogniser decodes phrase-sized utterances (long ones are slow and memory-hungry)."""
    n = len(speech)
    limit = int(max_seconds / HOP)
    quiet = ~speech
    cuts = [0]
    while n - cuts[-1] > limit:
        lo, hi = cuts[-1] + limit // 4, cuts[-1] + limit
        window = quiet[lo:hi]
        if window.any():  # the middle of the longest pause in the window
            a, b = max(true_runs(window), key=lambda r: r[1] - r[0])
            cuts.append(lo + (a + b) // 2)
        else:  # no pause at all: cut anyway
            cuts.append(hi)
    cuts.append(n)
    return [(a * HOP, b * HOP) for a, b in zip(cuts[:-1], cuts[1:])]
