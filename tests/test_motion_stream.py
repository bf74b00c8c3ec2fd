"""Streaming motion (MotionStream): chunked speech from festival with its true phone timings,
against the offline track of the same audio from the same phone model; idle life; flush, interrupt, determinism."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from speech import FESTIVAL_VOICES, festival_say, score
from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES
from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.errors import AudioError
from talkinghead.motion import analyze_speech, animate, motion_from_audio
from talkinghead.motion.options import MotionOptions
from talkinghead.motion.stream import INTERRUPT_CLOSE_S, LOOKAHEAD_S, MotionStream, push_together
from talkinghead.track import MotionTrack

SENTENCES = [
    "Bob bought a big map, but the pub by the bay was empty.",
    "You knew the moon would move over the blue pool.",
    "My mother made a warm apple pie for Paul.",
    "Please bring me the probe. We must be home by nine.",
]
CHUNKS_MS = (20, 100, 500)
PAD_S = 0.8
LIP_CHANNELS = [i for i, n in enumerate(BLENDSHAPE_NAMES) if n.startswith(("jaw", "mouth", "tongue", "cheekPuff"))]


@pytest.fixture(scope="module")
def takes(tmp_path_factory, festival):
    """(samples, true phone segments) for every festival voice and sentence, PAD_S of room tone around."""
    tmp = tmp_path_factory.mktemp("speech")
    out = []
    for voice in FESTIVAL_VOICES:
        for i, text in enumerate(SENTENCES):
            wav = tmp / f"{voice}_{i}.wav"
            segs = festival_say(text, voice, wav, pad=PAD_S)
            out.append((load_audio(wav), segs))
    return out


def chunks(samples: np.ndarray, chunk_ms: int):
    step = chunk_ms * SAMPLE_RATE // 1000
    return [samples[i: i + step] for i in range(0, len(samples), step)]


def say(stream: MotionStream, samples: np.ndarray, chunk_ms: int) -> list:
    frames = []
    for c in chunks(samples, chunk_ms):
        frames += stream.push(c)
    return frames + stream.flush()


def as_track(frames: list, fps: float) -> MotionTrack:
    return MotionTrack(fps=fps, duration=len(frames) / fps,
                       blendshapes=np.stack([f.blendshapes for f in frames]),
                       head=np.array([[f.head.yaw, f.head.pitch, f.head.roll, f.head.x, f.head.y, f.head.z]
                                      for f in frames], np.float32),
                       gaze=np.array([[f.gaze_left.yaw, f.gaze_left.pitch, f.gaze_right.yaw, f.gaze_right.pitch]
                                      for f in frames], np.float32),
                       visemes=[f.viseme for f in frames])


def channels(track: MotionTrack) -> np.ndarray:
    """Every channel side by side, shape = (n, 52 + 6 + 4)."""
    return np.concatenate([track.blendshapes, track.head, track.gaze], axis=1)


def max_step(track: MotionTrack) -> np.ndarray:
    """Largest frame-to-frame change of every channel, shape = (62,)."""
    return np.abs(np.diff(channels(track), axis=0)).max(0)


@pytest.fixture(scope="module")
def offline(takes):
    return [motion_from_audio(x, SAMPLE_RATE, MotionOptions(lipsync="model")) for x, _ in takes]


@pytest.fixture(scope="module")
def streamed(takes):
    """{chunk ms: [track per take]}, each take a fresh stream starting at frame 0."""
    return {ms: [as_track(say(MotionStream(), x, ms), 30.0) for x, _ in takes] for ms in CHUNKS_MS}


@pytest.fixture(scope="module")
def step_limit(takes):
    """Per channel, 1.5 x the largest frame-to-frame change of the offline phone-model tracks (every take,
    eight seeds: blinks, look-aways and nods are random, and a stream's idle spells give them more
    chances than one take) + 0.02. Each take is analysed once and animated per seed."""
    analyses = [analyze_speech(x, SAMPLE_RATE, lipsync="model") for x, _ in takes]
    steps = [max_step(animate(a, MotionOptions(lipsync="model", seed=seed))) for a in analyses for seed in range(8)]
    # 1.5 (1.3 with the first phone model): with the second (2026-12-06) a streamed mouthShrugUpper
    # step reached 1.42 x the offline tracks' largest; a seam at a window boundary would be far more
    return 1.5 * np.max(steps, axis=0) + 0.02


def check_no_jumps(track: MotionTrack, limit: np.ndarray) -> None:
    names = list(BLENDSHAPE_NAMES) + ["head yaw", "head pitch", "head roll", "head x", "head y", "head z",
                                      "left yaw", "left pitch", "right yaw", "right pitch"]
    steps = np.abs(np.diff(channels(track), axis=0))
    bad = np.argwhere(steps > limit)
    assert not len(bad), [(names[c], int(i), float(steps[i, c]), float(limit[c])) for i, c in bad[:5]]


# --- timing and counts ----------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_ms, fps", [(20, 30.0), (100, 30.0), (500, 30.0), (100, 60.0), (20, 24.0),
                                           (100, 29.97)])
def test_each_push_returns_exactly_the_frames_that_became_final(takes, chunk_ms, fps):
    samples = takes[0][0]
    stream = MotionStream(MotionOptions(fps=fps))
    sent, end = 0, 0.0
    for c in chunks(samples, chunk_ms):
        out = stream.push(c)
        end += len(c) / SAMPLE_RATE
        final = sum(1 for k in range(int(end * fps) + 2) if k / fps <= end - LOOKAHEAD_S + 1e-9)
        assert [f.t for f in out] == [k / fps for k in range(sent, final)], (end, sent, final)
        sent = final
        assert stream.frames_emitted == sent
    out = stream.flush()
    total = math.ceil(len(samples) / SAMPLE_RATE * fps - 1e-9)
    assert [f.t for f in out] == [k / fps for k in range(sent, total)]
    assert stream.frames_emitted == total and stream.flush() == []
    f = out[-1]
    assert f.blendshapes.dtype == np.float32 and f.blendshapes.shape == (52,) and f.viseme in VISEMES


@pytest.mark.slow
def test_frames_are_valid(streamed):
    for track in streamed[100]:
        assert track.blendshapes.min() >= 0 and track.blendshapes.max() <= 1
        assert np.isfinite(channels(track)).all()
        assert np.abs(track.head[:, :3]).max() < 25 and np.abs(track.gaze).max() < 30


# --- lips -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_jaw_follows_the_offline_track(streamed, offline):
    """The same phone posteriors, windowed with LOOKAHEAD_S of future, give nearly the offline mouth."""
    for ms in CHUNKS_MS:
        r = [np.corrcoef(s.channel("jawOpen"), o.channel("jawOpen"))[0, 1] for s, o in zip(streamed[ms], offline)]
        print(f"{ms} ms chunks: jawOpen r = {np.round(r, 3).tolist()}")
        assert min(r) >= 0.85 and np.mean(r) >= 0.93, (ms, r)


def test_one_push_of_a_whole_line_matches_the_offline_track(takes, offline):
    stream = MotionStream()
    frames = stream.push(takes[2][0]) + stream.flush()
    track = as_track(frames, 30.0)
    assert track.n_frames == offline[2].n_frames
    assert np.corrcoef(track.channel("jawOpen"), offline[2].channel("jawOpen"))[0, 1] >= 0.95


@pytest.mark.slow
def test_mouth_opens_on_vowels_closes_on_bilabials_and_shuts_in_pauses(takes, streamed, offline):
    def totals(tracks):
        acc: dict[str, list[int]] = {}
        for track, (_, segs) in zip(tracks, takes):
            for check, (hit, n) in score(track, segs).items():
                acc.setdefault(check, [0, 0])
                acc[check][0] += hit
                acc[check][1] += n
        return acc

    ref = totals(offline)
    for ms in CHUNKS_MS:
        res = totals(streamed[ms])
        print(f"{ms} ms chunks: {res} (offline: {ref})")
        assert res["closure"][1] >= 90 and res["closure"][0] >= 0.95 * ref["closure"][0], (ms, res, ref)
        assert res["open"][0] >= 0.85 * res["open"][1], (ms, res)
        assert res["silence"][1] >= 20 and res["silence"][0] == res["silence"][1], (ms, res)
        assert res["no_false_closure"][0] >= 0.95 * res["no_false_closure"][1], (ms, res)


@pytest.mark.slow
def test_no_jumps_at_window_boundaries(streamed, step_limit):
    for ms in CHUNKS_MS:
        for track in streamed[ms]:
            check_no_jumps(track, step_limit)


# --- idle -----------------------------------------------------------------------------------------

def _blinks(track: MotionTrack) -> int:
    closed = track.channel("eyeBlinkLeft") > 0.8
    return int(np.sum(closed[1:] & ~closed[:-1]))


@pytest.mark.parametrize("rate", [10.0, 20.0, 40.0])
def test_idle_blinks_at_the_configured_rate(rate):
    minutes = 3
    track = as_track(MotionStream(MotionOptions(blink_rate=rate, seed=5)).idle(int(minutes * 60 * 30)), 30.0)
    assert 0.7 * rate * minutes <= _blinks(track) <= 1.3 * rate * minutes, (_blinks(track), rate * minutes)
    assert track.channel("eyeBlinkLeft").max() > 0.95


def test_idle_keeps_the_face_alive_with_the_mouth_shut():
    fps = 30.0
    track = as_track(MotionStream(MotionOptions(seed=2)).idle(int(120 * fps)), fps)
    assert track.blendshapes[:, LIP_CHANNELS].max() == 0 and set(track.visemes) == {"sil"}
    yaw = track.head[:, 0].astype(float)
    assert 0.3 < yaw.std() < 5 and np.ptp(yaw) > 1.5
    # not periodic: the drift forgets itself (no block of motion repeats)
    yaw = yaw - yaw.mean()
    lags = range(int(5 * fps), int(40 * fps), 5)
    acf = [float(np.dot(yaw[:-lag], yaw[lag:]) / np.dot(yaw, yaw) * len(yaw) / (len(yaw) - lag)) for lag in lags]
    assert max(acf) < 0.5, max(acf)
    # breathing: head rise and fall at a resting breath rate
    y = track.head[:, 4] - track.head[:, 4].mean()
    spectrum = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / fps)
    assert 0.15 <= freqs[np.argmax(spectrum[1:]) + 1] <= 0.4 and y.std() > 0.2
    # fixational saccades: the eyes step every second or so
    saccades = np.linalg.norm(np.diff(track.gaze[:, :2], axis=0), axis=1) > 0.3
    assert np.sum(saccades[1:] & ~saccades[:-1]) >= 60


def test_idle_speech_idle_speech_has_no_jumps(takes, step_limit):
    fps = 30.0
    stream = MotionStream()
    first, second = takes[0][0], takes[5][0]
    abrupt = second[int((PAD_S + 0.1) * SAMPLE_RATE):]   # starts in the middle of speech
    frames = stream.idle(20)
    frames += say(stream, first, 100)
    frames += stream.idle(15)
    frames += say(stream, abrupt, 20)
    frames += stream.idle(20)
    assert [f.t for f in frames] == [k / fps for k in range(len(frames))]
    track = as_track(frames, fps)
    check_no_jumps(track, step_limit)
    start = 20 + math.ceil(len(first) / SAMPLE_RATE * fps - 1e-9) + 15   # the abrupt utterance's first frame
    assert track.channel("jawOpen")[start] < 0.15 and track.channel("jawOpen")[start + 3: start + 15].max() > 0.15


# --- flush and interrupt --------------------------------------------------------------------------

def test_flush_relaxes_the_mouth_even_when_the_audio_stops_mid_word(takes):
    samples = takes[0][0]
    cut = samples[: int((PAD_S + 1.0) * SAMPLE_RATE)]
    stream = MotionStream()
    frames = []
    for c in chunks(cut, 100):
        frames += stream.push(c)
    assert max(f.blendshape("jawOpen") for f in frames[-10:]) > 0.2   # cut while talking
    tail = stream.flush()
    assert len(frames) + len(tail) == math.ceil(len(cut) / SAMPLE_RATE * 30 - 1e-9)
    assert tail[-1].blendshapes[LIP_CHANNELS].max() <= 0.02 and tail[-1].viseme in VISEMES
    after = stream.idle(5)
    assert after[0].t == tail[-1].t + 1 / 30 and max(f.blendshapes[LIP_CHANNELS].max() for f in after) == 0
    assert stream.flush() == [] and MotionStream().flush() == []


def test_interrupt_closes_the_mouth_quickly_and_drops_pending_audio(takes):
    samples = takes[0][0]
    stream = MotionStream()
    frames = []
    for c in chunks(samples, 100):
        frames += stream.push(c)
        if frames and frames[-1].blendshape("jawOpen") > 0.25:
            break
    closing = stream.interrupt()
    assert 0.1 * 30 <= len(closing) <= math.ceil(INTERRUPT_CLOSE_S * 30) + 1
    assert closing[0].t == pytest.approx(frames[-1].t + 1 / 30, abs=1e-9)
    jaw = [frames[-1].blendshape("jawOpen")] + [f.blendshape("jawOpen") for f in closing]
    assert all(b <= a + 1e-6 for a, b in itertools.pairwise(jaw)) and jaw[-1] <= 0.01
    assert closing[-1].blendshapes[LIP_CHANNELS].max() <= 0.01
    assert stream.interrupt() == []    # idle now: nothing to interrupt
    # the dropped speech never comes back: room tone after the barge-in keeps the mouth shut
    room = np.random.default_rng(0).normal(0, 3e-4, SAMPLE_RATE).astype(np.float32)
    n = stream.frames_emitted
    after = say(stream, room, 100)
    assert after[0].t == n / 30 and max(f.blendshapes[LIP_CHANNELS].max() for f in after) <= 0.02


# --- determinism, options, input ------------------------------------------------------------------

def _session(samples: np.ndarray, options: MotionOptions) -> MotionTrack:
    stream = MotionStream(options)
    frames = stream.idle(10) + say(stream, samples, 100) + stream.idle(10)
    return as_track(frames, options.fps)


def test_same_calls_same_frames_and_the_seed_varies_only_life(takes):
    samples = takes[1][0]
    a, b = _session(samples, MotionOptions(seed=4)), _session(samples, MotionOptions(seed=4))
    assert np.array_equal(channels(a), channels(b)) and a.visemes == b.visemes
    c = _session(samples, MotionOptions(seed=5))
    assert not np.array_equal(a.head, c.head)
    assert np.array_equal(a.channel("jawOpen"), c.channel("jawOpen"))   # the words set the lips, not the seed


def test_streams_pushed_together_make_the_frames_each_would_alone(takes):
    """push_together (what the server does with the chunks of a moment: one phone-model call for
    all) gives every stream exactly its own pushes' frames: streams at different points of their
    lines, one with chunks of another size, one idling between two lines, one sent an empty
    chunk, one given a line's text."""
    lines = [takes[0][0], takes[1][0], takes[2][0], takes[3][0]]
    options = [MotionOptions(seed=k) for k in range(4)]
    together, alone = [MotionStream(o) for o in options], [MotionStream(o) for o in options]
    for stream in (together[3], alone[3]):
        stream.begin_line(text="Bob bought a big map.", language="en")
    got, want = [[] for _ in lines], [[] for _ in lines]
    step = [1600, 1600, 800, 1600]
    for i in range(60):
        pieces = [x[i * n: (i + 1) * n] for x, n in zip(lines, step)]
        pieces[1] = pieces[1] if i % 20 < 12 else np.zeros(0, np.float32)   # line 1 pauses, flushed
        for out, stream in ((got, together), (want, alone)):
            if i % 20 == 12:
                out[1] += stream[1].flush()
            if i % 20 in (13, 14):
                out[1] += stream[1].idle(3)
        for k, frames in enumerate(push_together(together, pieces)):
            got[k] += frames
        for k, (stream, piece) in enumerate(zip(alone, pieces)):
            want[k] += stream.push(piece)
    for k in range(4):
        got[k] += together[k].flush()
        want[k] += alone[k].flush()
        a, b = as_track(got[k], 30.0), as_track(want[k], 30.0)
        assert len(got[k]) > 60 and np.array_equal(channels(a), channels(b)) and a.visemes == b.visemes, k


