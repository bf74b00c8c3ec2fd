"""Eye motion: blinks, fixational saccades and gaze aversion -> gaze angles + eye blendshapes.

Three processes, each modelled on what real eyes do in conversation:

- Blinks are a renewal process (a refractory period plus a right-skewed gamma wait) whose clock
  runs faster just after speech stops and slower mid-speech, so blinks cluster at pauses the way
  speakers' blinks do, while the long-run rate stays `MotionOptions.blink_rate`. Each blink closes
  fast, holds briefly and reopens slowly, and its peak lands on a frame so sampled frames close.
- Fixational saccades: the eyes hold a point, then jump 0.5-2 degrees in a few tens of
  milliseconds and hold again (steps, not sine waves), staying within a couple of degrees of the
  camera.
- Gaze aversion: now and then the eyes look 5-15 degrees sideways and/or down for 0.5-2 s,
  most often while the speaker starts a turn (thinking), and come back. Large shifts land a little
  short and are followed by a small corrective saccade; a nearby blink moves onto the shift
  (gaze-evoked blink).

Angles follow `talkinghead.track`: yaw + = toward the subject's LEFT, pitch + = up, degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES, BS
from talkinghead.motion.options import MotionOptions

# --- Blink timing (spontaneous blinks; VanderWerf et al. 2003, Kwon et al. 2013) -------------------
BLINK_CLOSE_S = (0.070, 0.100)    # lid closing: the fast phase
BLINK_HOLD_S = (0.015, 0.050)     # fully closed
BLINK_OPEN_S = (0.150, 0.250)     # reopening is 2-3x slower than closing, with a long slow tail
BLINK_REFRACTORY_S = 1.2          # shortest gap between independent blinks (double blinks excepted)
BLINK_INTERVAL_SHAPE = 2.0        # gamma shape of the wait after the refractory period: skewed, CV ~0.7
DOUBLE_BLINK_P = 0.08             # share of blinks followed at once by a second one
DOUBLE_BLINK_GAP_S = (0.28, 0.40)  # peak-to-peak gap of a double blink
BLINK_ASYMMETRY = 0.015           # one eye's closure is short of the other's by |N(0, this)|

# Blink hazard relative to plain silence: speakers blink at pauses and at the ends of phrases and
# hold blinks back mid-word. The gains are renormalised over the track, so they move blinks in time
# without changing how many there are.
BLINK_SPEECH_GAIN = 0.5
BLINK_PAUSE_GAIN = 1.0
BLINK_OFFSET_GAIN = 4.0           # just after speaking stops
BLINK_OFFSET_WINDOW_S = 0.5

# Eyes rotate down a little during a blink (Collewijn et al. 1985) and the upper lid follows the eye
# when it looks down (lid-saccade coupling), which ARKit reports as partial eyeBlink.
BLINK_PITCH_DROP_DEG = 2.0
LID_FOLLOW_GAIN = 0.3             # eyeBlink added per unit of eyeLookDown

# --- Gaze --------------------------------------------------------------------------------------
# ARKit's eyeLook* reach ~1.0 at about 30 degrees sideways and 25 degrees up/down.
LOOK_HORIZONTAL_FULL_DEG = 30.0
LOOK_VERTICAL_FULL_DEG = 25.0
VERGENCE_DEG = 0.5                # each eye turns this far nasally: converged on a point a few m away

FIXATION_INTERVAL_MEDIAN_S = 0.9  # time between fixational saccades: lognormal...
FIXATION_INTERVAL_SIGMA = 0.45
FIXATION_INTERVAL_S = (0.4, 2.0)  # ...clipped to this range
FIXATION_JUMP_DEG = (0.5, 2.0)    # amplitude of one fixational saccade
FIXATION_RADIUS_DEG = (2.0, 1.2)  # (yaw, pitch) half-axes of the region held around the target
FIXATION_VERTICAL_SCALE = 0.6     # fixational saccades are mostly horizontal
FIXATION_CENTRING = 1.5           # pull of a jump back toward the target, grows toward the edge
FIXATION_CLEAR_S = 0.3            # no fixational saccade this close to a large gaze shift

# Saccade duration grows with amplitude (the "main sequence", Baloh et al. 1975):
# ~23 ms for 1 degree, ~43 ms for 10, so small steps finish within 1-2 frames at 24-30 fps.
SACCADE_BASE_S = 0.021
SACCADE_S_PER_DEG = 0.0022
SACCADE_UNDERSHOOT = (0.05, 0.15)  # large saccades land this share short of their target...
CORRECTIVE_DELAY_S = (0.12, 0.25)  # ...and a corrective saccade follows after this long
UNDERSHOOT_MIN_DEG = 4.0

TURN_GAP_S = 0.6                  # speech after at least this much silence starts a turn
TURN_LEAD_S = (0.0, 0.3)          # a thinking aversion starts this far before the first word
GAZE_BLINK_MIN_DEG = 8.0          # gaze shifts at least this large pull a nearby blink onto them
GAZE_BLINK_SNAP_S = 0.6           # how far a blink may move to join a gaze shift
GAZE_BLINK_DELAY_S = 0.05         # blink peak after the shift starts
GAZE_BLINK_SPACING_S = 0.5        # a moved blink keeps at least this gap to its neighbours

EYE_CHANNELS = [i for i, name in enumerate(BLENDSHAPE_NAMES) if name.startswith("eye")]


@dataclass(frozen=True)
class GazeStyle:
    """How often and how far the eyes leave the camera. Rates are aversions per minute."""

    speech_rate: float            # background rate while speaking
    silence_rate: float           # background rate in pauses
    turn_prob: float              # chance of a thinking aversion at each turn start
    amplitude_deg: tuple[float, float]
    hold_median_s: float
    hold_s: tuple[float, float]
    min_gap_s: float              # at least this long on the camera between aversions
    up_prob: float                # share of aversions that look up-sideways instead of down
    max_down_deg: float = 15.0    # further down and the lids would close over the eyes
    max_up_deg: float = 12.0


CAMERA_STYLE = GazeStyle(speech_rate=1.0, silence_rate=2.5, turn_prob=0.35, amplitude_deg=(5.0, 15.0),
                         hold_median_s=1.0, hold_s=(0.5, 2.0), min_gap_s=1.5, up_prob=0.0)
WANDER_STYLE = GazeStyle(speech_rate=5.0, silence_rate=8.0, turn_prob=0.8, amplitude_deg=(8.0, 22.0),
                         hold_median_s=1.6, hold_s=(0.6, 3.0), min_gap_s=0.6, up_prob=0.2)


@dataclass
class EyeMotion:
    """Eye animation for n_frames frames at a fixed rate.

    blendshapes: shape = (n_frames, 52), float32, 0..1, ARKit order; only eye* channels are non-zero
    gaze:        shape = (n_frames, 4), float32, degrees: left_yaw, left_pitch, right_yaw, right_pitch
    blink:       shape = (n_frames,), float32, 0..1 eyelid closure of the blinks alone
                 (no lid-follow), for stages that react to blinks (brows, cheeks)
    """

    blendshapes: np.ndarray
    gaze: np.ndarray
    blink: np.ndarray


@dataclass(frozen=True)
class _Aversion:
    start: float                  # seconds
    end: float                    # seconds
    yaw: float                    # degrees
    pitch: float                  # degrees


def eye_motion(n_frames: int, fps: float, speaking: np.ndarray, options: MotionOptions,
               rng: np.random.Generator) -> EyeMotion:
    """Blinks and gaze for frames at t = i / fps.

    speaking: shape = (n_frames,), bool, True where there is voice activity.
    The result depends only on the inputs and the state of `rng`.
    """
    speaking = np.asarray(speaking, dtype=bool)
    if speaking.shape != (n_frames,):
        raise ValueError(f"speaking shape {speaking.shape}, expected ({n_frames},)")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    t = np.arange(n_frames) / fps
    style = WANDER_STYLE if options.gaze == "wander" else CAMERA_STYLE

    peaks = _schedule_blinks(_blink_hazard(speaking, fps), fps, options.blink_rate, rng)
    aversions = _schedule_aversions(speaking, fps, style, rng)
    big_shifts = [a.start for a in aversions if np.hypot(a.yaw, a.pitch) >= GAZE_BLINK_MIN_DEG]
    peaks = _sync_blinks_to_gaze_shifts(peaks, np.array(big_shifts))
    peaks = np.unique(np.round(peaks * fps)) / fps   # peak on a frame: sampled frames reach 1.0
    blink, lid_left, lid_right = _blink_curves(t, peaks, rng)

    base = _gaze_path(t, fps, aversions, rng)              # (n, 2) yaw, pitch shared by both eyes
    pitch = base[:, 1] - BLINK_PITCH_DROP_DEG * blink
    gaze = np.stack([base[:, 0] - VERGENCE_DEG, pitch, base[:, 0] + VERGENCE_DEG, pitch], axis=1)
    shapes = eye_blendshapes(gaze, lid_left, lid_right, base[:, 1])
    return EyeMotion(shapes.astype(np.float32), gaze.astype(np.float32), blink.astype(np.float32))


# --- Blinks --------------------------------------------------------------------------------------

def _blink_hazard(speaking: np.ndarray, fps: float) -> np.ndarray:
    """Relative blink hazard per frame, shape = (n,), mean 1 over the track."""
    n = len(speaking)
    if n == 0:
        return np.ones(0)
    gain = np.where(speaking, BLINK_SPEECH_GAIN, BLINK_PAUSE_GAIN)
    idx = np.arange(n)
    offsets = np.zeros(n, dtype=bool)
    offsets[1:] = speaking[:-1] & ~speaking[1:]
    last_offset = np.maximum.accumulate(np.where(offsets, idx, -1))
    recent = (last_offset >= 0) & (idx - last_offset < BLINK_OFFSET_WINDOW_S * fps) & ~speaking
    gain[recent] = BLINK_OFFSET_GAIN
    return gain / gain.mean()


def _schedule_blinks(hazard: np.ndarray, fps: float, rate_per_min: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Blink peak times (seconds, sorted) over len(hazard) frames.

    A renewal process run in "hazard time" (the integral of the hazard): after each blink the eye
    waits a refractory period, then a gamma-distributed amount of hazard time. Where the hazard is
    high, hazard time passes quickly and blinks come sooner.
    """
    n = len(hazard)
    if rate_per_min <= 0 or n == 0:
        return np.empty(0)
    t_grid = np.arange(n + 1) / fps
    warp = np.concatenate([[0.0], np.cumsum(hazard) / fps])
    mean_interval = 60.0 / rate_per_min
    refractory = min(BLINK_REFRACTORY_S, 0.5 * mean_interval)
    # One cycle (refractory + wait + a double blink's gap if any) holds 1 + DOUBLE_BLINK_P blinks
    # on average; choose the mean wait so that the blink rate comes out at rate_per_min.
    cycle = (1 + DOUBLE_BLINK_P) * mean_interval - DOUBLE_BLINK_P * np.mean(DOUBLE_BLINK_GAP_S)
    wait = max(cycle - refractory, 0.05) * _hazard_after_refractory(hazard, fps, refractory, cycle)
    scale = wait / BLINK_INTERVAL_SHAPE
    # Start mid-cycle (a random phase), not as if a blink had just happened at t = 0.
    w_next = rng.uniform() * (refractory + rng.gamma(BLINK_INTERVAL_SHAPE, scale))
    peaks: list[float] = []
    while w_next < warp[-1]:
        t = float(np.interp(w_next, warp, t_grid))
        peaks.append(t)
        if rng.uniform() < DOUBLE_BLINK_P:
            t += rng.uniform(*DOUBLE_BLINK_GAP_S)
            if t < t_grid[-1]:
                peaks.append(t)
        w_next = np.interp(t + refractory, t_grid, warp) + rng.gamma(BLINK_INTERVAL_SHAPE, scale)
    return np.array(peaks)


