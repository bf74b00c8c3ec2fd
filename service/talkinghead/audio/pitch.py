"""Pitch for a stream: Boersma's autocorrelation method (Praat's "To Pitch (ac)", which
`features.pitch_at` runs through parselmouth) in numpy, for the few frames a chunk settles.

Per streamed chunk it costs less than parselmouth's Praat (profiled when it was written: about
60 %): the frames of a call share one FFT
(none for frames too quiet to be voiced), candidates are refined by parabolic interpolation of
the normalised autocorrelation (Praat refines them by sinc interpolation), and the
voiced/unvoiced path is Praat's Viterbi with Praat's costs, its scores carried from call to call
(`PitchTracker` keeps them). The stream's pitch only places syllable nuclei in voiced speech,
finds pitch accents (> 1 semitone over the speaker's median) and lifts the brows with high pitch:
tests/test_fast_paths.py measures its agreement with Praat on real and synthetic speech.

Frame k's f0 is the pitch of the WINDOW_S of audio centred on its centre; 0 where unvoiced.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from talkinghead.audio.decode import SAMPLE_RATE

FLOOR_HZ, CEILING_HZ = 60.0, 500.0   # Praat's pitch floor and ceiling, features.pitch_at's too
PERIODS_PER_WINDOW = 3.0             # Praat's AC default: the window holds 3 periods of the floor
SILENCE_THRESHOLD = 0.03             # Praat's defaults, relative to the loudest sample...
VOICING_THRESHOLD = 0.45             # ...and of the normalised autocorrelation
OCTAVE_COST = 0.01
OCTAVE_JUMP_COST = 0.35
VOICED_UNVOICED_COST = 0.14

_HALF = int(PERIODS_PER_WINDOW / FLOOR_HZ * SAMPLE_RATE) // 2 - 1     # 399: half a window, samples
WINDOW = 2 * _HALF                                                    # 798 samples (~50 ms)
WINDOW_S = WINDOW / SAMPLE_RATE
_PERIOD = int(SAMPLE_RATE / FLOOR_HZ)                                 # the longest period, samples
_MIN_LAG = max(2, int(SAMPLE_RATE / CEILING_HZ))
_MAX_LAG = min(int(WINDOW / PERIODS_PER_WINDOW) + 2, WINDOW)
_NFFT = scipy.fft.next_fast_len(WINDOW + _MAX_LAG + 2, real=True)    # no wrap-around at the lags used
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1, WINDOW + 1) / (WINDOW + 1))).astype(np.float32)
_HANN_AC = scipy.fft.irfft(np.abs(scipy.fft.rfft(_HANN.astype(np.float64), _NFFT)) ** 2, _NFFT)[: _MAX_LAG + 2]
_HANN_AC = _HANN_AC / _HANN_AC[0]
MAX_CANDIDATES = 4                   # voiced candidates a frame keeps, the strongest (Praat keeps 15)
_PEAK_SPAN = slice(_HALF - _PERIOD // 2, _HALF + _PERIOD // 2)        # where a frame's local peak is looked for...
_MEAN_SPAN = slice(_HALF - _PERIOD, _HALF + _PERIOD)                  # ...and its local mean (a period each side)
_FRAME = np.arange(WINDOW)
_LOG2_CEILING = math.log2(CEILING_HZ)
# the path's state after unvoiced frames: only the unvoiced candidate reached (read-only, shared)
_SILENT = (np.zeros(MAX_CANDIDATES + 1), np.concatenate([[0.0], np.full(MAX_CANDIDATES, -np.inf)]))
for _a in _SILENT:
    _a.flags.writeable = False


Candidates = tuple[np.ndarray, np.ndarray]   # a frame's candidate frequencies (Hz, 0 unvoiced) and path scores


class PitchTracker:
    """One stream's pitch, call by call: one Viterbi over all the frames given so far, its
    forward scores carried from call to call; each call answers for its own frames with the best
    path as it stands (frames already answered for are not revised). Not thread-safe; one per
    stream."""

    def __init__(self) -> None:
        self._state: Candidates | None = None   # the last frame's

    def track(self, audio: np.ndarray, centres: np.ndarray, peak: float) -> np.ndarray:
        """f0 (Hz, 0 unvoiced) of frames centred `centres` s into `audio` (float mono at
        SAMPLE_RATE; samples outside it are taken as silence), shape = (len(centres),), each
        frame after the last of the previous call. peak: the loudest |sample| of the speaker so
        far, what "silent" is relative to."""
        f0, state = pitch_frames(audio, centres, peak, self._state)
        if len(f0):
            self._state = state
        return f0


def pitch_frames(audio: np.ndarray, centres: np.ndarray, peak: float,
                 before: Candidates | None = None) -> tuple[np.ndarray, Candidates]:
    """PitchTracker.track without state: (f0, shape = (n,); the last frame's candidates and
    their path scores, to continue from). before: the same of the frame before the first."""
    n = len(centres)
    width = MAX_CANDIDATES + 1   # candidate 0 is "unvoiced"
    if n == 0:
        return np.zeros(0), before if before is not None else _SILENT
    if peak <= 0:   # nothing heard yet
        return np.zeros(n), _SILENT
    frames, local_peak = _frames(audio, np.asarray(centres, np.float64))
    intensity = np.minimum(local_peak / peak, 1.0)
    freq, delta = np.zeros((n, width)), np.full((n, width), -np.inf)
    delta[:, 0] = VOICING_THRESHOLD + np.maximum(0.0, 2.0 - intensity / (SILENCE_THRESHOLD / (1.0 + VOICING_THRESHOLD)))
    # Quieter frames are unvoiced on any path (their unvoiced strength beats any voiced one by more
    # than two voicing changes cost): no autocorrelation for them, and none at all in a pause.
    audible = intensity >= 0.5 * SILENCE_THRESHOLD / (1.0 + VOICING_THRESHOLD)
    if not audible.any():
        return np.zeros(n), _SILENT
    rows, f, d = _candidates(_autocorrelation(frames[audible]))
    order = np.lexsort((-d, rows))                                  # each frame's strongest first
    rows, f, d = rows[order], f[order], d[order]
    slot = np.arange(len(rows)) - np.searchsorted(rows, rows)       # k-th strongest of its frame
    keep = slot < MAX_CANDIDATES
    at = (np.flatnonzero(audible)[rows[keep]], 1 + slot[keep])
    freq[at], delta[at] = f[keep], d[keep]
    return _viterbi(freq, delta, before)


def _frames(audio: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's WINDOW samples around its centre (float64), local mean (over a longest period
    to each side) removed, shape = (n, WINDOW), and the local peak |sample| within half a longest
    period of the centre, shape = (n,). As Praat: the window's samples are left + 1 - _HALF ..
    left + _HALF, left the last sample before the centre."""
    left = np.floor(centres * SAMPLE_RATE - 0.5).astype(int)
    lo, hi = int(left.min()) + 1 - _HALF, int(left.max()) + _HALF + 1
    x = np.asarray(audio[max(lo, 0): min(hi, len(audio))], np.float64)
    if lo < 0 or hi > len(audio):
        x = np.concatenate([np.zeros(max(0, -lo)), x, np.zeros(max(0, hi - len(audio)))])
    frames = x[(left + 1 - _HALF - lo)[:, None] + _FRAME]
    frames -= frames[:, _MEAN_SPAN].mean(axis=1, keepdims=True)
    return frames, np.abs(frames[:, _PEAK_SPAN]).max(axis=1)


