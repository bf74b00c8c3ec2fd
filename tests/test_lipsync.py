"""Lip sync against true phone timings: festival speaks and writes the exact phone times it used."""

from __future__ import annotations

import numpy as np
import pytest

from speech import FESTIVAL_VOICES, aperture, festival_say, have_festival, score
from talkinghead.audio.decode import load_audio
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions

pytestmark = pytest.mark.skipif(not have_festival(), reason="needs Debian's festival (scripts/test.sh installs it)")

SENTENCES = [
    "Bob bought a big map, but the pub by the bay was empty.",
    "You knew the moon would move over the blue pool.",
    "My mother made a warm apple pie for Paul.",
    "Please bring me the probe. We must be home by nine.",
]


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    """(voice, text, samples, true segments) for every voice and sentence, with 0.8 s of silence around."""
    tmp = tmp_path_factory.mktemp("festival")
    out = []
    for voice in FESTIVAL_VOICES:
        for i, text in enumerate(SENTENCES):
            wav = tmp / f"{voice}_{i}.wav"
            segs = festival_say(text, voice, wav, pad=0.8)
            out.append((voice, text, load_audio(wav), segs))
    return out


def _totals(takes, with_text: bool, fps: float = 30.0) -> dict[str, tuple[int, int]]:
    acc: dict[str, list[int]] = {}
    for _voice, text, samples, segs in takes:
        track = motion_from_audio(samples, 16000, MotionOptions(fps=fps), text if with_text else None)
        for check, (hit, n) in score(track, segs).items():
            acc.setdefault(check, [0, 0])
            acc[check][0] += hit
            acc[check][1] += n
    return {k: (v[0], v[1]) for k, v in acc.items()}


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_with_transcript_every_bilabial_closes_and_vowels_shape(takes, fps):
    res = _totals(takes, with_text=True, fps=fps)
    assert res["closure"][1] >= 30 and res["closure"][0] == res["closure"][1], res
    assert res["open"][0] >= 0.9 * res["open"][1], res
    assert res["round"][0] >= 0.95 * res["round"][1], res
    assert res["silence"][1] >= 20 and res["silence"][0] == res["silence"][1], res


def test_without_transcript_recognised_phones_are_mostly_right(takes):
    res = _totals(takes, with_text=False)
    assert res["closure"][0] >= 0.75 * res["closure"][1], res
    assert res["open"][0] >= 0.85 * res["open"][1], res
    assert res["round"][0] >= 0.8 * res["round"][1], res
    assert res["silence"][0] == res["silence"][1], res


def test_mouth_opening_follows_the_audio_envelope(takes):
    """Aperture correlates with loudness: the mouth moves with the voice, not on its own."""
    _voice, text, samples, _segs = takes[0]
    track = motion_from_audio(samples, 16000, MotionOptions(), text)
    hop = 16000 // 30
    env = np.array([np.sqrt(np.mean(samples[i * hop:(i + 1) * hop] ** 2)) for i in range(track.n_frames)])
    r = np.corrcoef(aperture(track)[: len(env)], env)[0, 1]
    assert r > 0.4, r


def test_no_chatter_between_frames(takes):
    """The mouth does not flicker: few direction reversals of the jaw relative to syllables."""
    _voice, text, samples, segs = takes[1]
    track = motion_from_audio(samples, 16000, MotionOptions(fps=60), text)
    jaw = track.channel("jawOpen")
    d = np.diff(jaw)
    d = d[np.abs(d) > 1e-3]
    reversals = int(np.sum(np.sign(d[1:]) != np.sign(d[:-1])))
    phones = sum(1 for s in segs if s.phone != "pau")
    assert reversals <= 1.2 * phones, (reversals, phones)
    assert np.abs(np.diff(jaw)).max() < 0.35  # no jump larger than a third of the range in 1/60 s


def test_loudness_scales_articulation(takes):
    _voice, text, samples, _segs = takes[0]
    loud = motion_from_audio(samples, 16000, MotionOptions(), text)
    quiet = motion_from_audio(samples * 0.5, 16000, MotionOptions(), text)  # same speech 6 dB down
    # relative loudness is per recording; a whisper-to-shout contrast inside one take is what counts:
    mixed = np.concatenate([samples * 0.25, samples])
    both = motion_from_audio(mixed, 16000, MotionOptions(), text + " " + text)
    n = len(samples) * 30 // 16000
    assert np.allclose(loud.channel("jawOpen"), quiet.channel("jawOpen"), atol=0.05)
    assert both.channel("jawOpen")[:n].max() < 0.8 * both.channel("jawOpen")[n:].max()


def test_lower_lip_meets_the_teeth_on_f_and_v(takes):
    n = 0
    for _voice, text, samples, segs in takes:
        track = motion_from_audio(samples, 16000, MotionOptions(), text)
        for s in segs:
            if s.phone in ("f", "v"):
                w = (track.times >= s.start - 0.04) & (track.times <= s.end + 0.04)
                assert track.channel("mouthRollLower")[w].max() >= 0.5, (text, s)
                assert aperture(track)[w].min() <= 0.15, (text, s)
                n += 1
    assert n >= 6


def test_lips_round_ahead_of_rounded_vowels(takes):
    """Anticipatory rounding: 60 ms before an oo/ow/w starts, the lips are already rounding."""
    early = []
    for _voice, text, samples, segs in takes:
        track = motion_from_audio(samples, 16000, MotionOptions(fps=60), text)
        rounding = track.channel("mouthPucker") + track.channel("mouthFunnel")
        for prev, s in zip(segs, segs[1:]):
            if s.phone in ("uw", "ow", "w") and prev.phone not in ("uw", "ow", "w", "pau"):
                before = rounding[np.argmin(np.abs(track.times - (s.start - 0.06)))]
                peak = rounding[(track.times >= s.start) & (track.times <= s.end)].max()
                early.append(before / max(peak, 1e-6))
    assert len(early) >= 10
    assert np.median(early) > 0.3, early
