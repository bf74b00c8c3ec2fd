"""Syllable nuclei and pitch accents, found as the loudness and pitch pass: `Prosody`.

A nucleus is a peak of the smoothed loudness in voiced speech (de Jong & Wempe's syllable-nuclei
idea); its strength (0..1) is its level and prominence against the speaker's typical ones. An
accent is a nucleus a listener hears as emphasised: its pitch peak stands out from the speaker's
median (> 1 semitone), it ranks in the top third by pitch + loudness, and it is at least
ACCENT_SPACING_S after the last accent (English has roughly one accent per intonation phrase or
content word).

One implementation for a take and a stream: a stream judges each nucleus against the statistics
heard so far (`Prosody()`); a take, which knows its future, against the whole take's
(`Prosody.take`), and runs the same decisions in time order.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from talkinghead.audio.phones import HOP

ACCENT_SPACING_S = 0.7      # pitch accents closer than this are one emphasis
NUCLEUS_SPACING_S = 0.1     # syllables closer than this are one
ACCENT_SEMITONES = 1.0      # an accent's pitch peak is at least this far above the median
ACCENT_SHARE = 67           # ...and its score in the top third (percentile)
NUCLEUS_CONFIRM_S = 0.06    # live: a loudness peak this far inside the heard features has been passed
NUCLEUS_MAX_AGE_S = 0.4     # live: older unconfirmed peaks are not taken up any more (they would come late)
HISTORY = 200               # live: nuclei remembered for the running medians and accent percentile


@dataclass(frozen=True)
class Nucleus:
    t: float                # s, on the clock of the features given
    strength: float         # 0..1 prominence
    accent: bool            # a pitch accent


@dataclass(frozen=True)
class _Stats:
    """A take's statistics, known before its first nucleus is judged."""

    level: float            # median smoothed loudness at the nuclei, dB
    prominence: float       # median prominence, dB
    score: float            # the accent score's ACCENT_SHARE percentile


def _peaks(rms_db: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame index, smoothed level dB, prominence dB) of the loudness peaks."""
    env = gaussian_filter1d(rms_db, 2.5)
    peaks, props = find_peaks(env, prominence=2.0, distance=int(NUCLEUS_SPACING_S / HOP))
    return peaks, env[peaks], props["prominences"]


def semitones(f0, median_f0: float):
    """Pitch (Hz, a float or an array) in semitones above the speaker's median (Hz); f0 under 1 Hz
    (unvoiced) is taken as 1 Hz."""
    return 12 * np.log2(np.maximum(f0, 1) / median_f0)


def median_pitch(f0: np.ndarray) -> float | None:
    """The median of the voiced frames' pitch (Hz; f0 0 where unvoiced), None if none is voiced."""
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) else None


def _f0_peak(f0: np.ndarray, k: int) -> float:
    """The highest pitch within 50 ms of frame k (Hz)."""
    return float(f0[max(0, k - 5): k + 6].max())


def _rated(level: float, prominence: float, f0_peak: float, median_f0: float | None,
           median_level: float, median_prominence: float) -> tuple[float, float, float]:
    """A nucleus's (strength 0..1, pitch peak in semitones over the median, accent score)."""
    strength = float(np.clip(0.5 + (level - median_level) / 12 + (prominence - median_prominence) / 20, 0, 1))
    rise = float(semitones(f0_peak, median_f0)) if median_f0 else 0.0
    return strength, rise, rise + 4 * strength


class Prosody:
    """Nuclei and accents of one speaker, heard window by window. Not thread-safe."""

    def __init__(self, stats: _Stats | None = None) -> None:
        self._stats = stats
        self._levels: deque[float] = deque(maxlen=HISTORY)
        self._prominences: deque[float] = deque(maxlen=HISTORY)
        self._scores: deque[float] = deque(maxlen=HISTORY)
        self.start_utterance()

    @classmethod
    def take(cls, rms_db: np.ndarray, f0: np.ndarray, speech: np.ndarray) -> list[Nucleus]:
        """A whole take's nuclei (times in s from its start), judged against the take's statistics."""
        median_f0 = median_pitch(f0)
        k, level, prominence = _peaks(rms_db)
        keep = speech[k] & (f0[k] > 0)
        if not keep.any():
            return []
        level, prominence = level[keep], prominence[keep]
        ml, mp = float(np.median(level)), float(np.median(prominence))
        scores = [_rated(lv, pr, _f0_peak(f0, i), median_f0, ml, mp)[2]
                  for i, lv, pr in zip(k[keep].tolist(), level.tolist(), prominence.tolist())]
        prosody = cls(_Stats(ml, mp, float(np.percentile(scores, ACCENT_SHARE))))
        return prosody.hear(rms_db, f0, speech, 0.0, median_f0, final=True)

    def start_utterance(self) -> None:
        """A new utterance: its windows' clock starts again (the speaker's statistics are kept)."""
        self._last_nucleus = -math.inf
        self._last_accent = -math.inf

    def hear(self, rms_db: np.ndarray, f0: np.ndarray, speech: np.ndarray, t0: float, median_f0: float | None,
             final: bool) -> list[Nucleus]:
        """The nuclei not reported before in a window of features (each shape = (n,), one per
        HOP; frame k at t0 + (k + 0.5) * HOP s), in time order. final: the utterance ends with the
        window (its last peaks are complete). median_f0: the speaker's median pitch, Hz."""
        if len(rms_db) < 3:
            return []
        live = self._stats is None
        horizon = t0 + len(rms_db) * HOP - (0.0 if final else NUCLEUS_CONFIRM_S)
        if live:   # a nucleus is a voiced speech frame no older than NUCLEUS_MAX_AGE_S: none, nothing to find
            first = max(0, int((horizon - NUCLEUS_MAX_AGE_S - t0) / HOP) - 1)
            if not (speech[first:] & (f0[first:] > 0)).any():
                return []
        out = []
        peaks, levels, prominences = _peaks(rms_db)
        for k, level, prominence in zip(peaks.tolist(), levels.tolist(), prominences.tolist()):
            t = t0 + (k + 0.5) * HOP
            if t > horizon or t < self._last_nucleus + NUCLEUS_SPACING_S - 1e-9:
                continue
            if (live and t < horizon - NUCLEUS_MAX_AGE_S) or not (speech[k] and f0[k] > 0):
                continue
            self._last_nucleus = t
            out.append(self._judge(t, level, prominence, _f0_peak(f0, k), median_f0))
        return out

    def _judge(self, t: float, level: float, prominence: float, f0_peak: float, median_f0: float | None) -> Nucleus:
        if self._stats is None:
            self._levels.append(level)
            self._prominences.append(prominence)
            stats = _Stats(float(np.median(self._levels)), float(np.median(self._prominences)), 0.0)
        else:
            stats = self._stats
        strength, rise, score = _rated(level, prominence, f0_peak, median_f0, stats.level, stats.prominence)
        if self._stats is None:
            self._scores.append(score)
            threshold = float(np.percentile(self._scores, ACCENT_SHARE))
        else:
            threshold = stats.score
        accent = (rise > ACCENT_SEMITONES and score >= threshold
                  and t - self._last_accent >= ACCENT_SPACING_S)
        if accent:
            self._last_accent = t
        return Nucleus(t, strength, accent)
