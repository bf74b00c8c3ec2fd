"""Lip sync against true phone timings: festival and espeak-ng speak and report the exact phone
times they used (festival's utt.save.segs; espeak-ng's phoneme events, see espeak_timed.py)."""

from __future__ import annotations

import numpy as np
import pytest

from espeak_timed import have_espeak_lib
from speech import FESTIVAL_SPREAD_VOWELS, FESTIVAL_VOWELS, aperture, have_festival, score, synth_takes
from talkinghead.audio.decode import load_audio
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions

pytestmark = [pytest.mark.slow,   # every festival voice through recognition
              pytest.mark.skipif(not (have_festival() and have_espeak_lib()),
                                 reason="needs Debian's festival and espeak-ng (scripts/test.sh installs them)")]

SENTENCES = [
    "Bob bought a big map, but the pub by the bay was empty.",
    "You knew the moon would move over the blue pool.",
    "My mother made a warm apple pie for Paul.",
    "Please bring me the probe. We must be home by nine.",
]


@pytest.fixture(scope="module")
def takes(tmp_path_factory):
    """(voice, text, samples, true segments, phone sets) for every voice and sentence, with 0.8 s
    of room tone around each."""
    tmp = tmp_path_factory.mktemp("speech")
    return [(t.voice, t.text, load_audio(t.wav), t.segs, t.sets) for t in synth_takes(SENTENCES, tmp)]


def _totals(takes, with_text: bool, fps: float = 30.0, voices: str = "") -> dict[str, tuple[int, int]]:
    acc: dict[str, list[int]] = {}
    for voice, text, samples, segs, sets in takes:
        if not voice.startswith(voices):
            continue
        track = motion_from_audio(samples, 16000, MotionOptions(fps=fps), text if with_text else None)
        for check, (hit, n) in score(track, segs, sets).items():
            acc.setdefault(check, [0, 0])
            acc[check][0] += hit
            acc[check][1] += n
    return {k: (v[0], v[1]) for k, v in acc.items()}


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_with_transcript_every_bilabial_closes_and_vowels_shape(takes, fps):
    res = _totals(takes, with_text=True, fps=fps)
    assert res["closure"][1] >= 100 and res["closure"][0] == res["closure"][1], res
    assert res["open"][0] >= 0.85 * res["open"][1], res
    assert res["round"][0] >= 0.95 * res["round"][1], res
    assert res["silence"][1] >= 40 and res["silence"][0] == res["silence"][1], res
    assert res["no_false_closure"][0] >= 0.95 * res["no_false_closure"][1], res


def test_without_transcript_recognised_phones_are_mostly_right(takes):
    res = _totals(takes, with_text=False)
    assert res["closure"][0] >= 0.7 * res["closure"][1], res
    assert res["open"][0] >= 0.8 * res["open"][1], res
    assert res["round"][0] >= 0.8 * res["round"][1], res
    assert res["silence"][0] == res["silence"][1], res
    assert res["no_false_closure"][0] >= 0.9 * res["no_false_closure"][1], res
    natural = _totals(takes, with_text=False, voices="cmu_us_slt")  # the most natural voice here
    assert natural["closure"][0] >= 0.85 * natural["closure"][1], natural


def test_mouth_opening_follows_the_audio_envelope(takes):
    """Aperture correlates with loudness: the mouth moves with the voice, not on its own."""
    _voice, text, samples, _segs, _sets = takes[0]
    track = motion_from_audio(samples, 16000, MotionOptions(), text)
    hop = 16000 // 30
    env = np.array([np.sqrt(np.mean(samples[i * hop:(i + 1) * hop] ** 2)) for i in range(track.n_frames)])
    r = np.corrcoef(aperture(track)[: len(env)], env)[0, 1]
    assert r > 0.4, r


def test_no_chatter_between_frames(takes):
    """The mouth does not flicker: few direction reversals of the jaw relative to syllables."""
    _voice, text, samples, segs, _sets = takes[1]
    track = motion_from_audio(samples, 16000, MotionOptions(fps=60), text)
    jaw = track.channel("jawOpen")
    d = np.diff(jaw)
    d = d[np.abs(d) > 1e-3]
    reversals = int(np.sum(np.sign(d[1:]) != np.sign(d[:-1])))
    phones = sum(1 for s in segs if s.phone != "pau")
    assert reversals <= 1.2 * phones, (reversals, phones)
    assert np.abs(np.diff(jaw)).max() < 0.35  # no jump larger than a third of the range in 1/60 s


