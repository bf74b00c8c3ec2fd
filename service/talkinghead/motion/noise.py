"""Smooth random signals for life-like motion (never sine waves)."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def ou_noise(n: int, fps: float, tau: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Ornstein-Uhlenbeck process, twice low-passed so it drifts without jerks.

    tau: correlation time (s); sigma: stationary standard deviation. shape = (n,).
    """
    a = np.exp(-1.0 / (tau * fps))
    burn = int(5 * tau * fps)  # burn-in so the first frames are as random as the rest
    x = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], rng.standard_normal(n + burn)))[burn:]
    # Scale by the filter's stationary std (not the sample's: a short clip would be inflated).
    impulse = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], np.eye(1, burn + 1)[0]))
    return x * sigma / np.sqrt(np.sum(impulse ** 2))


def add_pulse(out: np.ndarray, times: np.ndarray, amplitude: float, onset: float, rise: float, decay: float) -> None:
    """Add an asymmetric bump to `out` in place: a smooth rise from `onset` to its peak
    `amplitude` at onset + rise, then a Gaussian fall with width `decay` (s). Only the frames the
    bump reaches are touched, so thousands of syllables in a long take stay cheap."""
    i0 = int(np.searchsorted(times, onset))
    i1 = int(np.searchsorted(times, onset + rise + 4 * decay))
    x = times[i0:i1] - onset
    up = np.where(x < rise, 0.5 - 0.5 * np.cos(np.pi * x / rise), 0.0)
    down = np.where(x >= rise, np.exp(-((x - rise) / decay) ** 2), 0.0)
    out[i0:i1] += amplitude * (up + down)


def smooth_mask(mask: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """A 0/1 mask eased with a moving average of `seconds`, shape kept."""
    k = max(1, int(seconds * fps))
    # mode="same" returns max(len(mask), k) values: a take shorter than the window (a word, an
    # interjection) must still get one value per frame, so cut the result back to the mask.
    out = np.convolve(mask.astype(float), np.ones(k) / k, mode="same")
    if len(out) > len(mask):
        start = (len(out) - len(mask)) // 2
        out = out[start:start + len(mask)]
    return out
