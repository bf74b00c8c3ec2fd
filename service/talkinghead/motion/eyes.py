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

`Eyes` runs the three frame by frame (causal: a take and a stream run the same code; a take's
future enters as `EyeLookahead`). Angles follow `talkinghead.track`: yaw + = toward the subject's
LEFT, pitch + = up, degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES, BS
from talkinghead.motion.noise import clip, smoothstep
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
# hold blinks back mid-word. A take renormalises the gains over itself (EyeLookahead), so they move
# blinks in time without changing how many there are; a stream uses them as they are.
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


@dataclass(frozen=True)
class EyeLookahead:
    """What a whole take tells the eyes before its frames are made (a stream does not know it):
    where turns start, so a thinking look-away can start TURN_LEAD_S before the first word, and
    the blink hazard's mean over the take, so the hazard gains move blinks in time without
    changing how many there are. Frames [start, end) on the stream's clock."""

    start: int
    end: int
    turns: tuple[int, ...]        # frames where speech starts after TURN_GAP_S of silence
    hazard_scale: float           # the blink clock's rate is multiplied by this

    @classmethod
    def of(cls, speaking: np.ndarray, fps: float, blink_rate: float, start: int = 0) -> "EyeLookahead":
        """speaking: shape = (n,) bool, the take's voice activity at frames start..start+n-1."""
        speaking = np.asarray(speaking, bool)
        turns = tuple(int(start + k) for k in _turn_onsets(speaking, fps))
        scale = 1.0
        if len(speaking) and blink_rate > 0:
            gain = _hazard_gains(speaking, fps)
            refractory, cycle = _blink_cycle(blink_rate)
            mean = float(gain.mean())
            scale = 1.0 / (mean * _hazard_after_refractory(gain / mean, fps, refractory, cycle))
        return cls(start, start + len(speaking), turns, scale)


def _blink_cycle(blink_rate: float) -> tuple[float, float]:
    """(refractory period, mean cycle) in s for blink_rate per minute: a cycle (refractory + wait +
    a double blink's gap if any) holds 1 + DOUBLE_BLINK_P blinks on average."""
    mean_interval = 60.0 / blink_rate
    refractory = min(BLINK_REFRACTORY_S, 0.5 * mean_interval)
    return refractory, (1 + DOUBLE_BLINK_P) * mean_interval - DOUBLE_BLINK_P * float(np.mean(DOUBLE_BLINK_GAP_S))


def _hazard_gain(speaking: bool, since_offset: int, fps: float) -> float:
    """The blink hazard's gain at a frame: speaking, just after speech stopped (since_offset frames
    ago), or in a pause."""
    if speaking:
        return BLINK_SPEECH_GAIN
    return BLINK_OFFSET_GAIN if since_offset < BLINK_OFFSET_WINDOW_S * fps else BLINK_PAUSE_GAIN


def _hazard_gains(speaking: np.ndarray, fps: float) -> np.ndarray:
    """_hazard_gain for every frame of a take, shape = (n,)."""
    gains, last_offset = np.empty(len(speaking)), -(10 ** 9)
    for i, s in enumerate(speaking.tolist()):
        if i and speaking[i - 1] and not s:
            last_offset = i
        gains[i] = _hazard_gain(s, i - last_offset, fps)
    return gains


def _hazard_after_refractory(hazard: np.ndarray, fps: float, refractory: float, cycle: float) -> float:
    """Mean hazard over the time the blink clock runs (outside refractory periods).

    Blinks fall where the hazard is high, so the refractory periods after them swallow more than
    their share of high-hazard time and the clock then runs slower than average. Scaling the clock
    by this mean keeps the blink rate at the requested one.
    """
    width = max(1, int(round(refractory * fps)))
    # Mean hazard over the refractory period after each frame, each frame weighted by the chance
    # that a blink lands there (proportional to its hazard).
    window_sum = np.convolve(np.concatenate([hazard, np.ones(width)]), np.ones(width), "valid")
    in_refractory = float(np.sum(hazard * window_sum[: len(hazard)] / width) / np.sum(hazard))
    share = min(refractory / cycle, 0.9)
    return max((1.0 - share * in_refractory) / (1.0 - share), 0.1)


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


