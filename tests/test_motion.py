"""Whole-face motion from real synthesized speech: determinism, controls, eyes, brows, head, idle."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from speech import aperture, espeak_say
from talkinghead.arkit import BS
from talkinghead.audio.decode import load_audio
from talkinghead.errors import OptionsError
from talkinghead.motion import analyze_speech, animate, motion_from_audio
from talkinghead.motion.options import MotionOptions

TEXT = "Honestly, I never said she stole my money. But I really think somebody did!"


@pytest.fixture(scope="module")
def speech(spoken):
    return spoken(TEXT, pad=1.0)


@pytest.fixture(scope="module")
def analysis(speech):
    """The line analysed once with its transcript; `run` animates it with other options."""
    return analyze_speech(speech, 16000, TEXT)


def run(samples, analysis=None, **kw):
    if analysis is None:
        return motion_from_audio(samples, 16000, MotionOptions(**kw), TEXT)
    return animate(analysis, MotionOptions(**kw))


def test_same_seed_same_output_and_different_seed_differs(speech, analysis):
    a, b, c = run(speech, seed=7), run(speech, analysis, seed=7), run(speech, analysis, seed=8)
    assert np.array_equal(a.blendshapes, b.blendshapes) and np.array_equal(a.head, b.head)
    assert np.array_equal(a.gaze, b.gaze) and a.visemes == b.visemes
    assert not np.array_equal(a.head, c.head)
    # the seed varies life (blinks, head, gaze), never the words: the lips stay put
    assert np.allclose(a.channel("jawOpen"), c.channel("jawOpen"))


def test_track_shape_and_ranges(speech, analysis):
    track = run(speech, analysis, fps=24)
    assert track.n_frames == int(np.ceil(len(speech) / 16000 * 24))
    assert track.blendshapes.dtype == np.float32 and track.blendshapes.min() >= 0 and track.blendshapes.max() <= 1
    assert np.abs(track.head[:, :3]).max() < 25 and np.abs(track.gaze).max() < 30


def test_eyelook_blendshapes_agree_with_gaze_angles(speech, analysis):
    track = run(speech, analysis, gaze="wander", seed=3)
    left_yaw = track.channel("eyeLookOutLeft") - track.channel("eyeLookInLeft")
    right_yaw = track.channel("eyeLookInRight") - track.channel("eyeLookOutRight")
    pitch = track.channel("eyeLookUpLeft") - track.channel("eyeLookDownLeft")
    assert np.corrcoef(left_yaw, track.gaze[:, 0])[0, 1] > 0.95
    assert np.corrcoef(right_yaw, track.gaze[:, 2])[0, 1] > 0.95
    assert np.corrcoef(pitch, track.gaze[:, 1])[0, 1] > 0.9


def test_blinks_happen_with_human_shape(speech, analysis):
    track = run(speech, analysis, blink_rate=40, seed=1)
    blink = track.channel("eyeBlinkLeft")
    assert blink.max() > 0.95
    assert run(speech, analysis, blink_rate=0).channel("eyeBlinkLeft").max() < 0.35  # lids only follow gaze


def test_emotions_change_the_right_channels(speech, analysis):
    neutral = run(speech, analysis)
    for emotion, channel in [("happy", "mouthSmileLeft"), ("sad", "mouthFrownLeft"),
                             ("angry", "browDownLeft"), ("surprised", "eyeWideLeft")]:
        strong = run(speech, analysis, emotion=emotion, emotion_intensity=1.0)
        weak = run(speech, analysis, emotion=emotion, emotion_intensity=0.3)
        assert strong.channel(channel).mean() > weak.channel(channel).mean() > neutral.channel(channel).mean() + 0.05, emotion
    sad = run(speech, analysis, emotion="sad", emotion_intensity=1.0)
    assert sad.head[:, 1].mean() < neutral.head[:, 1].mean() - 2  # sad speakers hold the head lower


def test_controls_scale_head_and_brows(speech, analysis):
    still = run(speech, analysis, head_motion=0)
    normal = run(speech, analysis)
    lively = run(speech, analysis, head_motion=2)
    assert np.abs(still.head).max() < 1e-6
    assert lively.head[:, :3].std(0).sum() > 1.5 * normal.head[:, :3].std(0).sum() > 0.5
    calm = run(speech, analysis, expressiveness=0)
    assert calm.channel("browInnerUp").max() < 1e-6 < normal.channel("browInnerUp").max()


def test_brows_lift_and_head_moves_with_speech_not_in_silence(speech, analysis):
    track = run(speech, analysis)
    t = track.times
    talking = (t > 1.2) & (t < track.duration - 1.2)
    quiet = (t < 0.8) | (t > track.duration - 0.8)
    assert track.channel("browInnerUp")[talking].max() > 0.15
    assert track.channel("browInnerUp")[quiet].max() < 0.1
    pitch_speed = np.abs(np.diff(track.head[:, 1])) * track.fps
    assert pitch_speed[talking[1:]].mean() > 1.5 * pitch_speed[quiet[1:]].mean()  # settles in pauses


def test_silence_is_alive_but_closed_mouthed():
    """A take of pure room tone: the face breathes, blinks and drifts; the mouth stays shut."""
    rng = np.random.default_rng(0)
    room_tone = rng.normal(0, 3e-4, 16000 * 12).astype(np.float32)
    track = motion_from_audio(room_tone, 16000, MotionOptions(blink_rate=20))
    assert np.abs(aperture(track)).max() < 0.02 and track.channel("jawOpen").max() < 0.02
    assert track.channel("eyeBlinkLeft").max() > 0.9          # blinks
    assert track.head[:, :3].std(0).max() > 0.2               # micro-motion
    assert np.ptp(track.head[:, 4]) > 0.3                    # breathing lifts the head (mm)
    assert set(track.visemes) == {"sil"}


def test_unknown_language_still_moves_the_mouth(tmp_path, espeak):
    """German speech: the English recogniser's words are wrong, but the mouth follows the voice."""
    wav = tmp_path / "de.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(wav),
                    "Guten Morgen, wie geht es Ihnen heute? Das Wetter ist wunderbar."], check=True)
    samples = load_audio(wav)
    hop = 16000 // 30
    for mode in ("auto", "acoustic"):
        track = motion_from_audio(samples, 16000, MotionOptions(lipsync=mode))
        env = np.array([np.sqrt(np.mean(samples[i * hop:(i + 1) * hop] ** 2)) for i in range(track.n_frames)])
        ap = aperture(track)[: len(env)]
        assert ap.max() > 0.3 and ap.std() > 0.05, mode
        assert np.corrcoef(ap, env)[0, 1] > 0.4, mode
        assert len(set(track.visemes)) >= 5, mode


