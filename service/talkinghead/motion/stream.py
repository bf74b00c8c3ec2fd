"""The motion engine: `MotionStream`, speech -> facial motion, causal, for a stream and a take alike.

A TTS engine speaks in chunks; the server pushes each chunk here and sends back the frames that
became final, and asks for idle frames while no audio comes, so the face stays alive between lines.
A file is the same engine pushed its whole take at once (`play`, what `motion.animate` runs): one
utterance whose features and visemes are already known. Frames are on ONE clock: frame i is at
i / fps, across utterances, takes and idle spells.

Per utterance the engine runs, window by window, the same stages: the lips (`lips.lip_motion` on
the viseme segments of the utterance's lip source, scaled by the articulation gain and eased in at
the start, relaxed at the end), the syllable nuclei and accents (`audio.prosody.Prosody`) turned
into nods, sweeps and brow raises, and the life (`life.Life`: eyes, head, brows, emotion), which
carries its state from frame to frame whatever the frames were asked for by.

Live, the features are computed as the audio arrives (`features.frame_rms_db`, `audio.pitch`,
`features.VoiceActivity`, `bridged`), and the lips come from the utterance's lip source (`motion.line`:
a TTS engine's marks, the line's text aligned live, or the project's phone model alone), which
hears the phone model's posteriors 10 ms frame by 10 ms frame as the audio arrives;
what a take computes over the whole recording (the speech level that loudness is relative to, the
level percentile of the VAD's energy gate, the median pitch and the nuclei statistics) are running
statistics over the stream: the same NPC voice speaks every utterance of a stream.

Differences between a take and a stream, all from not knowing the future (tests/test_motion_stream.py
and tests/test_engine.py measure them):
- a take's features, visemes and prosody statistics are the whole recording's (`SpeechAnalysis`);
  a stream's are decided on windows of what has been heard;
- live, lips round ~0.07 s ahead of an oo/w at most (the rounded vowel is not heard yet), at most
  ROUNDING_RATE per second; a take's lead lips.ROUNDING_LEAD_S ahead;
- live, a silence just after speech is taken for a stop closure until it has lasted VAD_BRIDGE_S,
  and a pause is known to be long once SILENCE_RELAX_S of it have been heard;
- live, nods and brow raises peak ~0.1 s after the stressed syllable instead of just before it (a
  syllable is recognised once its loudness peak has passed);
- a take's thinking look-away may start up to eyes.TURN_LEAD_S before its first word, and its blink
  hazard is normalised over the take (`eyes.EyeLookahead`); live, a look-away starts with the word
  and the hazard gains are used as they are (idle blinks come at blink_rate on average, and a
  phrase of a few seconds with its pause averages about the same).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.features import (HOP, VAD_BRIDGE_S, SpeechFeatures, VoiceActivity, bridged, frame_rms_db,
                                        loud, relative_loudness)
from talkinghead.audio.phone_model import PhoneModel, push_many
from talkinghead.audio.phones import HOP_SAMPLES
from talkinghead.audio.phoneset import CLASSES
from talkinghead.audio.pitch import PitchTracker
from talkinghead.audio.prosody import Nucleus, Prosody, median_pitch
from talkinghead.motion.eyes import EyeLookahead
from talkinghead.motion.life import Life
from talkinghead.motion.line import Line, ModelLips, lip_source
from talkinghead.motion.lips import ROUNDING_CHANNELS, SILENCE_RELAX_S, VisemeSegment, lip_motion
from talkinghead.motion.noise import clip, smoothstep
from talkinghead.motion.options import MotionOptions
from talkinghead.motion.speech import SpeechAnalysis, checked_samples
from talkinghead.track import EyeGaze, FaceParams, HeadPose, MotionTrack

# Why 0.1 s: a frame's mouth is pulled by the visemes around it, the next one's pull reaching ~2 x
# lips.FALLOFF_S (90 ms) ahead, and the labels of the sound after the frame must be settled: the phone
# model answers for a frame once the audio runs PhoneModel.lookahead_s (47.5 ms) past it. A frame final
# LOOKAHEAD_S behind the newest audio sees settled labels ~50 ms ahead: openings and closures start on
# time. Less lookahead and they would pop in late, after their sound; more only adds latency to the
# service's 150 ms budget.
LOOKAHEAD_S = 0.1

FEATURE_REACH_S = 0.03      # a feature frame is settled once the audio runs this far past its end
PITCH_CONTEXT_S = 0.03      # audio before the first unsettled frame that the pitch windows need
LABEL_CONTEXT_S = 0.4       # feature context before the first lip frame: the VAD's bridging, the viseme runs
GATE_CONTEXT_S = SILENCE_RELAX_S + 0.05  # lip frames before the new ones: how long the pause has been
ONSET_S = 0.1               # an utterance's first frames ease in from the shut idle mouth...
RELAX_S = 0.1               # ...and its last frames relax it closed at the end (flush)
INTERRUPT_CLOSE_S = 0.12    # barge-in: the mouth closes this fast from where it was
ROUNDING_RATE = 6.0         # live: pucker/funnel change per second at most (takes: up to ~7/s)


@dataclass
class _Frames:
    """Frames as arrays: blendshapes (n, 52), head (n, 6), gaze (n, 4), n viseme names."""

    blendshapes: np.ndarray
    head: np.ndarray
    gaze: np.ndarray
    visemes: list[str]

    def track(self, fps: float, duration: float | None = None) -> MotionTrack:
        n = len(self.visemes)
        return MotionTrack(fps=fps, duration=n / fps if duration is None else duration,
                           blendshapes=self.blendshapes, head=self.head, gaze=self.gaze, visemes=self.visemes)


class MotionStream:
    """Incremental speech -> facial motion. Not thread-safe; one per stream.

    Latency: push() returns frames up to LOOKAHEAD_S behind the newest audio. Cost: a few ms of CPU
    per 100 ms chunk (benchmarks/stream_motion_speed.py).
    """

    def __init__(self, options: MotionOptions = MotionOptions()) -> None:
        self.options = options
        self._life = Life(options, np.random.SeedSequence(options.seed))
        self._levels = _Levels()
        self._prosody = Prosody()
        self._utterance: _Utterance | _Take | None = None
        self._emitted = 0
        self._last_lips = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
        self._last_viseme = "sil"
        self._next_line: ModelLips | None = None   # the lip source begin_line made for the next line
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
        source = lip_source(line)   # built now: a bad line is refused while the caller can hear it
        frames = self.flush()
        self._next_line = source
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
        return self.advance() if self.feed(samples) else []

    def feed(self, samples: np.ndarray) -> bool:
        """push()'s first half: take the chunk (False: it was empty), compute nothing
        (`push_together` runs several streams' phone model as one call between the halves)."""
        samples = checked_samples(samples, "audio chunk")
        if len(samples) == 0:
            return False
        if self._utterance is None:
            self._utterance = _Utterance(self._emitted, self.options.fps, self._levels, self._prosody,
                                         self._next_line or ModelLips())
            self._next_line = None
        self._utterance.acoustics.extend(samples)
        return True

    def advance(self) -> list[FaceParams]:
        """push()'s second half: the frames the audio fed so far makes final."""
        utt = self._utterance
        if utt is None:
            return []
        return self._params(self._speech(final_frames(utt.acoustics.n_samples, self.options.fps), ending=False))

    def flush(self) -> list[FaceParams]:
        """End of the utterance: the remaining frames up to the end of the pushed audio, the mouth
        relaxing closed at the end. Each utterance has MotionTrack.frame_count(duration, fps) frames."""
        utt = self._utterance
        if utt is None:
            return []
        utt.acoustics.finish()
        frames = self._speech(MotionTrack.frame_count(utt.acoustics.n_samples / SAMPLE_RATE, self.options.fps),
                              ending=True)
        self._utterance = None
        return self._params(frames)

    def play(self, analysis: SpeechAnalysis) -> MotionTrack:
        """A whole analysed take as the next utterance, with what only a take knows (its future)
        as lookahead: MotionTrack.frame_count(analysis.duration, fps) frames, the track's frame 0
        at stream frame `frames_emitted` before the call. An open utterance is flushed first
        (its frames are not returned: flush() before play() to have them)."""
        self.flush()
        take = _Take(analysis, self._emitted, self.options)
        self._life.look_ahead(EyeLookahead.of(take.speaking, self.options.fps, self.options.blink_rate,
                                              start=self._emitted))
        self._utterance = take
        try:
            f = self._speech(take.n_frames, ending=True)
        finally:
            self._utterance = None
        return f.track(self.options.fps, analysis.duration)

    def interrupt(self) -> list[FaceParams]:
        """Barge-in: drop audio not yet turned into frames; return a few frames (INTERRUPT_CLOSE_S)
        that close the mouth quickly from where it was, then the stream is idle. Without an open
        utterance there is nothing to interrupt: returns []."""
        self._next_line = None           # a line told but not started is called off too
        if self._utterance is None:
            return []
        self._utterance = None
        n = max(2, round(INTERRUPT_CLOSE_S * self.options.fps))
        weight = 1.0 - smoothstep(np.arange(1, n + 1) / n)
        lips = self._last_lips[None, :] * weight[:, None]
        visemes = [self._last_viseme if w >= 0.5 else "sil" for w in weight]
        return self._params(self._emit(lips, visemes, np.zeros(n, bool)))

    def idle(self, n_frames: int) -> list[FaceParams]:
        """Frames with no speech: blinks, breathing, gaze saccades, slow head drift, mouth shut.

        An open utterance is flushed first: its remaining frames come before the n_frames idle ones.
        """
        if int(n_frames) != n_frames or n_frames < 0:
            raise ValueError(f"n_frames must be a whole number >= 0, got {n_frames!r}")
        frames = self.flush()
        return frames + self._params(self._idle(int(n_frames)))

    def idle_track(self, n_frames: int) -> MotionTrack:
        """idle(n_frames) as a MotionTrack, its frame 0 at stream frame `frames_emitted` after any
        open utterance is flushed (that utterance's frames are not returned)."""
        self.flush()
        return self._idle(int(n_frames)).track(self.options.fps)

    def _idle(self, n: int) -> _Frames:
        return self._emit(np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32), ["sil"] * n, np.zeros(n, bool))

    def _speech(self, end: int, ending: bool) -> _Frames:
        """The utterance's frames [emitted, end): lips from its window, life from the stream. A
        notice its lip source gave (on what it heard, or at the end) is dated at the first of them."""
        utt = self._utterance
        start = utt.emitted
        if end > start:
            frames = self._speech_frames(utt, start, end, ending)
        else:
            frames = _Frames(np.zeros((0, len(BLENDSHAPE_NAMES)), np.float32), np.zeros((0, 6), np.float32),
                             np.zeros((0, 4), np.float32), [])
        if utt.source.notice and not utt.noticed:
            utt.noticed = True
            self._notices.append((utt.source.notice, utt.start_frame + start))
        return frames

    def _speech_frames(self, utt: "_Utterance | _Take", start: int, end: int, ending: bool) -> _Frames:
        fps = self.options.fps
        window = utt.window(start, end)
        lips, visemes, speaking, f0 = window.lips(start, end, self.options)
        for nucleus in window.nuclei:
            self._life.nucleus(nucleus, utt.start_frame / fps, earliest=self._emitted / fps)
        j = np.arange(start, end)
        lips *= smoothstep((j + 1) / (ONSET_S * fps + 1))[:, None]
        if ending:
            relax = max(1, min(len(j), round(RELAX_S * fps)))
            lips[-relax:] *= 1.0 - smoothstep(np.arange(1, relax + 1) / relax)[:, None]
        if not utt.rounding_leads:
            self._limit_rounding(lips)
        utt.sent(end)
        return self._emit(lips, visemes, speaking, f0, window.median_f0)

    def _limit_rounding(self, lips: np.ndarray) -> None:
        """Rounding (pucker, funnel) changes at most ROUNDING_RATE per second: a take's starts
        ROUNDING_LEAD_S ahead of the rounded vowel, live the vowel is heard ~50 ms ahead of the
        frame, and without a limit the lips would snap round in one frame."""
        step = ROUNDING_RATE / self.options.fps
        prev = self._last_lips[ROUNDING_CHANNELS].astype(np.float64).tolist()
        rows = lips[:, ROUNDING_CHANNELS].tolist()
        for row in rows:   # Python floats: a stream's few frames, the same arithmetic as np.clip's
            row[:] = prev = [min(max(x, p - step), p + step) for x, p in zip(row, prev)]
        lips[:, ROUNDING_CHANNELS] = rows

    def _emit(self, lips: np.ndarray, visemes: list[str], speaking: np.ndarray, f0: np.ndarray | None = None,
              median_f0: float | None = None) -> _Frames:
        n = len(visemes)
        face, head, gaze = self._life.frames(self._emitted, speaking, f0, median_f0)
        self._emitted += n
        if n:
            self._last_lips = lips[-1].astype(np.float32)
            self._last_viseme = visemes[-1]
        return _Frames(clip(lips + face, 0, 1).astype(np.float32), head.astype(np.float32),
                       gaze.astype(np.float32), list(visemes))

    def _params(self, f: _Frames) -> list[FaceParams]:
        i0, fps = self._emitted - len(f.visemes), self.options.fps
        heads, gazes = f.head.tolist(), f.gaze.tolist()
        return [FaceParams(t=(i0 + k) / fps, blendshapes=f.blendshapes[k], head=HeadPose(*heads[k]),
                           gaze_left=EyeGaze(gazes[k][0], gazes[k][1]), gaze_right=EyeGaze(gazes[k][2], gazes[k][3]),
                           viseme=f.visemes[k]) for k in range(len(f.visemes))]