def _autocorrelation(frames: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation of the Hann-windowed frames, lags 0.._MAX_LAG + 1, shape =
    (n, _MAX_LAG + 2), divided by the window's own (Boersma 1993): 1 at lag 0."""
    spec = scipy.fft.rfft(frames.astype(np.float32) * _HANN, _NFFT, axis=1)   # float32: pitch needs no more
    ac = scipy.fft.irfft(spec.real ** 2 + spec.imag ** 2, _NFFT, axis=1)[:, : _MAX_LAG + 2].astype(np.float64)
    energy = ac[:, :1]
    return np.divide(ac, energy * _HANN_AC, out=np.zeros_like(ac), where=energy > 0)


def _candidates(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The voiced candidates: maxima of r over lags _MIN_LAG.._MAX_LAG above half the voicing
    threshold, below CEILING_HZ, as (frame (row of r), frequency Hz, strength less Praat's octave
    cost), each shape = (m,), in frame order."""
    mid = r[:, _MIN_LAG: _MAX_LAG + 1]
    before, after = r[:, _MIN_LAG - 1: _MAX_LAG], r[:, _MIN_LAG + 1: _MAX_LAG + 2]
    rows, cols = np.nonzero((mid > 0.5 * VOICING_THRESHOLD) & (mid > before) & (mid >= after))
    r0, rm, rp = mid[rows, cols], before[rows, cols], after[rows, cols]
    dr, d2r = 0.5 * (rp - rm), 2.0 * r0 - rm - rp
    d2r = np.where(d2r > 0, d2r, 1.0)
    strength = r0 + 0.5 * dr * dr / d2r
    strength = np.where(strength > 1.0, 1.0 / strength, strength)   # short windows overshoot: reflect around 1
    freq = SAMPLE_RATE / (_MIN_LAG + cols + dr / d2r)               # parabolic peak
    ok = freq < CEILING_HZ
    freq = freq[ok]
    return rows[ok], freq, strength[ok] - OCTAVE_COST * (_LOG2_CEILING - np.log2(freq))


def _viterbi(freq: np.ndarray, delta: np.ndarray, before: Candidates | None) -> tuple[np.ndarray, Candidates]:
    """Praat's path through the candidates (freq, delta: shape = (n, k); freq 0 = unvoiced,
    delta -inf = no candidate): the most strength less the octave-jump and voicing-change costs.
    before: the candidates (Hz) and path scores of the frame before, shape = (j,) each, or None.
    Returns the path's frequencies and the last frame's (candidates, scores)."""
    n, k = freq.shape
    if before is not None:   # the frame before as row 0, its scores as they were
        freq, delta = np.concatenate([before[0][None], freq]), np.concatenate([before[1][None], delta])
    voiced = freq > 0
    log_f = np.log2(np.where(voiced, freq, 1.0))
    # cost[i, a, b]: from candidate a of row i to candidate b of row i + 1
    jump = OCTAVE_JUMP_COST * np.abs(log_f[:-1, :, None] - log_f[1:, None, :])
    change = voiced[:-1, :, None] != voiced[1:, None, :]
    cost = np.where(change, VOICED_UNVOICED_COST, np.where(voiced[:-1, :, None], jump, 0.0))
    rows = len(freq)
    back = np.zeros((rows, k), int)
    total = delta[0]
    columns = np.arange(k)
    for i in range(1, rows):
        score = total[:, None] - cost[i - 1]
        back[i] = score.argmax(0)
        total = score[back[i], columns] + delta[i]
    path = np.empty(rows, int)
    path[-1] = int(total.argmax())
    for i in range(rows - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    first = rows - n
    return freq[np.arange(first, rows), path[first:]], (freq[-1], total - total.max())