def test_bad_options_say_what_is_allowed():
    with pytest.raises(OptionsError, match="expressiveness must be between 0 and 2"):
        MotionOptions(expressiveness=5)
    with pytest.raises(OptionsError, match="emotion must be one of neutral, happy"):
        MotionOptions(emotion="bored")
    with pytest.raises(OptionsError, match="fps"):
        MotionOptions(fps=0)


def test_blendshape_index_constant_is_consistent():
    assert BS["jawOpen"] == 17 and BS["tongueOut"] == 51


def test_transcript_with_made_up_words_aligns(tmp_path, espeak):
    """Names outside the dictionary get a letter-to-sound spelling; the lips still close on them."""
    wav = tmp_path / "name.wav"
    espeak_say("Captain Bimbo met Zorblax in Mombasa.", "en-us", wav)
    track = motion_from_audio(load_audio(wav), 16000, MotionOptions(), "Captain Bimbo met Zorblax in Mombasa.")
    closures = np.diff((aperture(track) <= 0.02).astype(int)) == 1
    assert closures.sum() >= 5  # p, b, m(b), m, m(b), b ... at least five separate closures
    assert "PP" in track.visemes and "O" in track.visemes


def test_transcript_that_does_not_match_falls_back_to_recognition(speech, capsys):
    track = motion_from_audio(speech, 16000, MotionOptions(), "Completely different words about kittens.")
    assert aperture(track).max() > 0.3 and "PP" in track.visemes
    assert "transcript_not_aligned" in capsys.readouterr().err


@pytest.mark.slow
def test_long_take_cut_short_of_its_transcript_falls_back_instead_of_crashing(speech, capsys):
    """Over 20 s the words are aligned first over the whole take; when the audio stops before
    the transcript does, that search finds no path, and recognition takes over."""
    take = np.concatenate([speech] * 5)[: 22 * 16000]
    track = motion_from_audio(take, 16000, MotionOptions(), " ".join([TEXT] * 6))
    assert track.duration == pytest.approx(22, abs=0.05)
    assert aperture(track).max() > 0.3 and "PP" in track.visemes