def final_frames(n_samples: int, fps: float) -> int:
    """How many of an utterance's frames are final once it has n_samples of audio: those up to
    the newest audio less LOOKAHEAD_S."""
    lookahead = round(LOOKAHEAD_S * SAMPLE_RATE)
    return max(math.floor((n_samples - lookahead) * fps / SAMPLE_RATE + 1e-9) + 1, 0)


def hear_together(streams: list[MotionStream]) -> None:
    """Run the phone model on the audio each stream was fed since its model last ran, as one
    call for them all (phone_model.push_many): what their advance() would have run one by one,
    the same rows. A server pushing the chunks of many streams that arrive together reads the
    model's weights once for all of them instead of once a stream."""
    heard = [s._utterance.acoustics for s in streams if s._utterance is not None and s._utterance.acoustics.unheard]
    if len(heard) > 1:
        rows = push_many([a.phones for a in heard], [a.take_unheard() for a in heard])
        for acoustics, new in zip(heard, rows):
            acoustics.heard.append(new)


def push_together(streams: list[MotionStream], chunks: list[np.ndarray]) -> list[list[FaceParams]]:
    """[s.push(c) for s, c in zip(streams, chunks)], the same frames, their phone model as one call
    (each stream at most once)."""
    fed = [stream.feed(chunk) for stream, chunk in zip(streams, chunks)]
    hear_together(streams)
    return [stream.advance() if ok else [] for stream, ok in zip(streams, fed)]


