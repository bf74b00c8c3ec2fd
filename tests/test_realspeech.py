"""Real human speech (LibriVox read by a person): the audio-only recogniser against the
reference alignment of the true transcript."""

from __future__ import annotations

import numpy as np
import pytest

from realspeech import ARPABET_SETS, Unavailable, librivox
from speech import aperture, score
from talkinghead.audio.decode import load_audio
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions

pytestmark = pytest.mark.slow   # real recordings through recognition


@pytest.fixture(scope="module")
def recordings():
    try:
        return librivox()
    except Unavailable as exc:  # no network: nothing to test against, but say so
        pytest.skip(str(exc))


def test_real_speech_audio_only_finds_the_closures_the_transcript_has(recordings):
    acc = {}
    for rec in recordings:
        track = motion_from_audio(load_audio(rec.wav), 16000, MotionOptions(), None)
        for check, (hit, n) in score(track, rec.segs, ARPABET_SETS).items():
            acc.setdefault(check, [0, 0])
            acc[check][0] += hit
            acc[check][1] += n
    assert acc["closure"][1] >= 25 and acc["closure"][0] >= 0.85 * acc["closure"][1], acc
    assert acc["open"][0] >= 0.8 * acc["open"][1], acc
    assert acc["no_false_closure"][0] >= 0.9 * acc["no_false_closure"][1], acc


def test_real_speech_with_transcript_follows_the_voice(recordings):
    for rec in recordings:
        samples = load_audio(rec.wav)
        track = motion_from_audio(samples, 16000, MotionOptions(), rec.text)
        res = score(track, rec.segs, ARPABET_SETS)
        assert res["closure"][0] == res["closure"][1], (rec.wav.name, res)
        hop = 16000 // 30
        env = np.array([np.sqrt(np.mean(samples[i * hop:(i + 1) * hop] ** 2)) for i in range(track.n_frames)])
        assert np.corrcoef(aperture(track)[: len(env)], env)[0, 1] > 0.3, rec.wav.name
