"""The stream's cheap paths compute what the library calls they replace did (issue 11's cost
target): the same values, or within a stated tolerance where only the rounding differs."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_closing, binary_opening
from scipy.signal import lfilter

from talkinghead.audio.features import HOP, VAD_BRIDGE_S, VAD_MIN_SPEECH_S, bridged
from talkinghead.motion.noise import LOOP_FRAMES, OU


def scipy_bridged(raw: np.ndarray, open_start: bool, open_end: bool) -> np.ndarray:
    """features.bridged as it was written with scipy.ndimage's binary closing and opening."""
    bridge, click = int(VAD_BRIDGE_S / HOP), int(VAD_MIN_SPEECH_S / HOP)
    before, after = (bridge if open_start and len(raw) else 0), (bridge if open_end else 0)
    x = np.concatenate([np.full(before, raw[0] if len(raw) else False), raw, np.ones(after, bool)])
    x = binary_opening(binary_closing(x, np.ones(bridge)), np.ones(click))
    return x[before: len(x) - after]


def test_bridged_is_scipys_closing_then_opening():
    rng = np.random.default_rng(1)
    for _ in range(3000):
        n, p = int(rng.integers(0, 150)), rng.random()
        runs = rng.random(n // 5 + 1) < p
        raw = np.repeat(runs, rng.integers(1, 20, len(runs)))[:n] if rng.random() < 0.5 else rng.random(n) < p
        open_start, open_end = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        got = bridged(raw, open_start, open_end)
        assert got.dtype == bool
        np.testing.assert_array_equal(got, scipy_bridged(raw, open_start, open_end), err_msg=str(raw.astype(int)))


def test_ou_noise_is_the_same_however_it_is_asked_for():
    """A stream asks for a few frames a call (filtered in Python), a take for all at once
    (lfilter): the same values bit for bit, and the same as two lfilter passes over the draws."""
    seed = np.random.SeedSequence(7)
    whole = OU(30.0, 1.5, 2.0, seed)(1000)
    parts = OU(30.0, 1.5, 2.0, seed)
    sizes = [1, 3, LOOP_FRAMES, LOOP_FRAMES + 1, 2, 500, 0, 3]
    pieces = [parts(n) for n in sizes]
    pieces.append(parts(1000 - sum(sizes)))
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    a = np.exp(-1.0 / (1.5 * 30.0))
    ref = OU(30.0, 1.5, 2.0, seed)
    draws = np.random.default_rng(seed).standard_normal(int(5 * 1.5 * 30.0) + 1000)
    once = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], draws))[-1000:]
    np.testing.assert_allclose(once * ref._scale, whole, rtol=0, atol=1e-12)