# --- Lips ------------------------------------------------------------------------------------------

@dataclass
class _Window:
    """Features of a stretch of an utterance (feat's times are seconds from t0), its viseme
    segments (same clock), the nuclei heard in it (utterance time) and the range of frames whose
    lips are computed from it."""

    feat: SpeechFeatures
    t0: float                 # utterance time of the window's start, s
    fps: float
    lip_from: int             # first utterance frame given to lip_motion (context for the gate)
    lip_to: int               # one past the last
    segments: list[VisemeSegment]
    nuclei: list[Nucleus]
    median_f0: float | None   # the speaker's, Hz (brows' pitch lift)

    def lips(self, start: int, end: int, options: MotionOptions):
        """Mouth blendshapes (end - start, 52), visemes, speech (bool) and f0 (Hz) for frames [start, end)."""
        times = np.arange(self.lip_from, self.lip_to) / self.fps - self.t0
        segments = [s for s in self.segments if s.end > times[0] and s.start < times[-1]]
        speech = self.feat.at("speech", times).astype(bool)
        gain = (0.7 + 0.6 * self.feat.at("loudness", times)) * (0.85 + 0.15 * options.expressiveness)
        mouth, labels = lip_motion(segments, times, gain, speech)
        a, b = start - self.lip_from, end - self.lip_from
        return mouth[a:b].astype(np.float64), labels[a:b], speech[a:b], self.feat.at("f0", times[a:b])