def test_head_nods_on_stressed_syllables(speech, analysis):
    from talkinghead.audio.features import analyze

    feat = analyze(speech)
    near, far = [], []
    for seed in range(6):  # many seeds: nods are tied to the syllables, the rest is random
        track = run(speech, analysis, seed=seed)
        down = np.clip(-np.diff(track.head[:, 1]) * track.fps, 0, None)  # deg/s of chin going down
        t = track.times[1:]
        close = np.zeros(len(t), bool)
        for a in feat.nuclei:
            close |= (t > a - 0.35) & (t < a)
        speaking = feat.at("speech", t).astype(bool)
        near.append(down[close & speaking].mean())
        far.append(down[~close & speaking].mean())
    assert np.mean(near) > 1.5 * np.mean(far), (near, far)


def test_head_drift_is_not_a_sine_wave():
    """A sine's autocorrelation comes back to ~1 every period; drift, once decorrelated, does not."""
    room_tone = np.random.default_rng(1).normal(0, 3e-4, 16000 * 60).astype(np.float32)
    for seed in range(3):
        track = motion_from_audio(room_tone, 16000, MotionOptions(seed=seed))
        for axis in (0, 2):  # yaw, roll (pitch carries the breathing, which is meant to be rhythmic)
            x = track.head[:, axis] - track.head[:, axis].mean()
            ac = np.correlate(x, x, "full")[len(x) - 1:] / (x @ x)
            first_negative = int(np.argmax(ac < 0))
            assert first_negative > 0 and ac[first_negative: len(x) // 2].max() < 0.5, (seed, axis)


def test_brows_lift_on_pitch_accents(speech, analysis):
    from talkinghead.audio.features import analyze

    feat = analyze(speech)
    assert len(feat.accents) >= 2
    track = run(speech, analysis)
    brow = track.channel("browInnerUp")
    t = track.times
    near = np.zeros(len(t), bool)
    for a in feat.accents:
        near |= np.abs(t - a) < 0.3
    speaking = feat.at("speech", t).astype(bool)
    assert brow[near].mean() > 2 * brow[speaking & ~near].mean()


@pytest.mark.slow
def test_progress_is_reported_in_order_through_long_work(speech):
    seen: list[tuple[str, float]] = []
    motion_from_audio(np.tile(speech, 3), 16000, MotionOptions(), None, lambda stage, f: seen.append((stage, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and seen[-1] == ("done", 1.0)
    assert sum(stage == "phones" for stage, _ in seen) >= 2  # per chunk, not only per stage


@pytest.mark.parametrize("samples, rate, words", [
    (np.zeros(16000, np.float32), 0, "sample rate 0 Hz"),
    (np.zeros((2, 16000), np.float32), 16000, "1-D"),
    (np.zeros(0, np.float32), 16000, "empty"),
    (np.full(16000, np.nan, np.float32), 16000, "NaN"),
    ((np.ones(16000) * 1000).astype(np.int16), 16000, "divide 16-bit PCM by 32768"),     # was silently unscaled
    (np.full(16000, 1000.0, np.float32), 16000, "peaks at 1000"),
])
def test_raw_samples_from_the_api_are_checked(samples, rate, words):
    from talkinghead.errors import AudioError

    with pytest.raises(AudioError, match=words):
        motion_from_audio(samples, rate)


def test_any_sample_rate_gives_the_same_motion(speech):
    import soxr

    at_16k = run(speech)
    at_44k = motion_from_audio(soxr.resample(speech, 16000, 44100), 44100, MotionOptions(), TEXT)
    assert at_44k.n_frames == at_16k.n_frames
    assert np.abs(at_44k.channel("jawOpen") - at_16k.channel("jawOpen")).mean() < 0.03


@pytest.mark.parametrize("seconds", [0.05, 0.3, 0.7])
def test_very_short_takes_work(speech, seconds):
    """A single word or an interjection shorter than the smoothing windows."""
    track = motion_from_audio(speech[: int(seconds * 16000)], 16000, MotionOptions())
    assert track.n_frames == int(np.ceil(seconds * 30 - 1e-9))
    assert np.isfinite(track.blendshapes).all() and np.isfinite(track.head).all()


@pytest.mark.slow
def test_same_input_same_output_on_any_call_in_any_thread(speech):
    """The recogniser's decoders are reused per thread: the first call and later ones, in the
    main thread or another, must all give the same motion."""
    import threading

    first = motion_from_audio(speech, 16000, MotionOptions(lipsync="phones"))
    again = motion_from_audio(speech, 16000, MotionOptions(lipsync="phones"))
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("t", [motion_from_audio(speech, 16000, MotionOptions(
        lipsync="phones")) for _ in range(2)]))
    t.start()
    t.join()
    for other in [again, *out["t"]]:
        assert np.array_equal(other.blendshapes, first.blendshapes) and other.visemes == first.visemes
