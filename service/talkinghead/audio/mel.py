"""Log-mel frames for the phone model: 16 kHz audio -> N_MELS log energies at 100 frames/s.

Frame k is centred on the middle of [k*HOP, (k+1)*HOP) seconds, the grid `audio.features` and
the recogniser use: its WINDOW samples span [k*HOP_SAMPLES + HOP_SAMPLES/2 - WINDOW/2, ... + WINDOW/2),
so it is known once the audio reaches (k+1)*HOP_SAMPLES + LOOKAHEAD_SAMPLES. Before the audio
starts and after it ends the signal is taken as digital silence (zeros), both offline and
streaming, so `MelStream` gives exactly `log_mel`'s frames however the audio is cut.
"""

from __future__ import annotations

import numpy as np

from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.phones import HOP_SAMPLES

N_MELS = 64
WINDOW = 400          # samples (25 ms)
N_FFT = 512
FMIN, FMAX = 40.0, 7600.0
LOG_FLOOR = 1e-8      # power floor: digital silence is log10(LOG_FLOOR) = -8 in every band
LEAD_SAMPLES = WINDOW // 2 - HOP_SAMPLES // 2              # 120: window reach before a frame's start
LOOKAHEAD_SAMPLES = WINDOW // 2 - HOP_SAMPLES // 2         # 120: reach past its end


def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular filters on the HTK mel scale, area-normalised (Slaney), shape = (n_mels, n_fft//2+1)."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(FMIN), mel(FMAX), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return (tri * (2.0 / (hi - lo))).astype(np.float32)


_FILTERS = mel_filters()
_HANN = np.hanning(WINDOW + 1)[:-1].astype(np.float32)


def power_frames(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """|STFT|^2 of frames [0, n_frames) of `samples` already padded with LEAD_SAMPLES zeros in front
    (and enough at the end), shape = (n_frames, N_FFT//2+1)."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, WINDOW)[: n_frames * HOP_SAMPLES: HOP_SAMPLES] * _HANN
    return (np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2).astype(np.float32)


def log_power_to_mel(power: np.ndarray) -> np.ndarray:
    """shape = (n, N_FFT//2+1) power -> (n, N_MELS) log10 mel energies."""
    return np.log10(np.maximum(power @ _FILTERS.T, LOG_FLOOR)).astype(np.float32)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """float32 mono at SAMPLE_RATE, shape = (n,) -> shape = (n // HOP_SAMPLES, N_MELS)."""
    n_frames = len(samples) // HOP_SAMPLES
    padded = np.concatenate([np.zeros(LEAD_SAMPLES, np.float32), np.asarray(samples, np.float32),
                             np.zeros(WINDOW, np.float32)])
    return log_power_to_mel(power_frames(padded, n_frames))


class MelStream:
    """`log_mel` incrementally: push() samples, get the frames they complete."""

    def __init__(self) -> None:
        self._buf = np.zeros(LEAD_SAMPLES, np.float32)   # samples from frame `_next`'s window start
        self._next = 0            # next frame to emit
        self.n_samples = 0        # samples pushed so far

    def push(self, samples: np.ndarray) -> np.ndarray:
        """New frames, shape = (m, N_MELS): those whose window the audio now covers."""
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])
        self.n_samples += len(samples)
        ready = max(0, min(self.n_samples // HOP_SAMPLES,
                           (self.n_samples - LOOKAHEAD_SAMPLES) // HOP_SAMPLES) - self._next)
        return self._emit(ready)

    def finish(self) -> np.ndarray:
        """The audio ended: the remaining frames of `log_mel(all samples)` (zeros after the end)."""
        ready = self.n_samples // HOP_SAMPLES - self._next
        self._buf = np.concatenate([self._buf, np.zeros(WINDOW, np.float32)])
        return self._emit(max(0, ready))

    def _emit(self, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros((0, N_MELS), np.float32)
        out = log_power_to_mel(power_frames(self._buf, n))
        self._buf = self._buf[n * HOP_SAMPLES:]
        self._next += n
        return out