def _hazard_after_refractory(hazard: np.ndarray, fps: float, refractory: float, cycle: float) -> float:
    """Mean hazard over the time the blink clock runs (outside refractory periods).

    Blinks fall where the hazard is high, so the refractory periods after them swallow more than
    their share of high-hazard time and the clock then runs slower than average. Scaling the wait
    by this mean keeps the blink rate at the requested one.
    """
    width = max(1, int(round(refractory * fps)))
    # Mean hazard over the refractory period after each frame, each frame weighted by the chance
    # that a blink lands there (proportional to its hazard).
    window_sum = np.convolve(np.concatenate([hazard, np.ones(width)]), np.ones(width), "valid")
    in_refractory = float(np.sum(hazard * window_sum[: len(hazard)] / width) / np.sum(hazard))
    share = min(refractory / cycle, 0.9)
    return max((1.0 - share * in_refractory) / (1.0 - share), 0.1)


def _sync_blinks_to_gaze_shifts(peaks: np.ndarray, shift_times: np.ndarray) -> np.ndarray:
    """Move the nearest blink onto each large gaze shift, as eyes blink with big saccades.

    Only moves blinks (never adds any) and keeps them ordered and spaced, so the rate is unchanged.
    """
    peaks = peaks.copy()
    for shift in shift_times:
        if len(peaks) == 0:
            break
        target = shift + GAZE_BLINK_DELAY_S
        k = int(np.argmin(np.abs(peaks - target)))
        if abs(peaks[k] - target) > GAZE_BLINK_SNAP_S:
            continue
        before = peaks[k - 1] if k > 0 else -np.inf
        after = peaks[k + 1] if k + 1 < len(peaks) else np.inf
        if target - before >= GAZE_BLINK_SPACING_S and after - target >= GAZE_BLINK_SPACING_S:
            peaks[k] = target
    return peaks


