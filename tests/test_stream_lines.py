"""A stream told what its line says (motion.line, MotionStream.begin_line): the text aligned live
over the phone model in languages it never heard, a TTS engine's own viseme / phoneme / word
marks used as they are, and bad lines (unknown language, unreadable marks, text that is not what
the audio says) refused or dropped with a notice. The speech is festival's, with the true phone
timings it used."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from talkinghead.audio import phoneset
from talkinghead.audio.align import FLOOR, WORD_SLACK_S, LiveAligner, Word, align_text, split_words, viterbi
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.phone_model import PhoneModel
from talkinghead.errors import OptionsError
from talkinghead.motion.line import AZURE_VISEMES, POLLY_VISEMES, Line, Mark
from talkinghead.motion.options import MotionOptions
from talkinghead.motion.stream import MotionStream
from talkinghead.track import MotionTrack

from speech import TOLERANCE_S, aperture
from test_align import VOICES, takes  # noqa: F401  (the held-out festival takes fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "phones"))

FPS = 30.0
SENTENCE = "Bob bought a big map, but the pub by the bay was empty."
OTHER = "Seven slow snails crossed the wide road in the rain yesterday afternoon."


def _stream(samples: np.ndarray, line: Line | None = None, **fields) -> tuple[MotionTrack, list]:
    stream = MotionStream(MotionOptions(fps=FPS))
    frames = stream.begin_line(line, **fields) if (line or fields) else []
    step = SAMPLE_RATE // 10
    for i in range(0, len(samples), step):
        frames += stream.push(samples[i: i + step])
    frames += stream.flush()
    track = MotionTrack(fps=FPS, duration=len(frames) / FPS, blendshapes=np.stack([f.blendshapes for f in frames]),
                        head=np.zeros((len(frames), 6), np.float32), gaze=np.zeros((len(frames), 4), np.float32),
                        visemes=[f.viseme for f in frames])
    return track, stream.take_notices()


def _closures(track: MotionTrack, segs, scheme: str) -> tuple[int, int]:
    ap = aperture(track)
    hits = n = 0
    for s in segs:
        if (phoneset.classes_of(s.phone, scheme) or ("?",))[0] in phoneset.BILABIAL:
            w = (track.times >= s.start - TOLERANCE_S) & (track.times <= s.end + TOLERANCE_S)
            hits += bool(w.any() and ap[w].min() <= 0.02)
            n += 1
    return hits, n


@pytest.fixture(scope="module")
def english(festival_line):
    return festival_line(SENTENCE)


def _marks_from(segs, kind: str) -> list[Mark]:
    """The true phones as a TTS engine would report them: visemes in Polly's symbols, or ARPAbet phonemes."""
    polly = {v: k for k, v in POLLY_VISEMES.items() if k not in ("@", "E", "O")}
    out = []
    for s in segs:
        classes = phoneset.classes_of(s.phone, "arpabet") or ("sil",)
        if kind == "phoneme":
            out.append(Mark("phoneme", s.phone, s.start, s.end))
        else:
            out.append(Mark("viseme", polly[phoneset.CLASS_VISEME[classes[0]]], s.start))   # Polly: start only
    return out


# --- marks: the engine's own timings, used as they are --------------------------------------------

@pytest.mark.parametrize("kind", ["viseme", "phoneme"])
def test_marks_drive_the_lips_as_given(english, kind):
    samples, segs, _ = english
    line = Line(marks=tuple(_marks_from(segs, kind)), phoneme_set="arpabet", viseme_set="polly")
    track, notices = _stream(samples, line)
    hits, n = _closures(track, segs, "arpabet")
    assert n >= 8 and hits == n, f"{hits}/{n} closures with {kind} marks"
    # the frame's viseme is the mark's (away from the marks' edges: coarticulation may lead)
    bilabial_frames = [i for i, t in enumerate(track.times) for s in segs
                       if s.phone in ("p", "b", "m") and s.start + 0.02 <= t <= s.end - 0.02]
    assert bilabial_frames and all(track.visemes[i] == "PP" for i in bilabial_frames)
    assert notices == []


def test_azure_viseme_ids_map_to_the_oculus_set():
    assert len(AZURE_VISEMES) == 22
    assert AZURE_VISEMES[21] == "PP" and AZURE_VISEMES[18] == "FF" and AZURE_VISEMES[0] == "sil"
    stream = MotionStream(MotionOptions(fps=FPS))
    stream.begin_line(Line(marks=(Mark("viseme", "21", 0.2, 0.3), Mark("viseme", "2", 0.3, 0.5)), viseme_set="azure"))
    frames = stream.push(np.zeros(SAMPLE_RATE, np.float32) + 1e-4) + stream.flush()
    visemes = {f.viseme for f in frames if 0.22 <= f.t <= 0.28}
    assert visemes == {"PP"}