def test_life_does_not_depend_on_how_idle_time_is_cut():
    one = as_track(MotionStream(MotionOptions(seed=9)).idle(300), 30.0)
    stream = MotionStream(MotionOptions(seed=9))
    parts = stream.idle(7) + stream.idle(0) + stream.idle(93) + stream.idle(1) + stream.idle(199)
    assert np.array_equal(channels(one), channels(as_track(parts, 30.0)))


def test_options_reach_the_stream(takes):
    still = _session(takes[1][0], MotionOptions(head_motion=0, blink_rate=0))
    assert np.abs(still.head).max() == 0
    assert still.channel("eyeBlinkLeft").max() < 0.35    # lids only follow downward looks
    happy = as_track(MotionStream(MotionOptions(emotion="happy", emotion_intensity=1.0)).idle(60), 30.0)
    assert happy.channel("mouthSmileLeft").mean() > 0.4 and happy.channel("jawOpen").max() == 0


@pytest.mark.parametrize("bad, words", [
    (np.zeros(160, np.int16), "dtype int16"),
    (np.zeros((160, 2), np.float32), "shape (160, 2)"),
    (np.array([0.0, np.nan], np.float32), "NaN"),
    (np.array([0.0, np.inf], np.float32), "NaN or infinite"),
    (np.full(160, 12000.0, np.float32), "scaled to -1..1"),
])
def test_bad_chunks_raise_audio_errors_that_say_what_to_do(bad, words):
    stream = MotionStream()
    with pytest.raises(AudioError, match="pass") as err:
        stream.push(bad)
    assert words in str(err.value)
    assert stream.push(np.zeros(0, np.float32)) == [] and stream.flush() == []   # empty: no utterance opened
    with pytest.raises(ValueError):
        stream.idle(-1)


def test_a_long_utterance_keeps_only_a_window_of_its_acoustics(takes):
    """One utterance of ~20 s (festival's lines back to back, no flush): the rows, audio and VAD
    decisions the stream holds stay those of the last moments, however long it speaks."""
    speech = np.concatenate([x for x, _ in takes])[: 20 * SAMPLE_RATE]
    stream = MotionStream()
    held = []
    for c in chunks(speech, 100):
        stream.push(c)
        ac = stream._utterance.acoustics
        held.append((len(ac.cols["rms_db"]), len(ac.post), len(ac._audio), len(ac._vad._raw)))
    most = np.max(held[50:], axis=0)   # after the first 5 s
    assert most[0] <= 150 and most[1] <= 150                 # feature rows: ~1 s (10 ms each)
    assert most[2] <= 0.1 * SAMPLE_RATE                      # audio samples (the pitch windows)
    assert most[3] <= 5                                      # 30 ms VAD decisions
