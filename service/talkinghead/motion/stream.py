"""Streaming speech -> facial motion for live dialogue: `MotionStream`.

A TTS engine speaks in chunks; the server pushes each chunk here and sends back the frames that
became final, and asks for idle frames while no audio comes, so the face stays alive between lines.
Frames are `FaceParams` on ONE stream clock: frame i is at i / fps, across utterances and idle spells.

Lips come from the project's phone model (`audio.phone_model`, models/phones/): its posteriors arrive
10 ms frame by 10 ms frame as the audio does (the model's caches are the stream's state), and
`posteriors.visemes_from_posteriors` turns those of a sliding window (LABEL_CONTEXT_S + GATE_CONTEXT_S
of context, the new audio, as far ahead as the model has answered) into viseme segments, then
`lips.lip_motion` gives the frames that became final. Phone recognition (pocketsphinx) costs 0.15-0.3 s
of CPU per window and wants whole phrases, so it cannot answer a chunk within the service's 150 ms budget.

The acoustic features are computed once per 10 ms frame as the audio arrives (Praat's pitch on the new
audio plus PRAAT_CONTEXT_S; the VAD fed 30 ms at a time from the start of the utterance, as
offline). What the offline stage takes over the whole take (the speech level that loudness is relative
to, the level percentile of the VAD's energy gate, the median pitch for accents and brows) are running
statistics over the stream so far: the same NPC voice speaks every utterance of a stream.

Life (blinks, gaze, head drift, breathing, the emotion's slow wobble) is explicit state carried from
frame to frame: the noise filters continue where they stopped, blinks and gaze shifts are scheduled
frame by frame, nods and brow raises are pulses that start at the first frame not yet sent. Each random
process draws from its own generator seeded from `options.seed`: the same calls with the same audio
give the same frames, and the life does not depend on how the audio was cut into chunks.

Differences from the offline stage, all from not knowing the future (tests/test_motion_stream.py
measures the mouth against the offline acoustic track: jawOpen r 0.97-1.0, at least as many lip
closures):
- lips round ~0.07 s ahead of an oo/w at most, not lips.ROUNDING_LEAD_S + fall-off (the rounded vowel
  is not heard yet), so rounding comes on faster;
- a silence just after speech is taken for a stop closure until it has lasted VAD_BRIDGE_S, and a pause
  is known to be long (the mouth gated fully shut) once SILENCE_RELAX_S of it have been heard; until
  then the mouth closes by coarticulation toward silence, as in short pauses;
- nods and brow raises peak ~0.1 s after the stressed syllable instead of just before it (a syllable
  is recognised once its loudness peak has passed); pitch accents are judged against the pitch and
  prominence heard so far;
- a thinking look-away starts with the first word instead of just before it; the head's drift grows
  and settles over 0.8 s after speech starts and stops, not around it; the blink hazard's gains
  (eyes.BLINK_*_GAIN) are used as they are instead of being normalised over the take: idle blinks come
  at blink_rate on average, and a phrase of a few seconds with its pause averages about the same.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import parselmouth
from pocketsphinx import Vad
from scipy.ndimage import binary_closing, binary_opening, gaussian_filter1d
from scipy.signal import find_peaks, lfilter

from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.features import (ACCENT_SPACING_S, HOP, SILENCE_DB, VAD_BRIDGE_S, VAD_MIN_SPEECH_S,
                                        SpeechFeatures)
from talkinghead.audio.phone_model import PhoneModel
from talkinghead.audio.phones import HOP_SAMPLES, pcm16
from talkinghead.audio.phoneset import CLASSES
from talkinghead.errors import AudioError
from talkinghead.motion.expression import (BROW_ACCENT_CHANCE, BROW_DECAY_S, BROW_LEAD_S, BROW_LIFT, BROW_RISE_S,
                                           EMOTION_WOBBLE_TAU_S, brow_shapes, emotion_frames, emotion_pose,
                                           pitch_lift)
from talkinghead.motion.eyes import (BLINK_ASYMMETRY, BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_INTERVAL_SHAPE,
                                     BLINK_OFFSET_GAIN, BLINK_OFFSET_WINDOW_S, BLINK_OPEN_S, BLINK_PAUSE_GAIN,
                                     BLINK_PITCH_DROP_DEG, BLINK_REFRACTORY_S, BLINK_SPEECH_GAIN, CAMERA_STYLE,
                                     CORRECTIVE_DELAY_S, DOUBLE_BLINK_GAP_S, DOUBLE_BLINK_P, FIXATION_CLEAR_S,
                                     FIXATION_INTERVAL_MEDIAN_S, FIXATION_INTERVAL_S, FIXATION_INTERVAL_SIGMA,
                                     GAZE_BLINK_DELAY_S, GAZE_BLINK_MIN_DEG, GAZE_BLINK_SNAP_S,
                                     GAZE_BLINK_SPACING_S, SACCADE_BASE_S, SACCADE_S_PER_DEG, SACCADE_UNDERSHOOT,
                                     TURN_GAP_S, UNDERSHOOT_MIN_DEG, VERGENCE_DEG, WANDER_STYLE, aversion_target,
                                     eye_blendshapes, fixation_jump, lid_closure)
from talkinghead.motion.head import (BEAT_DEG, BREATH_DEPTH_TAU_S, BREATH_HZ, BREATH_RATE_TAU_S, DRIFT, NOD_DECAY_S,
                                     NOD_DEG, NOD_LEAD_S, NOD_RISE_S, PAUSE_DRIFT_SCALE, SWAY_MM, SWAY_TAU_S,
                                     SWEEP_CHANCE, SWEEP_DECAY_S, SWEEP_DEG, SWEEP_RISE_S, breath_depth, head_pose)
from talkinghead.motion.line import Line, ModelLips, lip_source
from talkinghead.motion.lips import ROUNDING_CHANNELS, SILENCE_RELAX_S, VisemeSegment, lip_motion
from talkinghead.motion.noise import add_pulse
from talkinghead.motion.options import MotionOptions
from talkinghead.track import EyeGaze, FaceParams, HeadPose, MotionTrack

# Why 0.1 s: a frame's mouth is pulled by the visemes around it, the next one's pull reaching ~2 x
# lips.FALLOFF_S (90 ms) ahead, and the labels of the sound after the frame must be settled: the phone
# model answers for a frame once the audio runs PhoneModel.lookahead_s (47.5 ms) past it. A frame final
# LOOKAHEAD_S behind the newest audio sees settled labels ~50 ms ahead: openings and closures start on time. Less lookahead and they would pop in
# late, after their sound; more only adds latency to the service's 150 ms budget.
LOOKAHEAD_S = 0.1

FEATURE_REACH_S = 0.03      # a feature frame is settled once the audio runs this far past its end
PRAAT_CONTEXT_S = 0.03      # audio before the first unsettled frame that Praat's windows need
LABEL_CONTEXT_S = 0.4       # feature context before the first lip frame: the VAD's bridging, the viseme runs
GATE_CONTEXT_S = SILENCE_RELAX_S + 0.05  # lip frames before the new ones: how long the pause has been
NUCLEUS_CONFIRM_S = 0.06    # a loudness peak this far inside the settled features has been passed
NUCLEUS_MAX_AGE_S = 0.4     # older unconfirmed peaks are not taken up any more (they would come late)
PROSODY_HISTORY = 200       # nuclei remembered for the running medians and accent percentile
ONSET_S = 0.1               # an utterance's first frames ease in from the shut idle mouth...
RELAX_S = 0.1               # ...and its last frames relax it closed at the end (flush)
INTERRUPT_CLOSE_S = 0.12    # barge-in: the mouth closes this fast from where it was
ROUNDING_RATE = 6.0         # pucker/funnel change per second at most (offline tracks: up to ~7/s)
MAX_AMPLITUDE = 16.0        # |sample| above this is integer PCM passed unscaled, not audio in -1..1


class MotionStream:
    """Incremental speech -> facial motion. Not thread-safe; one per stream.

    Latency: push() returns frames up to LOOKAHEAD_S behind the newest audio. Cost: a few ms of CPU
    per 100 ms chunk (benchmarks/stream_motion_speed.py).
    """

    def __init__(self, options: MotionOptions = MotionOptions()) -> None:
        self.options = options
        life, prosody = np.random.SeedSequence(options.seed).spawn(2)
        self._life = _Life(options, life)
        self._prosody = _Prosody(options, self._life, prosody)
        self._levels = _Levels()
        self._utterance: _Utterance | None = None
        self._emitted = 0
        self._last_lips = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
        self._last_viseme = "sil"
        self._next_line: Line | None = None
        self._notices: list[tuple[str, int]] = []

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def begin_line(self, line: Line | None = None, **fields) -> list[FaceParams]:
        """What is known about the next line before its audio: its text, language and a TTS
        engine's timings (a `motion.line.Line`, or its fields: begin_line(text="Hello", language="en")).
        The line's lips then come from the engine's visemes/phonemes, else from its text aligned
        live over the phone model, else from the model alone (motion.line). An open utterance is
        flushed first: its remaining frames are returned. Raises OptionsError for a language
        espeak-ng does not speak or marks it cannot read."""
        if line is None:
            fields.setdefault("language", self.options.language)
            line = Line(**fields)
        lip_source(line)          # check it now, while the caller can still hear about it
        frames = self.flush()
        self._next_line = line
        return frames

    def take_notices(self) -> list[tuple[str, int]]:
        """(what happened, stream frame index) since the last call: a line's text was dropped
        because it did not fit its audio (its lips then come from the audio alone)."""
        out, self._notices = self._notices, []
        return out

    def push(self, samples: np.ndarray) -> list[FaceParams]:
        """float32 mono samples at audio.decode.SAMPLE_RATE (16 kHz) appended to the utterance;
        returns the frames that became final (times up to newest audio - LOOKAHEAD_S).

        The first push after flush(), interrupt() or the start opens an utterance at the next frame.
        """
        samples = _checked_chunk(samples)
        if len(samples) == 0:
            return []
        if self._utterance is None:
            self._utterance = _Utterance(self._emitted, self._levels, lip_source(self._next_line))
            self._next_line = None
        utt = self._utterance
        utt.acoustics.extend(samples)
        lookahead = round(LOOKAHEAD_S * SAMPLE_RATE)
        final = math.floor((utt.acoustics.n_samples - lookahead) * self.options.fps / SAMPLE_RATE + 1e-9) + 1
        return self._speech_frames(max(final, 0), ending=False)

    def flush(self) -> list[FaceParams]:
        """End of the utterance: the remaining frames up to the end of the pushed audio, the mouth
        relaxing closed at the end. Each utterance has MotionTrack.frame_count(duration, fps) frames."""
        utt = self._utterance
        if utt is None:
            return []
        utt.acoustics.finish()
        frames = self._speech_frames(MotionTrack.frame_count(utt.acoustics.n_samples / SAMPLE_RATE, self.options.fps),
                                     ending=True)
        self._take_notice(utt, utt.emitted)
        self._utterance = None
        return frames

    def interrupt(self) -> list[FaceParams]:
        """Barge-in: drop audio not yet turned into frames; return a few frames (INTERRUPT_CLOSE_S)
        that close the mouth quickly from where it was, then the stream is idle. Without an open
        utterance there is nothing to interrupt: returns []."""
        self._next_line = None           # a line told but not started is called off too
        if self._utterance is None:
            return []
        self._utterance = None
        n = max(2, round(INTERRUPT_CLOSE_S * self.options.fps))
        weight = 1.0 - _smoothstep(np.arange(1, n + 1) / n)
        lips = self._last_lips[None, :] * weight[:, None]
        visemes = [self._last_viseme if w >= 0.5 else "sil" for w in weight]
        return self._emit(lips, visemes, np.zeros(n, bool), None)

    def idle(self, n_frames: int) -> list[FaceParams]:
        """Frames with no speech: blinks, breathing, gaze saccades, slow head drift, mouth shut.

        An open utterance is flushed first: its remaining frames come before the n_frames idle ones.
        """
        if int(n_frames) != n_frames or n_frames < 0:
            raise ValueError(f"n_frames must be a whole number >= 0, got {n_frames!r}")
        frames = self.flush()
        n = int(n_frames)
        if n:
            lips = np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32)
            frames += self._emit(lips, ["sil"] * n, np.zeros(n, bool), None)
        return frames

    def _speech_frames(self, end: int, ending: bool) -> list[FaceParams]:
        """The utterance's frames [emitted, end): lips from the window, life from the stream."""
        utt = self._utterance
        start = utt.emitted
        if end <= start:
            return []
        window = utt.window(start, end, self.options.fps)
        lips, visemes, speaking, f0 = window.lips(start, end, self.options)
        self._prosody.update(window, utt, next_frame_t=self._emitted / self.options.fps)
        j = np.arange(start, end)
        lips *= _smoothstep((j + 1) / (ONSET_S * self.options.fps + 1))[:, None]
        if ending:
            relax = max(1, min(len(j), round(RELAX_S * self.options.fps)))
            lips[-relax:] *= 1.0 - _smoothstep(np.arange(1, relax + 1) / relax)[:, None]
        self._limit_rounding(lips)
        utt.sent(end, self.options.fps)
        self._take_notice(utt, start)
        return self._emit(lips, visemes, speaking, (f0, self._levels.f0.quantile(0.5)))

    def _take_notice(self, utt: "_Utterance", frame: int) -> None:
        if utt.lips.notice and not utt.noticed:
            utt.noticed = True
            self._notices.append((utt.lips.notice, utt.start_frame + frame))

    def _limit_rounding(self, lips: np.ndarray) -> None:
        """Rounding (pucker, funnel) changes at most ROUNDING_RATE per second: offline it starts
        ROUNDING_LEAD_S ahead of the rounded vowel, live the vowel is heard ~50 ms ahead of the
        frame, and without a limit the lips would snap round in one frame."""
        step = ROUNDING_RATE / self.options.fps
        prev = self._last_lips[ROUNDING_CHANNELS].astype(np.float64)
        for k in range(len(lips)):
            prev = np.clip(lips[k, ROUNDING_CHANNELS], prev - step, prev + step)
            lips[k, ROUNDING_CHANNELS] = prev

    def _emit(self, lips: np.ndarray, visemes: list[str], speaking: np.ndarray,
              pitch: tuple[np.ndarray, float | None] | None) -> list[FaceParams]:
        n = len(visemes)
        i0 = self._emitted
        face, head, gaze = self._life.frames(i0, speaking, pitch)
        blend = np.clip(lips + face, 0, 1).astype(np.float32)
        self._emitted += n
        self._last_lips = lips[-1].astype(np.float32)
        self._last_viseme = visemes[-1]
        fps = self.options.fps
        heads, gazes = head.tolist(), gaze.tolist()
        return [FaceParams(t=(i0 + k) / fps, blendshapes=blend[k], head=HeadPose(*heads[k]),
                           gaze_left=EyeGaze(gazes[k][0], gazes[k][1]), gaze_right=EyeGaze(gazes[k][2], gazes[k][3]),
                           viseme=visemes[k]) for k in range(n)]