def lid_closure(dt: np.ndarray, close: float, hold: float, opening: float) -> np.ndarray:
    """Closure 0..1 at dt seconds from the blink peak (closed from dt = 0 to dt = hold).

    Closing is a smoothstep. Opening is (1-u)^3 (1+3u): zero slope at both ends and peak speed a
    third of the way in, leaving the long slow tail of a real lid reopening.
    """
    closing = smoothstep((dt + close) / close)
    u_open = clip((dt - hold) / opening, 0.0, 1.0)
    reopening = (1.0 - u_open) ** 3 * (1.0 + 3.0 * u_open)
    return np.where(dt < 0, closing, reopening)


@dataclass(frozen=True)
class _Blink:
    peak: float
    close: float
    hold: float
    opening: float
    left: float
    right: float


class Eyes:
    """The eyes, frame by frame: a blink clock in hazard time, fixational saccades, look-aways
    (background and at turn starts), blinks pulled onto large gaze shifts. Causal: a frame depends
    only on the frames before it and on any lookahead given (`look_ahead`)."""

    def __init__(self, options: MotionOptions, fps: float, seed: np.random.SeedSequence) -> None:
        events, coin, turns = seed.spawn(3)
        self._fps = fps
        self._rng = np.random.default_rng(events)
        self._coin = np.random.default_rng(coin)      # one draw per frame: background look-aways
        self._turns = np.random.default_rng(turns)    # thinking look-aways at turn starts
        self._style = WANDER_STYLE if options.gaze == "wander" else CAMERA_STYLE
        rng = self._rng
        self._blinking = options.blink_rate > 0
        if self._blinking:   # the mean wait chosen so that the rate comes out at blink_rate
            self._refractory, cycle = _blink_cycle(options.blink_rate)
            self._wait_scale = max(cycle - self._refractory, 0.05) / BLINK_INTERVAL_SHAPE
            # start mid-cycle (a random phase), not as if a blink had just happened
            self._wait = rng.uniform() * (self._refractory + rng.gamma(BLINK_INTERVAL_SHAPE, self._wait_scale))
        self._ready_at = -np.inf          # end of the refractory period after the last blink
        self._last_peak = -np.inf
        self._blinks: list[_Blink] = []
        self._speaking = False
        self._last_speech = -(10 ** 9)    # frame index
        self._last_offset = -(10 ** 9)
        self._anchor = np.zeros(2)        # where the eyes look: the camera or a look-away target
        self._offset = fixation_jump(np.zeros(2), rng)   # fixational offset around the anchor
        self._goal = self._anchor + self._offset          # where the last saccade lands
        self._saccades = [(-np.inf, 1.0, self._goal, self._goal)]   # (start s, duration s, from, to)
        self._next_fixation = rng.uniform() * FIXATION_INTERVAL_MEDIAN_S
        self._aversion_end: float | None = None
        self._corrective: float | None = None
        self._free_at = -np.inf
        self._last_shift = -np.inf
        self._lookahead: EyeLookahead | None = None
        self._thinking: list[float] = []  # planned look-away starts (s), from the lookahead's turns

    def look_ahead(self, lookahead: EyeLookahead) -> None:
        """What a take knows of its future (frames lookahead.start..end, not yet made)."""
        self._lookahead = lookahead
        for onset in lookahead.turns:
            if self._turns.uniform() < self._style.turn_prob:
                self._thinking.append(max(lookahead.start / self._fps,
                                          onset / self._fps - self._turns.uniform(*TURN_LEAD_S)))
        self._thinking.sort()

    def frames(self, i0: int, speaking: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blendshapes (n, 52), gaze (n, 4), blink closure (n,)) for frames i0..i0+n-1 (i / fps s),
        each call continuing the last. speaking: shape = (n,) bool."""
        n = len(speaking)
        if n == 0:
            return np.zeros((0, len(BLENDSHAPE_NAMES))), np.zeros((0, 4)), np.zeros(0)
        coins = self._coin.uniform(size=n)
        for k in range(n):
            self._step(i0 + k, bool(speaking[k]), float(coins[k]))
        t = (i0 + np.arange(n)) / self._fps
        blink, left, right = self._render_blinks(t)
        base = self._render_gaze(t)
        pitch = base[:, 1] - BLINK_PITCH_DROP_DEG * blink
        gaze = np.empty((n, 4))
        gaze[:, 0], gaze[:, 2] = base[:, 0] - VERGENCE_DEG, base[:, 0] + VERGENCE_DEG
        gaze[:, 1] = gaze[:, 3] = pitch
        return eye_blendshapes(gaze, left, right, base[:, 1]), gaze, blink

    def _step(self, i: int, speaking: bool, coin: float) -> None:
        t, fps = i / self._fps, self._fps
        ahead = self._lookahead is not None and self._lookahead.start <= i < self._lookahead.end
        turn = speaking and not self._speaking and i - 1 - self._last_speech >= TURN_GAP_S * fps
        if self._speaking and not speaking:
            self._last_offset = i
        self._speaking = speaking
        if speaking:
            self._last_speech = i
        # events since the previous frame, in time order
        due = []
        if self._aversion_end is not None and self._aversion_end <= t:
            due.append((self._aversion_end, 0))
        if self._corrective is not None and self._corrective <= t:
            due.append((self._corrective, 1))
        while self._next_fixation <= t:
            due.append((self._next_fixation, 2))
            interval = self._rng.lognormal(np.log(FIXATION_INTERVAL_MEDIAN_S), FIXATION_INTERVAL_SIGMA)
            self._next_fixation += float(np.clip(interval, *FIXATION_INTERVAL_S))
        for when, kind in sorted(due):
            if kind == 0:
                self._aversion_end = None
                self._shift(when, np.zeros(2))
            elif kind == 1:
                self._corrective = None
                self._saccade(when, self._anchor + self._offset)
            elif when - self._last_shift > FIXATION_CLEAR_S and (
                    self._aversion_end is None or self._aversion_end - when > FIXATION_CLEAR_S):
                self._offset = fixation_jump(self._offset, self._rng)
                self._saccade(when, self._anchor + self._offset)
        # a look-away: thinking at a turn start (planned ahead when the take is known), or the background
        style = self._style
        wants = coin < (style.speech_rate if speaking else style.silence_rate) / 60.0 / fps
        if ahead:
            while self._thinking and self._thinking[0] <= t + 1e-9:
                self._thinking.pop(0)
                wants = True
        elif turn and self._turns.uniform() < style.turn_prob:
            wants = True
        hazard = _hazard_gain(speaking, i - self._last_offset, fps)
        if ahead:
            hazard *= self._lookahead.hazard_scale
        if wants and t >= self._free_at:
            hold = float(np.clip(self._rng.lognormal(np.log(style.hold_median_s), 0.4), *style.hold_s))
            target = np.array(aversion_target(style, self._rng))
            self._shift(t, target)
            self._aversion_end, self._free_at = t + hold, t + hold + style.min_gap_s
            if np.hypot(*target) >= GAZE_BLINK_MIN_DEG:
                self._blink_with_shift(t, hazard)
        if self._blinking:
            if t >= self._ready_at:
                self._wait -= hazard / fps
            if self._wait <= 0:
                self._blink(t, t)

    def _shift(self, when: float, anchor: np.ndarray) -> None:
        """A large gaze shift to a new anchor: lands short, a corrective saccade follows."""
        self._anchor = anchor
        goal = anchor + self._offset
        if np.linalg.norm(goal - self._goal) >= UNDERSHOOT_MIN_DEG:
            goal = goal - self._rng.uniform(*SACCADE_UNDERSHOOT) * (goal - self._goal)
        self._saccade(when, goal)
        self._corrective = when + self._rng.uniform(*CORRECTIVE_DELAY_S)
        self._last_shift = when

    def _saccade(self, when: float, goal: np.ndarray) -> None:
        start, duration, _, landing = self._saccades[-1]
        when = max(when, start + duration)   # not before the previous saccade has landed
        self._saccades.append((when, SACCADE_BASE_S + SACCADE_S_PER_DEG * float(np.linalg.norm(goal - landing)),
                               landing, goal))
        self._goal = goal

    def _blink_with_shift(self, t: float, hazard: float) -> None:
        """Eyes blink with big saccades: a blink due within GAZE_BLINK_SNAP_S comes now instead."""
        if not self._blinking or t - self._last_peak < GAZE_BLINK_SPACING_S:
            return
        eta = max(0.0, self._ready_at - t) + self._wait / hazard
        if eta <= GAZE_BLINK_SNAP_S:
            self._blink(t, t + GAZE_BLINK_DELAY_S)

    def _blink(self, t: float, earliest_peak: float) -> None:
        """A blink (maybe a double one) closing after frame t; the peak lands on a frame, so
        sampled frames close fully."""
        rng, fps = self._rng, self._fps
        peak = t
        for k in range(2 if rng.uniform() < DOUBLE_BLINK_P else 1):
            close, hold, opening = (rng.uniform(*r) for r in (BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S))
            weaker = 1.0 - abs(rng.normal(0.0, BLINK_ASYMMETRY))
            left, right = (weaker, 1.0) if rng.uniform() < 0.5 else (1.0, weaker)
            if k == 0:   # the lid starts closing after frame t, which may already be sent
                peak = max(math.ceil((t + close) * fps - 1e-9), round(earliest_peak * fps)) / fps
            else:
                peak = round((peak + rng.uniform(*DOUBLE_BLINK_GAP_S)) * fps) / fps
            self._blinks.append(_Blink(peak, close, hold, opening, left, right))
        self._last_peak = peak
        self._ready_at = peak + self._refractory
        self._wait = rng.gamma(BLINK_INTERVAL_SHAPE, self._wait_scale)

    def _render_blinks(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        blink, left, right = np.zeros(len(t)), np.zeros(len(t)), np.zeros(len(t))
        for b in self._blinks:
            lo, hi = np.searchsorted(t, [b.peak - b.close, b.peak + b.hold + b.opening])
            c = lid_closure(t[lo:hi] - b.peak, b.close, b.hold, b.opening)
            # Overlapping blinks (double blinks) take the more closed lid, not the sum.
            blink[lo:hi] = np.maximum(blink[lo:hi], c)
            left[lo:hi] = np.maximum(left[lo:hi], b.left * c)
            right[lo:hi] = np.maximum(right[lo:hi], b.right * c)
        self._blinks = [b for b in self._blinks if b.peak + b.hold + b.opening > t[-1]]
        return blink, left, right

    def _render_gaze(self, t: np.ndarray) -> np.ndarray:
        """Shared (yaw, pitch) per frame, shape = (n, 2): holds joined by bell-shaped saccades
        (the "main sequence": longer for larger steps)."""
        rows = np.array([(s[0], s[1], *s[2], *s[3]) for s in self._saccades])   # one array: start, duration, from, to
        start, duration, frm, to = rows[:, 0], rows[:, 1], rows[:, 2:4], rows[:, 4:6]
        j = np.searchsorted(start, t, side="right") - 1
        out = frm[j] + (to[j] - frm[j]) * smoothstep((t - start[j]) / duration[j])[:, None]
        current = int(np.searchsorted(start, t[-1], side="right")) - 1
        self._saccades = self._saccades[current:]
        return out


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
    follow = LID_FOLLOW_GAIN * clip(-base_pitch / v, 0.0, 1.0)
    # Yaw toward the subject's left turns the left eye outward and the right eye inward; the
    # channels in _EYE_COLUMNS' order, clipped at once.
    values = np.empty((len(gaze), len(_EYE_COLUMNS)))
    for side, (yaw, pitch, lid) in enumerate(((gaze[:, 0], gaze[:, 1], lid_left),
                                              (gaze[:, 2], gaze[:, 3], lid_right))):
        c = 5 * side
        values[:, c], values[:, c + 1], values[:, c + 2] = yaw / h, -yaw / h, pitch / v
        values[:, c + 3], values[:, c + 4] = -pitch / v, lid + follow
    out[:, _EYE_COLUMNS] = clip(values, 0.0, 1.0)
    return out


# eye_blendshapes' channels: per eye (left, right) the one toward the subject's left, toward the
# right, up, down, blink
_EYE_COLUMNS = [BS[name] for name in ("eyeLookOutLeft", "eyeLookInLeft", "eyeLookUpLeft", "eyeLookDownLeft",
                                      "eyeBlinkLeft", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
                                      "eyeLookDownRight", "eyeBlinkRight")]
