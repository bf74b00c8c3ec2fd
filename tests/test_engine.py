"""One motion engine for takes and streams: a take is the stream pushed whole (with its future as
lookahead), so the same audio, seed and options give the same life from a file and a stream, and
the lips agree up to the lookahead differences stream.py documents. Analysis apart from animation:
re-animating a take recognises nothing again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from test_motion_stream import as_track
from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.motion import MotionStream, analyze_speech, animate, motion_from_audio, speech
from talkinghead.motion.options import MotionOptions
from talkinghead.track import MotionTrack

HELLO = Path(__file__).parent.parent / "examples" / "hello.flac"
SEEDS = range(8)
MOUTH = [i for i, n in enumerate(BLENDSHAPE_NAMES) if n.startswith(("jaw", "mouth", "tongue", "cheekPuff"))]
LIFE = [i for i in range(len(BLENDSHAPE_NAMES)) if i not in MOUTH]


def streamed(samples: np.ndarray, options: MotionOptions, chunk_s: float = 0.1) -> MotionTrack:
    stream = MotionStream(options)
    step = int(chunk_s * SAMPLE_RATE)
    frames = [f for i in range(0, len(samples), step) for f in stream.push(samples[i: i + step])] + stream.flush()
    return as_track(frames, options.fps)


def blinks(track: MotionTrack) -> int:
    lid = track.channel("eyeBlinkLeft")
    return int(np.sum((lid[1:] >= 0.5) & (lid[:-1] < 0.5)))


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    return load_audio(HELLO)


@pytest.fixture(scope="module")
def hello_analysis(hello):
    return analyze_speech(hello, SAMPLE_RATE, lipsync="model")


@pytest.fixture(scope="module")
def pairs(hello, hello_analysis):
    """(take, stream) tracks of examples/hello.flac for each seed: the take from the phone model's
    visemes, as the stream's lips are."""
    return [(animate(hello_analysis, MotionOptions(seed=s)), streamed(hello, MotionOptions(seed=s))) for s in SEEDS]


def test_silence_gives_the_same_life_from_a_take_a_stream_and_idle():
    room_tone = np.random.default_rng(2).normal(0, 3e-4, SAMPLE_RATE * 6).astype(np.float32)
    options = MotionOptions(seed=5, emotion="happy")
    take = motion_from_audio(room_tone, SAMPLE_RATE, options)
    live = streamed(room_tone, options)
    idle = as_track(MotionStream(options).idle(take.n_frames), options.fps)
    for other in (live, idle):
        assert other.n_frames == take.n_frames
        np.testing.assert_array_equal(other.head, take.head)
        np.testing.assert_array_equal(other.gaze, take.gaze)
        np.testing.assert_array_equal(other.blendshapes[:, LIFE], take.blendshapes[:, LIFE])
    assert take.channel("jawOpen").max() < 0.05 and live.channel("jawOpen").max() < 0.05   # shut, smiling


def test_a_takes_life_carries_on_into_the_streams_idle(hello_analysis):
    """A take played on a stream (what `animate` runs) leaves the stream where the take ended:
    the idle frames after it continue its clock and its head, without a jump."""
    options = MotionOptions(seed=3)
    stream = MotionStream(options)
    take = stream.play(hello_analysis)
    after = stream.idle(30)
    assert after[0].t == take.n_frames / options.fps
    assert np.abs(np.array([after[0].head.yaw, after[0].head.pitch]) - take.head[-1, :2]).max() < 0.5


def test_file_and_stream_agree_on_the_mouth(pairs):
    for take, live in pairs:
        assert take.n_frames == live.n_frames
        jaw_take, jaw_live = take.channel("jawOpen"), live.channel("jawOpen")
        assert np.corrcoef(jaw_take, jaw_live)[0, 1] > 0.9
        assert abs(jaw_take.mean() - jaw_live.mean()) < 0.2 * jaw_take.mean()


def test_file_and_stream_agree_on_life_statistics_over_seeds(pairs):
    """Over 8 seeds: head rotation std per axis within 15 %, blinks within 15 %, gaze spread and
    brows within 20 % (the issue found the stream's head yaw std 1.49 deg against the file's 1.07)."""
    def stats(tracks):
        return {"yaw": np.mean([t.head[:, 0].std() for t in tracks]),
                "pitch": np.mean([t.head[:, 1].std() for t in tracks]),
                "roll": np.mean([t.head[:, 2].std() for t in tracks]),
                "blinks": np.sum([blinks(t) for t in tracks]),
                "gaze": np.mean([np.hypot(t.gaze[:, 0], t.gaze[:, 1]).mean() for t in tracks]),
                "brow": np.mean([t.channel("browInnerUp").mean() for t in tracks])}
    take, live = stats([p[0] for p in pairs]), stats([p[1] for p in pairs])
    print("take", take, "\nlive", live)
    tolerance = {"yaw": 0.15, "pitch": 0.15, "roll": 0.15, "blinks": 0.15, "gaze": 0.2, "brow": 0.2}
    for name, tol in tolerance.items():
        assert abs(live[name] - take[name]) <= tol * take[name], (name, take[name], live[name])


def test_reanimating_recognises_nothing_again(hello_analysis, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("animate ran speech analysis")

    for name in ("analyze", "recognize_phones", "align_transcript", "_model_posteriors"):
        monkeypatch.setattr(speech, name, refuse)
    calm = animate(hello_analysis, MotionOptions(seed=1))
    happy = animate(hello_analysis, MotionOptions(seed=2, emotion="happy", emotion_intensity=1.0))
    assert happy.channel("mouthSmileLeft").mean() > calm.channel("mouthSmileLeft").mean() + 0.2
    np.testing.assert_array_equal(calm.channel("jawOpen"), animate(hello_analysis, MotionOptions(seed=9)).channel("jawOpen"))


def test_the_server_animates_a_clip_again_without_analysing_it_again(serve):
    """A Generate of a clip the server has analysed (another seed, as an artist re-baking a take
    asks) reuses the analysis: the same lips, another life, no worker run."""
    from talkinghead.client import TalkingHeadClient, frames_track

    srv = serve()
    clip = HELLO.read_bytes()
    with TalkingHeadClient(srv.target, timeout=120) as c:
        tracks = [frames_track(*c.generate_all(clip, motion=MotionOptions(seed=s), params_only=True)[:2])
                  for s in (1, 2)]
    assert srv.running.servicer.analyses.hits == 1
    np.testing.assert_array_equal(tracks[0].channel("jawOpen"), tracks[1].channel("jawOpen"))
    assert not np.array_equal(tracks[0].head, tracks[1].head)


def test_the_analysis_cache_lets_the_least_recently_used_go_past_its_bytes(hello_analysis):
    """Room for two analyses: the same clip put twice (two calls that both missed) holds one
    place; a third clip pushes out the least recently used."""
    from talkinghead.server.analyses import AnalysisCache, analysis_bytes

    cache = AnalysisCache(max_bytes=2 * analysis_bytes(hello_analysis))
    for key in ("a", "a", "b"):
        cache.put(key, hello_analysis)
    assert cache.get("a") is hello_analysis and cache.get("b") is hello_analysis
    cache.put("c", hello_analysis)
    assert cache.get("a") is None and cache.get("b") is hello_analysis and cache.get("c") is hello_analysis