def test_text_aligned_live_seals_every_closure(english):
    samples, segs, _ = english
    text_track, notices = _stream(samples, text=SENTENCE, language="en")
    hits, n = _closures(text_track, segs, "arpabet")
    assert notices == []
    assert n >= 8 and hits >= n - 1, f"{hits}/{n} closures"


def test_word_marks_hold_each_word_to_its_time(english):
    """A TTS engine's word times (festival's own): each word's phones stay inside its time."""
    samples, segs, words = english
    post = PhoneModel.shared().posteriors(samples)
    aligner = LiveAligner([Word(w.phone, w.start, w.end) for w in words], "en")
    for i in range(0, len(post), 10):
        aligner.hear(post[i: i + 10])
    aligner.hear(post[:0], final=True)
    assert not aligner.failed, aligner.reason
    t = (np.arange(len(aligner.committed)) + 0.5) / 100
    owner = aligner.owner[aligner.committed]
    for k, w in enumerate(words):
        inside = t[owner == k]
        assert len(inside) and inside.min() >= w.start - WORD_SLACK_S and inside.max() <= w.end + WORD_SLACK_S, w


def test_word_marks_drive_the_stream(english):
    samples, segs, words = english
    line = Line(marks=tuple(Mark("word", w.phone, w.start) for w in words))   # Polly: start times only
    track, notices = _stream(samples, line)
    hits, n = _closures(track, segs, "arpabet")
    assert notices == [] and n >= 8 and hits >= n - 1, f"{hits}/{n} closures"


# --- text in languages the model never heard ------------------------------------------------------

@pytest.mark.parametrize("lang", sorted(VOICES))
def test_live_text_alignment_in_a_held_out_language(takes, lang):  # noqa: F811
    if lang not in takes:
        pytest.skip(f"festival voice {VOICES[lang]} not installed (scripts/test.sh installs it)")
    hits = n = audio_hits = 0
    for samples, segs, scheme, text in takes[lang]:
        pad = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
        shifted = [type(s)(s.phone, s.start + 0.3, s.end + 0.3) for s in segs]
        audio = np.concatenate([pad, samples, pad])
        track, notices = _stream(audio, text=text, language=lang)
        assert notices == [], notices
        h, k = _closures(track, shifted, scheme)
        hits, n = hits + h, n + k
        audio_hits += _closures(_stream(audio)[0], shifted, scheme)[0]
    assert n >= 4 and hits >= 0.85 * n, f"{lang}: {hits}/{n} closures with the text"
    assert hits >= audio_hits, f"{lang}: the text made the lips worse ({hits} vs {audio_hits} of {n})"


def test_live_alignment_agrees_with_the_offline_one(takes):  # noqa: F811
    """Streaming equals offline where the lag allows: the live committed path against the
    whole-take Viterbi over the same states and posteriors."""
    if not takes:
        pytest.skip("no held-out festival voice installed")
    agree = []
    for lang, items in takes.items():
        for samples, _, _, text in items:
            post = PhoneModel.shared().posteriors(samples)
            live = LiveAligner(split_words(text), lang)
            for i in range(0, len(post), 10):
                live.hear(post[i: i + 10])
            live.hear(post[:0], final=True)
            offline = viterbi(np.log(np.maximum(post, FLOOR)), list(zip(live.cls, live.optional)))
            agree.append(np.mean(live.cls[live.committed] == live.cls[offline]))
            assert align_text(post, text, lang) is not None
    assert np.mean(agree) >= 0.85, agree


# --- bad lines -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, language", [
    ("Il gatto dorme sul divano mentre la pioggia cade lenta sulla città.", "it"),   # another language's line
    ("Good morning to you.", "en"),                                                  # a much shorter line
])
def test_text_that_is_not_what_was_said_is_dropped_with_a_notice(english, text, language):
    samples, segs, _ = english
    wrong, notices = _stream(samples, text=text, language=language)
    assert len(notices) == 1 and ("does not match" in notices[0][0] or "goes on after" in notices[0][0]), notices
    audio_only, _ = _stream(samples)
    # once the text is dropped the lips are the audio-only ones again (after the coarticulation window)
    after = int(notices[0][1]) + 10
    if after < len(audio_only.times):
        assert np.abs(wrong.blendshapes[after:] - audio_only.blendshapes[after:]).max() < 0.05


