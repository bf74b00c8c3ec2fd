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


def pulse(times: np.ndarray, onset: float, rise: float, decay: float) -> np.ndarray:
    """An asymmetric bump peaking at 1 at onset + rise: smooth rise, exponential-ish decay."""
    x = times - onset
    up = np.where((x > 0) & (x < rise), 0.5 - 0.5 * np.cos(np.pi * x / rise), 0.0)
    down = np.where(x >= rise, np.exp(-((x - rise) / decay) ** 2), 0.0)
    return up + down


def smooth_mask(mask: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """A 0/1 mask eased with a moving average of `seconds`, shape kept."""
    k = max(1, int(seconds * fps))
    return np.convolve(mask.astype(float), np.ones(k) / k, mode="same")
