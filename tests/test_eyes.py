"""Eye motion: blink rate/shape/timing, gaze holds and saccades, eyeLook* agreement, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from eye_takes import EyeMotion, eye_motion
from talkinghead.arkit import BLENDSHAPE_NAMES, BS
from talkinghead.motion.options import MotionOptions

FPS = 30.0
SECONDS = 60.0
SEEDS = range(6)


def alternating_speech(n_frames: int, fps: float, speech_s: float = 3.0, pause_s: float = 1.0) -> np.ndarray:
    """speech_s of speech, then pause_s of silence, repeated."""
    t = np.arange(n_frames) / fps
    return (t % (speech_s + pause_s)) < speech_s


def run(seed: int = 0, fps: float = FPS, seconds: float = SECONDS, **options) -> tuple[EyeMotion, np.ndarray]:
    n = int(round(seconds * fps))
    speaking = alternating_speech(n, fps)
    motion = eye_motion(speaking, fps, MotionOptions(fps=fps, seed=seed, **options), np.random.default_rng(seed))
    return motion, speaking


def blink_segments(blink: np.ndarray, floor: float = 0.02) -> list[tuple[int, int]]:
    """[first, last] frame of each stretch where the lid is closed more than `floor`."""
    above = np.concatenate([[False], blink > floor, [False]])
    edges = np.flatnonzero(np.diff(above.astype(int)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def blink_starts(blink: np.ndarray) -> np.ndarray:
    """Frames where the lid crosses half closed on the way down: one per blink."""
    return np.flatnonzero((blink[1:] >= 0.5) & (blink[:-1] < 0.5)) + 1


# --- blinks --------------------------------------------------------------------------------------

def test_blink_count_follows_blink_rate() -> None:
    # Default rate (17/min): every 60 s track is within 35% of the requested count.
    expected = 17.0 * SECONDS / 60.0
    counts = [len(blink_starts(run(seed, blink_rate=17.0)[0].blink)) for seed in range(12)]
    for count in counts:
        assert abs(count - expected) <= 0.35 * expected, (counts, expected)


@pytest.mark.parametrize("rate", [8.0, 17.0, 40.0])
def test_mean_blink_rate_tracks_option(rate: float) -> None:
    # One short track is noisy (blinking is random); the mean over tracks is tight.
    counts = [len(blink_starts(run(seed, blink_rate=rate)[0].blink)) for seed in range(12)]
    expected = rate * SECONDS / 60.0
    assert abs(np.mean(counts) - expected) <= 0.15 * expected, (counts, expected)


def test_blink_rate_zero_never_blinks() -> None:
    for seed in SEEDS:
        motion, _ = run(seed, blink_rate=0.0)
        assert not motion.blink.any()
        # The lid may still follow a downward look, but never closes.
        lids = motion.blendshapes[:, [BS["eyeBlinkLeft"], BS["eyeBlinkRight"]]]
        assert lids.max() < 0.3


@pytest.mark.parametrize("fps", [24.0, 30.0, 60.0])
def test_blink_closes_fast_opens_slowly_and_closes_fully(fps: float) -> None:
    measured = 0
    for seed in SEEDS:
        blink = run(seed, fps=fps)[0].blink
        for first, last in blink_segments(blink):
            segment = blink[first:last + 1]
            if first == 0 or last == len(blink) - 1:
                continue  # cut off by the track's ends
            assert segment.max() >= 0.95, (fps, seed, first)
            local_peaks = np.flatnonzero(segment >= 0.95)
            if local_peaks[-1] - local_peaks[0] > 3:
                continue  # a double blink: two peaks in one segment
            peak = first + local_peaks[0]
            closing, opening = peak - first, last - peak
            assert closing < opening, (fps, seed, first, closing, opening)
            measured += 1
    assert measured >= 30


def test_both_eyes_blink_together() -> None:
    motion, _ = run(2)
    left = motion.blendshapes[:, BS["eyeBlinkLeft"]]
    right = motion.blendshapes[:, BS["eyeBlinkRight"]]
    assert np.corrcoef(left, right)[0, 1] > 0.98
    assert np.abs(left - right).max() < 0.1


def test_blinks_favour_pauses_over_speech() -> None:
    in_pause = in_speech = 0
    pause_s = speech_s = 0.0
    for seed in SEEDS:
        motion, speaking = run(seed)
        for first, _ in blink_segments(motion.blink):
            if speaking[first]:
                in_speech += 1
            else:
                in_pause += 1
        speech_s += speaking.sum() / FPS
        pause_s += (~speaking).sum() / FPS
    assert in_pause / pause_s > 1.5 * (in_speech / speech_s), (in_pause, pause_s, in_speech, speech_s)


def test_eyes_dip_during_blinks() -> None:
    motion, _ = run(1)
    closed = motion.blink > 0.9
    assert closed.any()
    assert np.median(motion.gaze[closed, 1]) < np.median(motion.gaze[~closed, 1]) - 1.0


# --- gaze ----------------------------------------------------------------------------------------

def gaze_magnitude(motion: EyeMotion) -> np.ndarray:
    """Angle off the camera per eye per frame, degrees, shape = (n_frames * 2,)."""
    g = motion.gaze
    return np.concatenate([np.hypot(g[:, 0], g[:, 1]), np.hypot(g[:, 2], g[:, 3])])


def test_camera_gaze_stays_near_camera() -> None:
    for seed in SEEDS:
        motion, _ = run(seed, gaze="camera")
        assert np.median(gaze_magnitude(motion)) < 3.0
        assert np.abs(motion.gaze).max() < 30.0


def test_wander_looks_away_more_than_camera() -> None:
    camera = np.mean([gaze_magnitude(run(s, gaze="camera")[0]).mean() for s in SEEDS])
    wander = np.mean([gaze_magnitude(run(s, gaze="wander")[0]).mean() for s in SEEDS])
    assert wander > 1.5 * camera, (camera, wander)


def test_saccades_are_steps_not_drift() -> None:
    for seed in SEEDS:
        yaw = run(seed, blink_rate=0.0)[0].gaze[:, 0]
        step = np.abs(np.diff(yaw))
        moving = step > 0.05
        assert moving.mean() < 0.15              # the eyes hold still most of the time...
        assert (step > 0.4).sum() >= 20          # ...and jump now and then
        # A fixational saccade finishes within 1-2 frames; a large one within 3 at 30 fps.
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], moving.astype(int), [0]]))))[::2]
        assert runs.max() <= 3, runs.max()


def test_both_eyes_look_the_same_way() -> None:
    g = run(3, gaze="wander")[0].gaze
    assert np.corrcoef(g[:, 0], g[:, 2])[0, 1] > 0.99
    assert np.allclose(g[:, 1], g[:, 3])


def test_aversion_more_likely_at_turn_starts_than_mid_speech() -> None:
    near_turn, mid_speech = [], []
    for seed in range(12):
        motion, speaking = run(seed, blink_rate=0.0)
        away = gaze_magnitude(motion)[: len(speaking)] > 4.0
        t = np.arange(len(speaking)) / FPS
        phase = t % 4.0                          # speech starts at phase 0 every 4 s
        near_turn.append(away[(phase < 1.2) | (phase > 3.8)].mean())
        mid_speech.append(away[(phase > 1.8) & (phase < 3.0)].mean())
    assert np.mean(near_turn) > 4.0 * np.mean(mid_speech), (np.mean(near_turn), np.mean(mid_speech))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("gaze", ["camera", "wander"])
def test_eyelook_blendshapes_agree_with_gaze(gaze: str) -> None:
    motion, _ = run(4, gaze=gaze)
    bs, g = motion.blendshapes, motion.gaze
    # Yaw + turns toward the subject's left: outward for the left eye, inward for the right eye.
    assert correlation(bs[:, BS["eyeLookOutLeft"]] - bs[:, BS["eyeLookInLeft"]], g[:, 0]) > 0.95
    assert correlation(bs[:, BS["eyeLookInRight"]] - bs[:, BS["eyeLookOutRight"]], g[:, 2]) > 0.95
    for side, pitch in (("Left", g[:, 1]), ("Right", g[:, 3])):
        assert correlation(bs[:, BS[f"eyeLookUp{side}"]] - bs[:, BS[f"eyeLookDown{side}"]], pitch) > 0.95
    # Opposite channels never fire together.
    assert not (bs[:, BS["eyeLookOutLeft"]] * bs[:, BS["eyeLookInLeft"]]).any()
    assert not (bs[:, BS["eyeLookUpRight"]] * bs[:, BS["eyeLookDownRight"]]).any()
    # Clear looks to the subject's left use OutLeft and InRight.
    left_look = g[:, 0] > 3.0
    if left_look.any():
        assert (bs[left_look, BS["eyeLookOutLeft"]] > 0).all()
        assert (bs[left_look, BS["eyeLookInRight"]] > 0).all()
        assert not bs[left_look, BS["eyeLookInLeft"]].any()


def test_shapes_types_ranges_and_eye_channels_only() -> None:
    motion, speaking = run(5, gaze="wander")
    n = len(speaking)
    assert motion.blendshapes.shape == (n, 52) and motion.blendshapes.dtype == np.float32
    assert motion.gaze.shape == (n, 4) and motion.gaze.dtype == np.float32
    assert motion.blink.shape == (n,) and motion.blink.dtype == np.float32
    assert motion.blendshapes.min() >= 0.0 and motion.blendshapes.max() <= 1.0
    assert motion.blink.min() >= 0.0 and motion.blink.max() <= 1.0
    not_eye = [i for i, name in enumerate(BLENDSHAPE_NAMES) if not name.startswith("eye")]
    assert not motion.blendshapes[:, not_eye].any()


# --- determinism and edge cases ------------------------------------------------------------------

def test_same_seed_same_motion_different_seed_different() -> None:
    a, _ = run(7, gaze="wander")
    b, _ = run(7, gaze="wander")
    c, _ = run(8, gaze="wander")
    for name in ("blendshapes", "gaze", "blink"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))


@pytest.mark.parametrize("n_frames", [0, 1, 5])
def test_short_tracks(n_frames: int) -> None:
    motion = eye_motion(np.zeros(n_frames, bool), FPS, MotionOptions(), np.random.default_rng(0))
    assert motion.blendshapes.shape == (n_frames, 52)
    assert motion.gaze.shape == (n_frames, 4)
    assert motion.blink.shape == (n_frames,)

