"""Frame-level acoustic features at 100 frames/s: loudness, voice activity, pitch, formants, and the
prosodic events (syllable nuclei, pitch accents) that drive brows and head.

Praat (through parselmouth) is the reference tool for pitch and formant tracking; pocketsphinx's
WebRTC-style VAD finds speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import parselmouth
from pocketsphinx import Vad

from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.phones import FRAME_RATE, HOP_SAMPLES, pcm16
from scipy.ndimage import binary_closing, binary_opening, gaussian_filter1d
from scipy.signal import find_peaks

HOP = 1 / FRAME_RATE       # seconds per feature frame: the recogniser's frames, so masks line up

SILENCE_DB = -55.0         # frames quieter than this (dBFS) are never speech
VAD_BRIDGE_S = 0.12        # gaps shorter than this inside speech are stop closures, not pauses
VAD_MIN_SPEECH_S = 0.06    # shorter bursts are clicks
ACCENT_SPACING_S = 0.7     # pitch accents closer than this are one emphasis


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
        idx = np.clip((np.asarray(times) / HOP).astype(int), 0, len(arr) - 1)
        return arr[idx]


def analyze(samples: np.ndarray) -> SpeechFeatures:
    """samples: float32 mono at SAMPLE_RATE, shape = (n_samples,)."""
    n = max(1, len(samples) // HOP_SAMPLES)
    frames = np.zeros((n, HOP_SAMPLES), np.float32)
    flat = samples[: n * HOP_SAMPLES]
    frames.reshape(-1)[: len(flat)] = flat
    rms_db = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-6)
    speech = _voice_activity(samples, rms_db)
    sound = parselmouth.Sound(samples.astype(np.float64), SAMPLE_RATE)
    f0 = _on_grid(sound.to_pitch_ac(time_step=HOP, pitch_floor=60, pitch_ceiling=500), n)
    f1, f2 = _formants(sound, n, f0 > 0)
    loudness = _relative_loudness(rms_db, speech)
    nuclei, strength = _syllable_nuclei(rms_db, f0, speech)
    accents = _pitch_accents(nuclei, strength, f0)
    return SpeechFeatures(rms_db, speech, f0, f1, f2, hf_ratio(frames), loudness, nuclei, strength, accents)


def _voice_activity(samples: np.ndarray, rms_db: np.ndarray) -> np.ndarray:
    vad = Vad(mode=2, sample_rate=SAMPLE_RATE, frame_length=0.03)
    step = vad.frame_bytes // 2
    pcm = pcm16(samples)
    n = len(rms_db)
    speech = np.zeros(n, bool)
    per = step // HOP_SAMPLES
    for k in range(0, len(pcm) - step + 1, step):
        if vad.is_speech(pcm[k: k + step].tobytes()):
            speech[k // HOP_SAMPLES: k // HOP_SAMPLES + per] = True
    # The VAD alone calls steady noise speech: also demand energy near the speech level.
    loud = rms_db > max(SILENCE_DB, np.percentile(rms_db, 95) - 35)
    speech &= loud
    speech = binary_closing(speech, np.ones(int(VAD_BRIDGE_S / HOP)))
    speech = binary_opening(speech, np.ones(int(VAD_MIN_SPEECH_S / HOP)))
    return speech[:n]


def _on_grid(pitch: parselmouth.Pitch, n: int) -> np.ndarray:
    """Praat's frame k is centred at xs[k]; put values on our grid of frame centres (k+0.5)*HOP."""
    values = pitch.selected_array["frequency"]
    if not len(values):  # shorter than one pitch window
        return np.zeros(n)
    centres = (np.arange(n) + 0.5) * HOP
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


def _relative_loudness(rms_db: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """0..1: 0.5 at this recording's typical speech level, 1 at +8 dB, 0 at -16 dB."""
    ref = np.median(rms_db[speech]) if speech.any() else np.max(rms_db)
    smooth = gaussian_filter1d(rms_db, 3)
    return np.clip(0.5 + np.where(smooth > ref, (smooth - ref) / 16, (smooth - ref) / 32), 0, 1)


def _syllable_nuclei(rms_db: np.ndarray, f0: np.ndarray, speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of the smoothed loudness in voiced speech (de Jong & Wempe's syllable-nuclei idea)."""
    env = gaussian_filter1d(rms_db, 2.5)
    peaks, props = find_peaks(env, prominence=2.0, distance=int(0.1 / HOP))
    keep = speech[peaks] & (f0[peaks] > 0)
    peaks, prom = peaks[keep], props["prominences"][keep]
    if not len(peaks):
        return np.zeros(0), np.zeros(0)
    level = env[peaks] - np.median(env[peaks])
    strength = np.clip(0.5 + level / 12 + (prom - np.median(prom)) / 20, 0, 1)
    return (peaks + 0.5) * HOP, strength


def _pitch_accents(nuclei: np.ndarray, strength: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """The syllables a listener hears as emphasised: nuclei whose pitch peak stands out from the
    speaker's median (> 1 semitone) and that rank in the top third by pitch + loudness, at most
    one per ACCENT_SPACING_S (English has roughly one accent per intonation phrase or content word)."""
    voiced = f0[f0 > 0]
    if not len(nuclei) or not len(voiced):
        return np.zeros(0)
    median = np.median(voiced)
    k = np.clip((nuclei / HOP).astype(int), 0, len(f0) - 1)
    window = np.array([f0[max(0, i - 5): i + 6].max() for i in k])
    semitones = 12 * np.log2(np.maximum(window, 1) / median)
    score = semitones + 4 * strength
    candidates = np.flatnonzero((semitones > 1.0) & (score >= np.percentile(score, 67)))
    chosen: list[float] = []
    for i in candidates[np.argsort(-score[candidates])]:  # strongest first, then keep spacing
        if all(abs(nuclei[i] - c) >= ACCENT_SPACING_S for c in chosen):
            chosen.append(float(nuclei[i]))
    return np.array(sorted(chosen))


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


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