def test_empty_text_or_auto_language_means_audio_only(english):
    samples, _, _ = english
    audio_only, _ = _stream(samples)
    for fields in ({"text": "  ,. "}, {"text": SENTENCE, "language": "auto"}):
        track, notices = _stream(samples, **fields)
        assert notices == []
        np.testing.assert_allclose(track.blendshapes, audio_only.blendshapes, atol=1e-6)


@pytest.mark.parametrize("line, words", [
    (dict(text="hola", language="xx-nonsense"), "espeak-ng"),
    (dict(marks=(Mark("viseme", "QQ", 0.1),)), "oculus visemes"),
    (dict(marks=(Mark("viseme", "99", 0.1),), viseme_set="azure"), "azure visemes"),
    (dict(marks=(Mark("viseme", "PP", -1.0),)), "seconds from the line"),
    (dict(marks=(Mark("word", "hi", 0.5, 0.2),)), "end >= start"),
    (dict(marks=(Mark("viseme", "PP", float("nan")),)), "seconds from the line"),
    (dict(marks=(Mark("blink", "x", 0.1),)), "kind must be"),
    (dict(viseme_set="disney"), "viseme_set"),
])
def test_bad_lines_are_refused_with_a_sentence(line, words):
    stream = MotionStream(MotionOptions(fps=FPS))
    with pytest.raises(OptionsError, match=words):
        stream.begin_line(**line)


def test_begin_line_ends_the_open_line():
    stream = MotionStream(MotionOptions(fps=FPS))
    tone = (0.1 * np.sin(np.arange(SAMPLE_RATE) / SAMPLE_RATE * 2 * np.pi * 180)).astype(np.float32)
    sent = stream.push(tone)
    flushed = stream.begin_line(text="hello there")
    assert len(sent) + len(flushed) == MotionTrack.frame_count(1.0, FPS)
    assert stream.begin_line(text="again") == []     # nothing open: nothing to flush


# --- the same marks for a file --------------------------------------------------------------------

def test_a_file_with_marks_has_the_streams_visemes(english, tmp_path):
    """`params --marks`: a take's lips from the engine's marks are the stream's (the same segments;
    only the stream's rounding rate and ease-in differ, not the visemes)."""
    import json

    from cli_run import talkinghead
    import soundfile as sf

    samples, segs, _ = english
    marks = _marks_from(segs, "viseme")
    polly = tmp_path / "line.marks"
    polly.write_text("\n".join(json.dumps({"time": round(m.start * 1000), "type": "viseme", "value": m.value})
                               for m in marks))
    wav = tmp_path / "line.wav"
    sf.write(wav, samples, SAMPLE_RATE)
    done = talkinghead("params", "--audio", str(wav), "--marks", str(polly), "-o", str(tmp_path / "take.json"))
    assert done.returncode == 0, done.stderr
    offline = [f["viseme"] for f in json.loads((tmp_path / "take.json").read_text())["frames"]]
    live, _ = _stream(samples, Line(marks=tuple(Mark("viseme", m.value, round(m.start * 1000) / 1000) for m in marks),
                                    viseme_set="polly"))
    assert len(offline) == len(live.visemes)
    assert np.mean(np.array(offline) == np.array(live.visemes)) >= 0.97
    (tmp_path / "bad.marks").write_text('{"time": "soon"}')
    bad = talkinghead("params", "--audio", str(wav), "--marks", str(tmp_path / "bad.marks"), "-o", str(tmp_path / "b.json"))
    assert bad.returncode == 2 and "not a marks file" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("rows", [1, 3, 10])
def test_the_reversed_reference_hears_every_row_however_they_come(english, rows):
    """The fit is judged against the text's phones reversed, aligned beside it: that reference
    must hear the same frames as the text's path, in calls of any size (a stream of 20 ms chunks
    gives the aligner a few rows at a time)."""
    samples, _, _ = english
    post = PhoneModel.shared().posteriors(samples)
    live = LiveAligner(split_words(SENTENCE), "en")
    for i in range(0, len(post), rows):
        live.hear(post[i: i + rows])
    live.hear(post[:0], final=True)
    reference = live._reference
    assert len(live.committed) == len(reference.committed) == len(post)
    assert reference.surprise() - live.surprise() > 0.5    # the right text fits far better than reversed