class _Take:
    """A whole analysed take as an utterance: one window, its future known."""

    rounding_leads = True
    source = ModelLips()      # unused: a take's visemes are in its analysis
    noticed = False

    def __init__(self, analysis: SpeechAnalysis, start_frame: int, options: MotionOptions) -> None:
        self.start_frame, self.emitted, self._fps = start_frame, 0, options.fps
        self.n_frames = MotionTrack.frame_count(analysis.duration, options.fps)
        self._analysis = analysis
        self.speaking = analysis.features.at("speech", np.arange(self.n_frames) / options.fps).astype(bool)

    def window(self, start: int, end: int) -> _Window:
        feat = self._analysis.features
        # SpeechFeatures holds Prosody.take's nuclei as arrays (what server/analyses.py caches): rejoined
        accents = set(feat.accents.tolist())
        nuclei = [Nucleus(t, s, t in accents) for t, s in zip(feat.nuclei.tolist(), feat.nucleus_strength.tolist())]
        return _Window(feat, 0.0, self._fps, 0, self.n_frames, list(self._analysis.segments), nuclei,
                       median_pitch(feat.f0))

    def sent(self, end: int) -> None:
        self.emitted = end


# --- Live acoustics --------------------------------------------------------------------------------

class _Quantiles:
    """Running quantiles of a value over the stream, in fixed bins: bounded memory, O(bins) a query."""

    def __init__(self, lo: float, hi: float, step: float) -> None:
        self._lo, self._step = lo, step
        self._counts = np.zeros(round((hi - lo) / step) + 1, np.int64)
        self._total = 0
        self._cumulative: np.ndarray | None = None   # cumsum of _counts, until the next add

    def add(self, values: np.ndarray) -> None:
        if len(values):
            idx = clip(((np.asarray(values) - self._lo) / self._step).astype(int), 0, len(self._counts) - 1)
            np.add.at(self._counts, idx, 1)
            self._total += len(idx)
            self._cumulative = None

    def quantile(self, q: float) -> float | None:
        if self._total == 0:
            return None
        if self._cumulative is None:
            self._cumulative = self._counts.cumsum()
        k = int(self._cumulative.searchsorted(q * self._total))
        return self._lo + (min(k, len(self._counts) - 1) + 0.5) * self._step


