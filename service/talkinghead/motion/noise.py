"""Smooth random signals and easing for life-like motion (never sine waves), as causal state:
each process continues where its last call stopped, so a take animated at once and a stream
animated chunk by chunk draw the same values."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

LOOP_FRAMES = 32   # OU: fewer frames a call are filtered in Python (lfilter's fixed cost is more)
VECTOR_PULSES = 4096   # Pulses: up to this many pulses x frames are summed as one array


def clip(x, lo, hi):
    """np.clip(x, lo, hi) for lo <= hi, as two ufuncs: the same values without np.clip's own
    per-call cost (a few us; a stream's push clipped some twenty times)."""
    return np.minimum(np.maximum(x, lo), hi)


def smoothstep(u: np.ndarray) -> np.ndarray:
    """0..1 easing with zero slope at both ends; u is clipped to 0..1."""
    u = clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


class OU:
    """An Ornstein-Uhlenbeck process, twice low-passed so it drifts without jerks, n frames at a time.

    tau: correlation time (s); sigma: stationary standard deviation; seed: its own random stream.
    """

    def __init__(self, fps: float, tau: float, sigma: float, seed: np.random.SeedSequence) -> None:
        self._rng = np.random.default_rng(seed)
        a = math.exp(-1.0 / (tau * fps))
        self._a, self._b = a, 1 - a
        # Scaled by the filter's stationary std (not a sample's: a short take would be inflated):
        # white noise through two one-pole low-passes, the sum of the impulse response squared.
        self._scale = sigma / math.sqrt((1 - a) ** 4 * (1 + a * a) / (1 - a * a) ** 3)
        self._z = (0.0, 0.0)       # the two low-passes' last outputs times a (lfilter's state)
        self(int(5 * tau * fps))   # burn-in: the first frames are as random as the rest

    def __call__(self, n: int) -> np.ndarray:
        """The next n values, shape = (n,)."""
        if n == 0:   # lfilter would hand back a reset state for an empty input
            return np.zeros(0)
        x = self._rng.standard_normal(n)
        a, b = self._a, self._b
        if n > LOOP_FRAMES:
            x, z0 = lfilter([b], [1, -a], x, zi=[self._z[0]])
            x, z1 = lfilter([b], [1, -a], x, zi=[self._z[1]])
            self._z = (float(z0[0]), float(z1[0]))
            return x * self._scale
        # a stream's few frames a call: the same recurrence as lfilter's, bit for bit, without
        # its per-call cost (~5 us a filter)
        z0, z1 = self._z
        out = []
        for v in x.tolist():
            y = b * v + z0
            z0 = a * y
            w = b * y + z1
            z1 = a * w
            out.append(w)
        self._z = (z0, z1)
        return np.array(out) * self._scale


def add_pulse(out: np.ndarray, times: np.ndarray, amplitude: float, onset: float, rise: float, decay: float) -> None:
    """Add an asymmetric bump to `out` in place: a smooth rise from `onset` to its peak
    `amplitude` at onset + rise, then a Gaussian fall with width `decay` (s). Only the frames the
    bump reaches are touched, so thousands of syllables in a long take stay cheap."""
    i0 = int(np.searchsorted(times, onset))
    i1 = int(np.searchsorted(times, onset + rise + 4 * decay))
    out[i0:i1] += _bump(times[i0:i1] - onset, amplitude, rise, decay)


def _bump(x, amplitude, rise, decay):
    """add_pulse's bump x s after its onset (arrays broadcast: one pulse or a column per pulse)."""
    up = np.where(x < rise, 0.5 - 0.5 * np.cos(np.pi * x / rise), 0.0)
    down = np.where(x >= rise, np.exp(-((x - rise) / decay) ** 2), 0.0)
    return amplitude * (up + down)


class Pulses:
    """Pending `add_pulse` bumps on one channel (nods, sweeps, brow raises), summed at the frames
    asked for; a bump is forgotten once it has passed."""

    def __init__(self) -> None:
        self._pending: list[tuple[float, float, float, float]] = []

    def add(self, amplitude: float, onset: float, rise: float, decay: float, earliest: float = -math.inf) -> None:
        """A bump (times in s); it starts no earlier than `earliest` (the first frame not yet sent),
        so frames already sent never change and nothing jumps."""
        self._pending.append((amplitude, max(onset, earliest), rise, decay))

    def at(self, t: np.ndarray) -> np.ndarray:
        """The bumps summed at frame times t (ascending, after every earlier call's), shape = (n,)."""
        return Pulses.at_each([self], t)[0]

    @staticmethod
    def at_each(channels: list["Pulses"], t: np.ndarray) -> list[np.ndarray]:
        """`at` of several channels at the same frame times: a stream's few frames of all of them
        in one array (each channel's sum the same as alone)."""
        out = [np.zeros(len(t)) for _ in channels]
        pending = [p for c in channels for p in c._pending]
        if not len(t) or not pending:
            return out
        if len(pending) * len(t) <= VECTOR_PULSES:
            bumps, a = _pulses(t, np.array(pending)), 0
            for k, c in enumerate(channels):
                if c._pending:
                    out[k] = bumps[a: a + len(c._pending)].sum(axis=0)
                    a += len(c._pending)
        else:
            for k, c in enumerate(channels):
                for amplitude, onset, rise, decay in c._pending:
                    add_pulse(out[k], t, amplitude, onset, rise, decay)
        for c in channels:
            c._pending = [p for p in c._pending if p[1] + p[2] + 4 * p[3] > t[-1]]
        return out


def _pulses(times: np.ndarray, pulses: np.ndarray) -> np.ndarray:
    """add_pulse of every pulse (rows of amplitude, onset, rise, decay) at once, shape = (m, n), a
    row per pulse (zero where it does not reach): summed over rows in order, add_pulse's sum."""
    amplitude, onset, rise, decay = (pulses[:, i: i + 1] for i in range(4))
    inside = (times >= onset) & (times < onset + rise + 4 * decay)   # add_pulse's [i0, i1)
    return np.where(inside, _bump(times - onset, amplitude, rise, decay), 0.0)