def _checked_chunk(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype.kind != "f":
        hint = " (divide 16-bit PCM by 32768)" if x.dtype.kind in "iu" else ""
        raise AudioError(f"audio chunk has dtype {x.dtype}: pass float32 samples between -1 and 1{hint}")
    if x.ndim != 1:
        raise AudioError(f"audio chunk has shape {x.shape}: pass mono samples at {SAMPLE_RATE} Hz as a 1-D "
                         "array (average the channels first)")
    x = x.astype(np.float32, copy=False)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if not np.isfinite(peak):
        raise AudioError("the audio chunk contains NaN or infinite samples: pass finite values between -1 and 1")
    if peak > MAX_AMPLITUDE:
        raise AudioError(f"the audio chunk peaks at {peak:.0f}: pass samples scaled to -1..1 "
                         "(divide 16-bit PCM by 32768)")
    return x


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


# --- Acoustics ------------------------------------------------------------------------------------

class _Quantiles:
    """Running quantiles of a value over the stream, in fixed bins: bounded memory, O(bins) a query."""

    def __init__(self, lo: float, hi: float, step: float) -> None:
        self._lo, self._step = lo, step
        self._counts = np.zeros(round((hi - lo) / step) + 1, np.int64)

    def add(self, values: np.ndarray) -> None:
        if len(values):
            idx = np.clip(((np.asarray(values) - self._lo) / self._step).astype(int), 0, len(self._counts) - 1)
            self._counts += np.bincount(idx, minlength=len(self._counts))

    def quantile(self, q: float) -> float | None:
        total = int(self._counts.sum())
        if total == 0:
            return None
        k = int(np.searchsorted(np.cumsum(self._counts), q * total))
        return self._lo + (min(k, len(self._counts) - 1) + 0.5) * self._step


class _Levels:
    """The stream's running statistics that the offline stage takes over the whole take."""

    def __init__(self) -> None:
        self.level = _Quantiles(-130.0, 10.0, 0.25)         # every frame's rms, dBFS (VAD energy gate)
        self.speech_level = _Quantiles(-130.0, 10.0, 0.25)  # speech frames' rms (relative loudness)
        self.f0 = _Quantiles(40.0, 600.0, 0.5)              # voiced frames' pitch, Hz (accents, brows)


class _Acoustics:
    """One utterance's features, one row per HOP frame (frame k covers [k*HOP, (k+1)*HOP)), computed
    once as the audio arrives. A frame is settled once the audio runs FEATURE_REACH_S past its end:
    Praat's pitch and formant windows then lie inside the audio. Rows no window needs any more are
    forgotten (forget_before), so a long utterance costs no more memory than a short one."""

    COLUMNS = ("rms_db", "f0", "vad")

    def __init__(self, levels: _Levels, lips: ModelLips) -> None:
        self._levels = levels
        self.n_samples = 0
        self._audio = np.zeros(0, np.float32)
        self._audio0 = 0                 # utterance sample index of _audio[0]
        self._vad = Vad(mode=2, sample_rate=SAMPLE_RATE, frame_length=0.03)
        self._vad_step = self._vad.frame_bytes // 2
        self._vad_raw: list[bool] = []   # one per 30 ms VAD frame, from the start of the utterance
        self.cols = {name: np.zeros(0, bool if name == "vad" else float) for name in self.COLUMNS}
        self.k0 = 0                      # utterance frame index of the first kept row
        self.settled = 0                 # frames [0, settled) are computed
        self.finished = False
        self._phones = PhoneModel.shared().stream()
        self.lips = lips                 # the utterance's lip source (motion.line): hears every posterior row
        self.post = np.zeros((0, len(CLASSES)), np.float32)   # phone posteriors of frames [k0, ...)
        self._unheard: list[np.ndarray] = []   # audio not yet through the phone model

    def _hear(self) -> None:
        """Run the phone model on the audio taken since it last ran: once per settle, not per chunk
        (each call has a fixed cost of ~0.5 ms, whatever its length)."""
        if self._unheard:
            rows = self._phones.push(np.concatenate(self._unheard))
            self.post = np.concatenate([self.post, rows])
            self.lips.hear(rows)
            self._unheard.clear()

    def extend(self, samples: np.ndarray) -> None:
        """Take more audio; its features are computed when asked for (settle), so that chunks
        shorter than a video frame cost only their VAD."""
        self._audio = np.concatenate([self._audio, samples])
        self.n_samples += len(samples)
        self._unheard.append(samples)
        while len(self._vad_raw) * self._vad_step + self._vad_step <= self.n_samples:
            a = len(self._vad_raw) * self._vad_step - self._audio0
            self._vad_raw.append(self._vad.is_speech(pcm16(self._audio[a: a + self._vad_step]).tobytes()))

    def settle(self) -> None:
        """Compute every frame the audio so far settles."""
        if not self.finished:
            self._hear()
            self._settle(max(0, (self.n_samples - int(FEATURE_REACH_S * SAMPLE_RATE)) // HOP_SAMPLES))

    def finish(self) -> None:
        """No more audio: settle every frame (as offline, a partial last frame is dropped)."""
        self._settle(max(1, self.n_samples // HOP_SAMPLES))
        self._hear()
        rows = self._phones.finish()
        self.post = np.concatenate([self.post, rows])
        self.lips.hear(rows, final=True)
        self.finished = True

    def _settle(self, end: int) -> None:
        start = self.settled
        if end <= start:
            return
        s0 = max(0, start * HOP_SAMPLES - int(PRAAT_CONTEXT_S * SAMPLE_RATE))
        audio = self._audio[s0 - self._audio0:]
        frames = np.zeros((end - start, HOP_SAMPLES), np.float32)
        flat = audio[start * HOP_SAMPLES - s0: end * HOP_SAMPLES - s0]
        frames.reshape(-1)[: len(flat)] = flat
        rms_db = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-6)
        centres = (np.arange(start, end) + 0.5) * HOP - s0 / SAMPLE_RATE   # seconds into `audio`
        f0 = _pitch(audio, centres)
        per = self._vad_step // HOP_SAMPLES   # feature frames per VAD frame
        vad = np.array([k // per < len(self._vad_raw) and self._vad_raw[k // per] for k in range(start, end)], bool)
        new = {"rms_db": rms_db, "f0": f0, "vad": vad}
        for name in self.COLUMNS:
            self.cols[name] = np.concatenate([self.cols[name], new[name]])
        self.settled = end
        self._levels.level.add(rms_db)
        self._levels.f0.add(f0[f0 > 0])
        # audio before the next frame's Praat context is not needed again
        drop = max(0, end * HOP_SAMPLES - int(PRAAT_CONTEXT_S * SAMPLE_RATE) - self._audio0)
        drop = min(drop, len(self._vad_raw) * self._vad_step - self._audio0)
        if drop > 0:
            self._audio = self._audio[drop:]
            self._audio0 += drop

    def forget_before(self, k: int) -> None:
        """Drop the rows of frames before k."""
        drop = min(max(0, k - self.k0), self.settled - self.k0, len(self.post))
        if drop:
            self.cols = {name: col[drop:] for name, col in self.cols.items()}
            self.post = self.post[drop:]
            self.k0 += drop


def _pitch(audio: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Pitch (Hz, 0 unvoiced) at `centres` (s into `audio`), with the offline stage's settings
    (features.analyze)."""
    f0 = np.zeros(len(centres))
    sound = parselmouth.Sound(audio.astype(np.float64), SAMPLE_RATE)
    try:
        pitch = sound.to_pitch_ac(time_step=HOP, pitch_floor=60, pitch_ceiling=500)
    except parselmouth.PraatError:   # shorter than one pitch window: too short to be voiced
        return f0
    values = pitch.selected_array["frequency"]
    if not len(values):
        return f0
    return values[np.clip(np.round((centres - pitch.xs()[0]) / HOP).astype(int), 0, len(values) - 1)]


def _bridged(raw: np.ndarray, open_start: bool, open_end: bool) -> np.ndarray:
    """features._voice_activity's clean-up (bridge short gaps, drop clicks) on a window of frames.

    An open start continues its first value. An open end (audio still to come) is taken as speech
    going on: a silence just after speech, shorter than VAD_BRIDGE_S so far, is a stop closure until
    it grows longer (offline, knowing the gap's length, bridges it the same way); without this every
    p/b/t/k would first be seen as the start of a pause. A true edge of the utterance is treated as
    offline."""
    bridge, click = int(VAD_BRIDGE_S / HOP), int(VAD_MIN_SPEECH_S / HOP)
    before, after = (bridge if open_start else 0), (bridge if open_end else 0)
    x = np.concatenate([np.full(before, raw[0]), raw, np.ones(after, bool)])
    x = binary_opening(binary_closing(x, np.ones(bridge)), np.ones(click))
    return x[before: len(x) - after]


@dataclass
class _Window:
    """Features of a stretch of an utterance (feat's times are seconds from t0) and the range of
    frames whose lips are computed from it."""

    feat: SpeechFeatures
    t0: float                 # utterance time of the window's start, s
    fps: float
    lip_from: int             # first utterance frame given to lip_motion (context for the gate)
    lip_to: int               # one past the last
    post: np.ndarray          # phone posteriors of the window's first frames (as many as are final)
    source: ModelLips         # the utterance's lip source (motion.line)

    def lips(self, start: int, end: int, options: MotionOptions):
        """Mouth blendshapes (end - start, 52), visemes, speech (bool) and f0 (Hz) for frames [start, end)."""
        times = np.arange(self.lip_from, self.lip_to) / self.fps - self.t0
        # Not open_end: the still-growing last run is merged as if complete. Kept open, a short run
        # at the window's edge (a TH) shows for a frame and is merged away by the next window: a jump.
        k0 = round(self.t0 / HOP)
        segments = [VisemeSegment(s.viseme, s.start - self.t0, s.end - self.t0, s.weight)
                    for s in self.source.segments(self.post, k0) if s.end - self.t0 > times[0] and s.start - self.t0 < times[-1]]
        speech = self.feat.at("speech", times).astype(bool)
        gain = (0.7 + 0.6 * self.feat.at("loudness", times)) * (0.85 + 0.15 * options.expressiveness)
        mouth, labels = lip_motion(segments, times, gain, speech)
        a, b = start - self.lip_from, end - self.lip_from
        return mouth[a:b].astype(np.float64), labels[a:b], speech[a:b], self.feat.at("f0", times[a:b])


class _Utterance:
    def __init__(self, start_frame: int, levels: _Levels, lips: ModelLips) -> None:
        self.start_frame = start_frame   # stream frame index of the utterance's frame 0
        self.lips = lips
        self.noticed = False
        self.acoustics = _Acoustics(levels, lips)
        self.levels = levels
        self.emitted = 0                 # utterance frames sent
        self.counted = 0                 # feature frames added to the speech-level statistics
        self.last_nucleus = -np.inf      # utterance time (s) of the last nucleus taken up
        self.last_accent = -np.inf

    def window(self, start: int, end: int, fps: float) -> _Window:
        """The features around utterance frames [start, end) and as far ahead as they are settled."""
        ac = self.acoustics
        ac.settle()
        lip_from = self.lip_from(start, fps)
        lip_to = end if ac.finished else max(end, math.ceil(ac.settled * HOP * fps))
        k_start = max(ac.k0, int((lip_from / fps - LABEL_CONTEXT_S) / HOP))
        k_end = ac.settled
        rows = slice(k_start - ac.k0, k_end - ac.k0)
        col = {name: ac.cols[name][rows] for name in ac.COLUMNS}
        p95 = self.levels.level.quantile(0.95)
        loud = col["rms_db"] > max(SILENCE_DB, p95 - 35 if p95 is not None else SILENCE_DB)
        speech = _bridged(col["vad"] & loud, open_start=k_start > 0, open_end=not ac.finished)
        # frames whose speech decision is past the bridging's reach feed the running speech level
        upto = k_end if ac.finished else k_end - int(VAD_BRIDGE_S / HOP)
        if upto > self.counted:
            a = max(self.counted, k_start)
            self.levels.speech_level.add(col["rms_db"][a - k_start: upto - k_start][speech[a - k_start: upto - k_start]])
            self.counted = upto
        ref = self.levels.speech_level.quantile(0.5)
        if ref is None:
            ref = np.median(col["rms_db"][speech]) if speech.any() else np.max(col["rms_db"])
        smooth = gaussian_filter1d(col["rms_db"], 3)
        loudness = np.clip(0.5 + np.where(smooth > ref, (smooth - ref) / 16, (smooth - ref) / 32), 0, 1)
        # No formants or high-frequency share: the lips come from the phone model, not from them.
        empty, unknown = np.zeros(0), np.full(len(speech), np.nan)
        feat = SpeechFeatures(col["rms_db"], speech, col["f0"], unknown, unknown, unknown, loudness,
                              empty, empty, empty)
        return _Window(feat, k_start * HOP, fps, lip_from, lip_to, ac.post[rows], self.lips)

    @staticmethod
    def lip_from(start: int, fps: float) -> int:
        """The first frame lip_motion sees when frames from `start` are due: enough before them for
        the silence gate to know how long the pause has been."""
        return max(0, start - math.ceil(GATE_CONTEXT_S * fps))

    def sent(self, end: int, fps: float) -> None:
        """Frames before `end` are sent: forget the features the next window will not need."""
        self.emitted = end
        self.acoustics.forget_before(int((self.lip_from(end, fps) / fps - LABEL_CONTEXT_S) / HOP))


class _Prosody:
    """Syllable nuclei and pitch accents found as they pass (features._syllable_nuclei and
    _pitch_accents with running statistics), turned into nods, sweeps and brow raises."""

    def __init__(self, options: MotionOptions, life: _Life, seed: np.random.SeedSequence) -> None:
        self._options = options
        self._life = life
        self._rng = np.random.default_rng(seed)
        self._peaks: deque[float] = deque(maxlen=PROSODY_HISTORY)       # smoothed level at each nucleus, dB
        self._prominences: deque[float] = deque(maxlen=PROSODY_HISTORY)
        self._scores: deque[float] = deque(maxlen=PROSODY_HISTORY)

    def update(self, window: _Window, utt: _Utterance, next_frame_t: float) -> None:
        feat = window.feat
        if len(feat.rms_db) < 3:
            return
        env = gaussian_filter1d(feat.rms_db, 2.5)
        peaks, props = find_peaks(env, prominence=2.0, distance=int(0.1 / HOP))
        horizon = window.t0 + feat.duration - (0.0 if utt.acoustics.finished else NUCLEUS_CONFIRM_S)
        for k, prominence in zip(peaks.tolist(), props["prominences"].tolist()):
            t = window.t0 + (k + 0.5) * HOP
            if t > horizon or t < horizon - NUCLEUS_MAX_AGE_S or t < utt.last_nucleus + 0.1 - 1e-9:
                continue
            if not (feat.speech[k] and feat.f0[k] > 0):
                continue
            utt.last_nucleus = t
            self._nucleus(t + utt.start_frame / window.fps, float(env[k]), prominence,
                          float(feat.f0[max(0, k - 5): k + 6].max()), utt, t, next_frame_t)

    def _nucleus(self, t: float, level: float, prominence: float, f0_peak: float, utt: _Utterance,
                 t_utt: float, next_frame_t: float) -> None:
        """t: stream time of the nucleus; t_utt: the same in utterance time."""
        self._peaks.append(level)
        self._prominences.append(prominence)
        strength = float(np.clip(0.5 + (level - np.median(self._peaks)) / 12
                                 + (prominence - np.median(self._prominences)) / 20, 0, 1))
        median_f0 = utt.levels.f0.quantile(0.5)
        semitones = 12 * np.log2(max(f0_peak, 1) / median_f0) if median_f0 else 0.0
        score = semitones + 4 * strength
        self._scores.append(score)
        accent = (semitones > 1.0 and score >= np.percentile(self._scores, 67)
                  and t_utt - utt.last_accent >= ACCENT_SPACING_S)
        rng, expr = self._rng, self._options.expressiveness
        amp = (NOD_DEG if accent else BEAT_DEG * strength) * rng.uniform(0.7, 1.3)
        self._life.pulse("pitch", -amp * expr, t - NOD_LEAD_S - NOD_RISE_S, NOD_RISE_S, NOD_DECAY_S, next_frame_t)
        if not accent:
            return
        utt.last_accent = t_utt
        if rng.random() < SWEEP_CHANCE:
            side = rng.choice([-1, 1])
            self._life.pulse("yaw", side * rng.uniform(*SWEEP_DEG) * expr, t - SWEEP_RISE_S, SWEEP_RISE_S,
                             SWEEP_DECAY_S, next_frame_t)
        if rng.random() < BROW_ACCENT_CHANCE:
            self._life.pulse("brow", rng.uniform(*BROW_LIFT), t - BROW_LEAD_S, BROW_RISE_S, BROW_DECAY_S,
                             next_frame_t)


# --- Life -----------------------------------------------------------------------------------------

class _OU:
    """noise.ou_noise continued across calls: the same twice low-passed process, n frames at a time."""

    def __init__(self, fps: float, tau: float, sigma: float, seed: np.random.SeedSequence) -> None:
        self._rng = np.random.default_rng(seed)
        a = math.exp(-1.0 / (tau * fps))
        self._b, self._a = [1 - a], [1, -a]
        # stationary std of white noise through two one-pole low-passes: sum of the impulse response squared
        self._scale = sigma / math.sqrt((1 - a) ** 4 * (1 + a * a) / (1 - a * a) ** 3)
        self._z = [np.zeros(1), np.zeros(1)]
        self(int(5 * tau * fps))   # burn-in: the first frames are as random as the rest

    def __call__(self, n: int) -> np.ndarray:
        x, self._z[0] = lfilter(self._b, self._a, self._rng.standard_normal(n), zi=self._z[0])
        x, self._z[1] = lfilter(self._b, self._a, x, zi=self._z[1])
        return x * self._scale


@dataclass(frozen=True)
class _Blink:
    peak: float
    close: float
    hold: float
    opening: float
    left: float
    right: float


class _Eyes:
    """eyes.eye_motion's processes, run frame by frame: a blink clock in hazard time, fixational
    saccades, look-aways (background and at turn starts), blinks pulled onto large gaze shifts."""

    def __init__(self, options: MotionOptions, fps: float, seed: np.random.SeedSequence) -> None:
        events, coin = seed.spawn(2)
        self._fps = fps
        self._rng = np.random.default_rng(events)
        self._coin = np.random.default_rng(coin)      # one draw per frame: background look-aways
        self._style = WANDER_STYLE if options.gaze == "wander" else CAMERA_STYLE
        rng = self._rng
        self._blinking = options.blink_rate > 0
        if self._blinking:   # as eyes._schedule_blinks: mean wait chosen so the rate is blink_rate
            mean_interval = 60.0 / options.blink_rate
            self._refractory = min(BLINK_REFRACTORY_S, 0.5 * mean_interval)
            cycle = (1 + DOUBLE_BLINK_P) * mean_interval - DOUBLE_BLINK_P * np.mean(DOUBLE_BLINK_GAP_S)
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

    def frames(self, i0: int, speaking: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blendshapes (n, 52), gaze (n, 4), blink closure (n,)) for stream frames i0..i0+n-1."""
        n = len(speaking)
        coins = self._coin.uniform(size=n)
        for k in range(n):
            self._step(i0 + k, bool(speaking[k]), float(coins[k]))
        t = (i0 + np.arange(n)) / self._fps
        blink, left, right = self._render_blinks(t)
        base = self._render_gaze(t)
        pitch = base[:, 1] - BLINK_PITCH_DROP_DEG * blink
        gaze = np.stack([base[:, 0] - VERGENCE_DEG, pitch, base[:, 0] + VERGENCE_DEG, pitch], axis=1)
        return eye_blendshapes(gaze, left, right, base[:, 1]), gaze, blink

    def _step(self, i: int, speaking: bool, coin: float) -> None:
        t, fps = i / self._fps, self._fps
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
        # a look-away: thinking at a turn start, or the background process
        style = self._style
        wants = coin < (style.speech_rate if speaking else style.silence_rate) / 60.0 / fps
        if turn and self._rng.uniform() < style.turn_prob:
            wants = True
        hazard = (BLINK_SPEECH_GAIN if speaking else
                  BLINK_OFFSET_GAIN if i - self._last_offset < BLINK_OFFSET_WINDOW_S * fps else BLINK_PAUSE_GAIN)
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
        """A blink (maybe a double one) closing after frame t; the peak lands on a frame."""
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
            blink[lo:hi] = np.maximum(blink[lo:hi], c)
            left[lo:hi] = np.maximum(left[lo:hi], b.left * c)
            right[lo:hi] = np.maximum(right[lo:hi], b.right * c)
        self._blinks = [b for b in self._blinks if b.peak + b.hold + b.opening > t[-1]]
        return blink, left, right

    def _render_gaze(self, t: np.ndarray) -> np.ndarray:
        """Shared (yaw, pitch) per frame, shape = (n, 2): holds joined by bell-shaped saccades."""
        start = np.array([s[0] for s in self._saccades])
        duration = np.array([s[1] for s in self._saccades])
        frm = np.array([s[2] for s in self._saccades])
        to = np.array([s[3] for s in self._saccades])
        j = np.searchsorted(start, t, side="right") - 1
        u = np.clip((t - start[j]) / duration[j], 0.0, 1.0)
        out = frm[j] + (to[j] - frm[j]) * _smoothstep(u)[:, None]
        current = int(np.searchsorted(start, t[-1], side="right")) - 1
        self._saccades = self._saccades[current:]
        return out


class _Life:
    """Everything but the lips, continuous across pushes, utterances and idle spells: eyes, head
    drift, breathing, nods/sweeps/brow pulses, the emotion's pose."""

    def __init__(self, options: MotionOptions, seed: np.random.SeedSequence) -> None:
        self._options = options
        fps = self._fps = options.fps
        eyes, *noise = seed.spawn(9)
        self._eyes = _Eyes(options, fps, eyes)
        self._drift = [_OU(fps, tau, sd, s) for (sd, tau), s in zip(DRIFT.values(), noise[:3])]
        self._sway = _OU(fps, SWAY_TAU_S, SWAY_MM, noise[3])
        lo, hi = BREATH_HZ
        self._breath_rate = _OU(fps, BREATH_RATE_TAU_S, (hi - lo) / 4, noise[4])
        self._breath_depth = _OU(fps, BREATH_DEPTH_TAU_S, 1.0, noise[5])
        self._wobble = _OU(fps, EMOTION_WOBBLE_TAU_S, 1.0, noise[6])
        self._phase = float(np.random.default_rng(noise[7]).uniform(0, 2 * np.pi))
        self._pose = emotion_pose(options)
        self._envelope = 0.0   # 0 at rest .. 1 while speaking: scales the drift
        self._pulses: dict[str, list[tuple[float, float, float, float]]] = {"pitch": [], "yaw": [], "brow": []}

    def pulse(self, channel: str, amplitude: float, onset: float, rise: float, decay: float,
              earliest: float) -> None:
        """A noise.add_pulse bump on `channel` (stream times, s), starting no earlier than `earliest`
        (the first frame not yet sent) so sent frames never change and nothing jumps."""
        self._pulses[channel].append((amplitude, max(onset, earliest), rise, decay))

    def frames(self, i0: int, speaking: np.ndarray,
               pitch: tuple[np.ndarray, float | None] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blendshapes (n, 52) without lips, head (n, 6), gaze (n, 4)) for stream frames from i0.
        pitch: (f0 Hz per frame, the speaker's median f0) for the brows' pitch lift, or None."""
        n, fps, options = len(speaking), self._fps, self._options
        t = (i0 + np.arange(n)) / fps
        eye_shapes, gaze, _ = self._eyes.frames(i0, speaking)
        envelope = PAUSE_DRIFT_SCALE + (1 - PAUSE_DRIFT_SCALE) * self._speaking_envelope(speaking)
        rot = np.stack([drift(n) * envelope for drift in self._drift], axis=1)
        rot[:, 1] += self._sum_pulses("pitch", t)
        rot[:, 0] += self._sum_pulses("yaw", t)
        lo, hi = BREATH_HZ
        phase = self._phase + 2 * np.pi * np.cumsum((lo + hi) / 2 + self._breath_rate(n)) / fps
        self._phase = float(phase[-1]) % (2 * np.pi)
        breath = np.sin(phase) * breath_depth(self._breath_depth(n))
        head = head_pose(rot, breath, self._sway(n), options)
        lift = self._sum_pulses("brow", t)
        if pitch is not None and pitch[1]:
            lift += pitch_lift(pitch[0], pitch[1])
        face = eye_shapes + brow_shapes(lift, options)
        wobble = self._wobble(n)
        if self._pose.any():
            face += emotion_frames(self._pose, wobble)
        return face, head, gaze

    def _speaking_envelope(self, speaking: np.ndarray) -> np.ndarray:
        """head.smooth_mask's 0.8 s moving average, made causal: a ramp of at most 1 per 0.8 s."""
        out = np.empty(len(speaking))
        step = 1.0 / (0.8 * self._fps)
        e = self._envelope
        for k, s in enumerate(speaking.tolist()):
            e = min(e + step, 1.0) if s else max(e - step, 0.0)
            out[k] = e
        self._envelope = e
        return out

    def _sum_pulses(self, channel: str, t: np.ndarray) -> np.ndarray:
        out = np.zeros(len(t))
        for amplitude, onset, rise, decay in self._pulses[channel]:
            add_pulse(out, t, amplitude, onset, rise, decay)
        self._pulses[channel] = [p for p in self._pulses[channel] if p[1] + p[2] + 4 * p[3] > t[-1]]
        return out