class _Levels:
    """The stream's running statistics that a take computes over the whole recording."""

    def __init__(self) -> None:
        self.level = _Quantiles(-130.0, 10.0, 0.25)         # every frame's rms, dBFS (VAD energy gate)
        self.speech_level = _Quantiles(-130.0, 10.0, 0.25)  # speech frames' rms (relative loudness)
        self.f0 = _Quantiles(40.0, 600.0, 0.5)              # voiced frames' pitch, Hz (accents, brows)


class _Acoustics:
    """One utterance's features, one row per HOP frame (frame k covers [k*HOP, (k+1)*HOP)), computed
    once as the audio arrives. A frame is settled once the audio runs FEATURE_REACH_S past its end:
    the pitch windows then lie inside the audio. Rows no window needs any more are forgotten
    (forget_before), so a long utterance costs no more memory than a short one."""

    COLUMNS = ("rms_db", "f0", "vad")

    def __init__(self, levels: _Levels, source: ModelLips) -> None:
        self._levels = levels
        self._source = source
        self.n_samples = 0
        self._audio = np.zeros(0, np.float32)
        self._audio0 = 0                 # utterance sample index of _audio[0]
        self._pitch = PitchTracker()
        self._peak = 0.0                 # the utterance's loudest |sample| so far (the pitch's silence)
        self._vad = VoiceActivity()
        self.cols = {name: np.zeros(0, bool if name == "vad" else float) for name in self.COLUMNS}
        self.k0 = 0                      # utterance frame index of the first kept row
        self.settled = 0                 # frames [0, settled) are computed
        self.finished = False
        self.phones = PhoneModel.shared().stream()
        self.post = np.zeros((0, len(CLASSES)), np.float32)   # phone posteriors of frames [k0, ...)
        self.unheard: list[np.ndarray] = []   # audio not yet through the phone model
        self.heard: list[np.ndarray] = []     # posterior rows the model gave (hear_together), not yet heard

    def _hear(self, rows: list[np.ndarray], final: bool = False) -> None:
        new = np.concatenate(rows) if rows else np.zeros((0, len(CLASSES)), np.float32)
        self.post = np.concatenate([self.post, new])
        self._source.hear(new, final)

    def extend(self, samples: np.ndarray) -> None:
        """Take more audio; its features are computed when asked for (settle), so that chunks
        shorter than a video frame cost only their VAD."""
        self._audio = np.concatenate([self._audio, samples])
        self.n_samples += len(samples)
        self._peak = max(self._peak, float(np.max(np.abs(samples))))
        self.unheard.append(samples)
        self._vad.extend(samples)

    def take_unheard(self) -> np.ndarray:
        """The audio taken since the model last ran, handed over to run it."""
        audio = self.unheard[0] if len(self.unheard) == 1 else np.concatenate(self.unheard)
        self.unheard = []
        return audio

    def _run_model(self) -> list[np.ndarray]:
        """The phone model's rows since they were last heard: run on the audio taken since it
        last ran once per settle, not per chunk (each call has a fixed cost of ~0.5 ms, whatever
        its length), unless hear_together ran it already."""
        rows, self.heard = self.heard, []
        if self.unheard:
            rows.append(self.phones.push(self.take_unheard()))
        return rows

    def settle(self) -> None:
        """Compute every frame the audio so far settles."""
        if not self.finished:
            self._hear(self._run_model())
            self._settle(max(0, (self.n_samples - int(FEATURE_REACH_S * SAMPLE_RATE)) // HOP_SAMPLES))

    def finish(self) -> None:
        """No more audio: settle every frame (as a take, a partial last frame is dropped)."""
        self._settle(max(1, self.n_samples // HOP_SAMPLES))
        self._hear(self._run_model() + [self.phones.finish()], final=True)
        self.finished = True

    def _settle(self, end: int) -> None:
        start = self.settled
        if end <= start:
            return
        s0 = max(0, start * HOP_SAMPLES - int(PITCH_CONTEXT_S * SAMPLE_RATE))
        audio = self._audio[s0 - self._audio0:]
        frames = np.zeros((end - start, HOP_SAMPLES), np.float32)
        flat = audio[start * HOP_SAMPLES - s0: end * HOP_SAMPLES - s0]
        frames.reshape(-1)[: len(flat)] = flat
        rms_db = frame_rms_db(frames)
        f0 = self._pitch.track(audio, (np.arange(start, end) + 0.5) * HOP - s0 / SAMPLE_RATE, self._peak)
        new = {"rms_db": rms_db, "f0": f0, "vad": self._vad.frames(start, end)}
        for name in self.COLUMNS:
            self.cols[name] = np.concatenate([self.cols[name], new[name]])
        self.settled = end
        self._levels.level.add(rms_db)
        self._levels.f0.add(f0[f0 > 0])
        # audio before the next frame's pitch context is not needed again
        drop = max(0, end * HOP_SAMPLES - int(PITCH_CONTEXT_S * SAMPLE_RATE) - self._audio0)
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


class _Utterance:
    """A live utterance: its acoustics, its lip source, windows of what has been heard."""

    rounding_leads = False

    def __init__(self, start_frame: int, fps: float, levels: _Levels, prosody: Prosody, source: ModelLips) -> None:
        self.start_frame = start_frame   # stream frame index of the utterance's frame 0
        self.fps = fps
        self.source = source             # the utterance's lip source (motion.line): hears every posterior row
        self.noticed = False
        self.acoustics = _Acoustics(levels, source)
        self.levels = levels
        self.prosody = prosody
        prosody.start_utterance()
        self.emitted = 0                 # utterance frames sent
        self.counted = 0                 # feature frames added to the speech-level statistics

    def window(self, start: int, end: int) -> _Window:
        """The features around utterance frames [start, end) and as far ahead as they are settled."""
        fps = self.fps
        ac = self.acoustics
        ac.settle()
        lip_from = self.lip_from(start, fps)
        lip_to = end if ac.finished else max(end, math.ceil(ac.settled * HOP * fps))
        k_start = max(ac.k0, int((lip_from / fps - LABEL_CONTEXT_S) / HOP))
        k_end = ac.settled
        rows = slice(k_start - ac.k0, k_end - ac.k0)
        col = {name: ac.cols[name][rows] for name in ac.COLUMNS}
        speech = bridged(col["vad"] & loud(col["rms_db"], self.levels.level.quantile(0.95)),
                         open_start=k_start > 0, open_end=not ac.finished)
        # frames whose speech decision is past the bridging's reach feed the running speech level
        upto = k_end if ac.finished else k_end - int(VAD_BRIDGE_S / HOP)
        if upto > self.counted:
            a = max(self.counted, k_start)
            self.levels.speech_level.add(col["rms_db"][a - k_start: upto - k_start][speech[a - k_start: upto - k_start]])
            self.counted = upto
        ref = self.levels.speech_level.quantile(0.5)
        if ref is None:
            ref = np.median(col["rms_db"][speech]) if speech.any() else np.max(col["rms_db"])
        # No formants or high-frequency share: the lips come from the lip source, not from them.
        empty, unknown = np.zeros(0), np.full(len(speech), np.nan)
        feat = SpeechFeatures(col["rms_db"], speech, col["f0"], unknown, unknown, unknown,
                              relative_loudness(col["rms_db"], ref), empty, empty, empty)
        t0 = k_start * HOP
        median_f0 = self.levels.f0.quantile(0.5)
        nuclei = self.prosody.hear(col["rms_db"], col["f0"], speech, t0, median_f0, final=ac.finished)
        # Not open_end: the still-growing last run is merged as if complete. Kept open, a short run
        # at the window's edge (a TH) shows for a frame and is merged away by the next window: a jump.
        segments = [VisemeSegment(s.viseme, s.start - t0, s.end - t0, s.weight)
                    for s in self.source.segments(ac.post[rows], k_start)]
        return _Window(feat, t0, fps, lip_from, lip_to, segments, nuclei, median_f0)

    @staticmethod
    def lip_from(start: int, fps: float) -> int:
        """The first frame lip_motion sees when frames from `start` are due: enough before them for
        the silence gate to know how long the pause has been."""
        return max(0, start - math.ceil(GATE_CONTEXT_S * fps))

    def sent(self, end: int) -> None:
        """Frames before `end` are sent: forget the features the next window will not need."""
        self.emitted = end
        self.acoustics.forget_before(int((self.lip_from(end, self.fps) / self.fps - LABEL_CONTEXT_S) / HOP))