def test_loudness_scales_articulation(takes):
    _voice, text, samples, _segs, _sets = takes[0]
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
    for _voice, text, samples, segs, _sets in takes:
        track = motion_from_audio(samples, 16000, MotionOptions(), text)
        for s in segs:
            if s.phone in ("f", "v"):  # the same symbols in festival and espeak-ng
                w = (track.times >= s.start - 0.04) & (track.times <= s.end + 0.04)
                assert track.channel("mouthRollLower")[w].max() >= 0.5, (text, s)
                assert aperture(track)[w].min() <= 0.15, (text, s)
                n += 1
    assert n >= 6


def test_lips_round_ahead_of_rounded_vowels(takes):
    """Anticipatory rounding: 60 ms before an oo/ow/w that follows a consonant starts, the lips
    are already rounding (an oo/ow/w after a vowel: the next test)."""
    early = []
    for voice, text, samples, segs, _sets in takes:
        if voice.startswith("espeak"):
            continue  # espeak's phoneme names differ; festival's uw/ow/w suffice here
        track = motion_from_audio(samples, 16000, MotionOptions(fps=60), text)
        rounding = track.channel("mouthPucker") + track.channel("mouthFunnel")
        for prev, s in zip(segs, segs[1:]):
            if s.phone in ("uw", "ow", "w") and prev.phone not in FESTIVAL_VOWELS | {"w", "pau"}:
                before = rounding[np.argmin(np.abs(track.times - (s.start - 0.06)))]
                peak = rounding[(track.times >= s.start) & (track.times <= s.end)].max()
                early.append(before / max(peak, 1e-6))
    assert len(early) >= 10
    assert np.median(early) > 0.2, early


def test_rounding_does_not_spread_into_the_vowel_before(takes):
    """Henke's look-ahead: an ee/eh/ah just before an oo/ow/w (within 0.15 s) keeps its lips
    spread or open; the rounding starts on the consonants after it."""
    spread = []
    for voice, text, samples, segs, _sets in takes:
        if voice.startswith("espeak"):
            continue
        track = motion_from_audio(samples, 16000, MotionOptions(fps=60), text)
        rounding = track.channel("mouthPucker") + track.channel("mouthFunnel")
        for v in [s for s in segs if s.phone in FESTIVAL_SPREAD_VOWELS and s.end - s.start >= 0.06]:
            nxt = [s for s in segs if s.phone in ("uw", "ow", "w") and 0 < s.start - v.end <= 0.15]
            if nxt:
                mid = rounding[np.argmin(np.abs(track.times - (v.start + v.end) / 2))]
                peak = rounding[(track.times >= nxt[0].start) & (track.times <= nxt[0].end)].max()
                spread.append(mid / max(peak, 1e-6))
    assert len(spread) >= 5, spread
    assert np.median(spread) < 0.15 and np.max(spread) < 0.4, spread


def test_long_take_is_aligned_phrase_by_phrase(takes):
    """Over ALIGN_CHUNK_S the transcript is aligned in phrases; closures must still land."""
    from speech import Seg
    from talkinghead.audio.phones import ALIGN_CHUNK_S

    festival = [t for t in takes if not t[0].startswith("espeak")]
    samples, segs, texts, offset = [], [], [], 0.0
    for _voice, text, x, take_segs, _sets in festival:
        samples.append(x)
        segs += [Seg(s.phone, s.start + offset, s.end + offset) for s in take_segs]
        texts.append(text)
        offset += len(x) / 16000
    assert offset > 2 * ALIGN_CHUNK_S
    track = motion_from_audio(np.concatenate(samples), 16000, MotionOptions(), " ".join(texts))
    res = score(track, segs, festival[0][4])
    assert res["closure"][1] >= 90 and res["closure"][0] == res["closure"][1], res
    assert res["silence"][0] == res["silence"][1], res