def lid_closure(dt: np.ndarray, close: float, hold: float, opening: float) -> np.ndarray:
    """Closure 0..1 at dt seconds from the blink peak (closed from dt = 0 to dt = hold).

    Closing is a smoothstep. Opening is (1-u)^3 (1+3u): zero slope at both ends and peak speed a
    third of the way in, leaving the long slow tail of a real lid reopening.
    """
    u_close = np.clip((dt + close) / close, 0.0, 1.0)
    closing = u_close * u_close * (3.0 - 2.0 * u_close)
    u_open = np.clip((dt - hold) / opening, 0.0, 1.0)
    reopening = (1.0 - u_open) ** 3 * (1.0 + 3.0 * u_open)
    return np.where(dt < 0, closing, reopening)


def _blink_curves(t: np.ndarray, peaks: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blink, left, right) closure curves, each shape = (n,), 0..1, from blink peak times."""
    blink = np.zeros(len(t))
    left = np.zeros(len(t))
    right = np.zeros(len(t))
    for peak in peaks:
        close, hold, opening = (rng.uniform(*r) for r in (BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S))
        weaker = 1.0 - abs(rng.normal(0.0, BLINK_ASYMMETRY))
        amp_left, amp_right = (weaker, 1.0) if rng.uniform() < 0.5 else (1.0, weaker)
        lo, hi = np.searchsorted(t, [peak - close, peak + hold + opening])
        c = lid_closure(t[lo:hi] - peak, close, hold, opening)
        # Overlapping blinks (double blinks) take the more closed lid, not the sum.
        blink[lo:hi] = np.maximum(blink[lo:hi], c)
        left[lo:hi] = np.maximum(left[lo:hi], amp_left * c)
        right[lo:hi] = np.maximum(right[lo:hi], amp_right * c)
    return blink, left, right


# --- Gaze aversion -------------------------------------------------------------------------------

def _turn_onsets(speaking: np.ndarray, fps: float) -> np.ndarray:
    """Frame indices where speech starts after at least TURN_GAP_S of silence (or the start)."""
    n = len(speaking)
    idx = np.arange(n)
    starts = np.flatnonzero(speaking & ~np.concatenate([[False], speaking[:-1]]))
    last_speech = np.maximum.accumulate(np.where(speaking, idx, -n - 1))
    gaps = np.array([s - 1 - last_speech[s - 1] if s > 0 else n + 1 for s in starts])
    return starts[gaps >= TURN_GAP_S * fps] if len(starts) else starts


def aversion_target(style: GazeStyle, rng: np.random.Generator) -> tuple[float, float]:
    """(yaw, pitch) degrees of one look-away: sideways, down-sideways, down or (wander) up-sideways."""
    amplitude = rng.uniform(*style.amplitude_deg)
    kind = rng.uniform()
    if kind < style.up_prob:
        elevation = rng.uniform(20.0, 50.0)
    elif kind < style.up_prob + 0.5 * (1 - style.up_prob):
        elevation = rng.uniform(-10.0, 10.0)    # sideways
    elif kind < style.up_prob + 0.85 * (1 - style.up_prob):
        elevation = rng.uniform(-50.0, -20.0)   # down and to the side
    else:
        elevation = rng.uniform(-85.0, -65.0)   # down
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    yaw = side * amplitude * np.cos(np.radians(elevation))
    pitch = np.clip(amplitude * np.sin(np.radians(elevation)), -style.max_down_deg, style.max_up_deg)
    return float(yaw), float(pitch)


def _schedule_aversions(speaking: np.ndarray, fps: float, style: GazeStyle,
                        rng: np.random.Generator) -> list[_Aversion]:
    """Non-overlapping look-aways: thinking aversions at turn starts plus a background process."""
    n = len(speaking)
    candidates = []
    for onset in _turn_onsets(speaking, fps):
        if rng.uniform() < style.turn_prob:
            candidates.append(max(0.0, onset / fps - rng.uniform(*TURN_LEAD_S)))
    per_frame = np.where(speaking, style.speech_rate, style.silence_rate) / 60.0 / fps
    candidates.extend(np.flatnonzero(rng.uniform(size=n) < per_frame) / fps)
    aversions: list[_Aversion] = []
    free_at = -np.inf
    for start in sorted(candidates):
        if start < free_at:
            continue
        hold = float(np.clip(rng.lognormal(np.log(style.hold_median_s), 0.4), *style.hold_s))
        yaw, pitch = aversion_target(style, rng)
        aversions.append(_Aversion(float(start), float(start) + hold, yaw, pitch))
        free_at = start + hold + style.min_gap_s
    return aversions


# --- Saccades ------------------------------------------------------------------------------------

def _fixation_times(duration: float, rng: np.random.Generator) -> np.ndarray:
    """Times (seconds) of fixational saccades over [0, duration)."""
    times = []
    t = rng.uniform() * FIXATION_INTERVAL_MEDIAN_S
    while t < duration:
        times.append(t)
        interval = rng.lognormal(np.log(FIXATION_INTERVAL_MEDIAN_S), FIXATION_INTERVAL_SIGMA)
        t += float(np.clip(interval, *FIXATION_INTERVAL_S))
    return np.array(times)


def fixation_jump(offset: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Next (yaw, pitch) offset from the gaze target after one fixational saccade."""
    radius = np.array(FIXATION_RADIUS_DEG)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    # A random direction, bent back toward the target the nearer the eye is to the region's edge,
    # so the eye roams around the target instead of drifting off it.
    direction = np.array([np.cos(angle), np.sin(angle)]) - FIXATION_CENTRING * offset / radius
    direction /= max(float(np.linalg.norm(direction)), 1e-9)
    new = offset + rng.uniform(*FIXATION_JUMP_DEG) * direction * np.array([1.0, FIXATION_VERTICAL_SCALE])
    outside = float(np.linalg.norm(new / radius))
    return new / outside if outside > 1.0 else new


def _gaze_events(duration: float, aversions: list[_Aversion],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Saccade start times (m,) and landing points (m, 2) [yaw, pitch] in degrees, time-ordered."""
    events = []   # (time, kind, anchor): kind 0 = gaze shift, 1 = corrective, 2 = fixational
    for a in aversions:
        for when, anchor in ((a.start, (a.yaw, a.pitch)), (a.end, (0.0, 0.0))):
            if when < duration:
                events.append((when, 0, anchor))
                events.append((when + rng.uniform(*CORRECTIVE_DELAY_S), 1, None))
    shifts = np.array([e[0] for e in events if e[1] == 0])
    for t in _fixation_times(duration, rng):
        if len(shifts) == 0 or np.min(np.abs(shifts - t)) > FIXATION_CLEAR_S:
            events.append((t, 2, None))
    events.sort(key=lambda e: (e[0], e[1]))
    anchor = np.zeros(2)
    offset = fixation_jump(np.zeros(2), rng)
    position = anchor + offset
    times, targets = [], []
    for when, kind, new_anchor in events:
        if kind == 0:
            anchor = np.array(new_anchor)
            goal = anchor + offset
            # Large saccades land short of the goal; the corrective event finishes the move.
            if np.linalg.norm(goal - position) >= UNDERSHOOT_MIN_DEG:
                goal = goal - rng.uniform(*SACCADE_UNDERSHOOT) * (goal - position)
        elif kind == 1:
            goal = anchor + offset
        else:
            offset = fixation_jump(offset, rng)
            goal = anchor + offset
        times.append(when)
        targets.append(goal)
        position = goal
    return np.array(times), np.array(targets).reshape(-1, 2)


def _gaze_path(t: np.ndarray, fps: float, aversions: list[_Aversion],
               rng: np.random.Generator) -> np.ndarray:
    """Shared (yaw, pitch) in degrees per frame, shape = (n, 2): holds joined by quick saccades."""
    start = fixation_jump(np.zeros(2), rng)
    ev_t, ev_goal = _gaze_events(len(t) / fps, aversions, rng)
    if len(ev_t) == 0:
        return np.tile(start, (len(t), 1))
    points = np.vstack([start[None, :], ev_goal])           # points[j] = where event j-1 lands
    ev_dur = SACCADE_BASE_S + SACCADE_S_PER_DEG * np.linalg.norm(np.diff(points, axis=0), axis=1)
    # An event may not start before the previous saccade has landed.
    for k in range(1, len(ev_t)):
        ev_t[k] = max(ev_t[k], ev_t[k - 1] + ev_dur[k - 1])
    j = np.searchsorted(ev_t, t, side="right")              # events started by each frame
    prev = np.maximum(j - 1, 0)
    u = np.where(j > 0, np.clip((t - ev_t[prev]) / ev_dur[prev], 0.0, 1.0), 1.0)
    s = u * u * (3.0 - 2.0 * u)                             # bell-shaped velocity over the saccade
    frm = points[prev]
    return frm + (points[j] - frm) * s[:, None]


# --- Blendshapes ---------------------------------------------------------------------------------

def eye_blendshapes(gaze: np.ndarray, lid_left: np.ndarray, lid_right: np.ndarray,
                     base_pitch: np.ndarray) -> np.ndarray:
    """(n, 52) ARKit weights from per-eye gaze (n, 4) degrees and lid closures (n,) 0..1.

    base_pitch (n,) degrees is the shared pitch before the blink's dip, for the lid-follow.
    Linear maps, clipped to 0..1: LOOK_HORIZONTAL_FULL_DEG of yaw or LOOK_VERTICAL_FULL_DEG of
    pitch gives 1.0.
    """
    out = np.zeros((len(gaze), len(BLENDSHAPE_NAMES)))
    h, v = LOOK_HORIZONTAL_FULL_DEG, LOOK_VERTICAL_FULL_DEG
    # The upper lid follows a downward look (not the blink's own small dip).
    follow = LID_FOLLOW_GAIN * np.clip(-base_pitch / v, 0.0, 1.0)
    # Yaw toward the subject's left turns the left eye outward and the right eye inward.
    eyes = (("Left", gaze[:, 0], gaze[:, 1], lid_left, "eyeLookOutLeft", "eyeLookInLeft"),
            ("Right", gaze[:, 2], gaze[:, 3], lid_right, "eyeLookInRight", "eyeLookOutRight"))
    for side, yaw, pitch, lid, toward_left, toward_right in eyes:
        out[:, BS[toward_left]] = np.clip(yaw / h, 0.0, 1.0)
        out[:, BS[toward_right]] = np.clip(-yaw / h, 0.0, 1.0)
        out[:, BS[f"eyeLookUp{side}"]] = np.clip(pitch / v, 0.0, 1.0)
        out[:, BS[f"eyeLookDown{side}"]] = np.clip(-pitch / v, 0.0, 1.0)
        out[:, BS[f"eyeBlink{side}"]] = np.clip(lid + follow, 0.0, 1.0)
    return out
