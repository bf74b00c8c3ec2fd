"""Speech analysis for a take: `analyze_speech(samples, rate, transcript, lipsync, language) ->
SpeechAnalysis` — the features (loudness, voice activity, pitch, syllable nuclei and accents) and
the viseme segments, the part that recognises or aligns speech. `motion.animate` turns one into
motion as often as wanted (another seed or emotion) without recognising anything again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import soxr
import structlog

from talkinghead.audio import espeak
from talkinghead.audio.align import align_text
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.audio.features import HOP, SpeechFeatures, analyze, speech_chunks, true_runs
from talkinghead.audio.phone_model import PhoneModel
from talkinghead.audio.phoneset import CLASS_VISEME
from talkinghead.audio.phones import (PhoneSegment, align_transcript, recognize_phone_loop, recognize_phones,
                                     transcript_fits)
from talkinghead.errors import AudioError, OptionsError
from talkinghead.motion.acoustic import visemes_from_acoustics
from talkinghead.motion.line import Line, lip_source
from talkinghead.motion.lips import VisemeSegment, visemes_from_phones
from talkinghead.motion.options import LIPSYNC_MODES
from talkinghead.motion.posteriors import visemes_from_posteriors

log = structlog.get_logger(__name__)

MIN_RATE, MAX_RATE = 4000, 384000  # Hz: below this there is no speech band; above, a mistake
UNCOVERED_SPEECH_S = 0.25   # speech this long with no recognised phone gets the phone model's visemes
# English audio-only lips in "auto" mode: "model" (the project's phone model) or "phones" (pocketsphinx's
# recognition), whichever measured better on real speech (benchmarks/lipsync_accuracy.py, README):
# pocketsphinx, class score 0.92 against the model's 0.70 on the real recordings (0.80 against 0.70
# on held-out voices; re-decided with the second model, 2026-12-06: the realspeech recordings alone,
# whose reference is not pocketsphinx's, give the same answer); the model fills what pocketsphinx
# leaves uncovered.
AUDIO_ONLY = "phones"
MODEL_CHUNK_S = 10.0        # the phone model reports progress per this much audio

Progress = Callable[[str, float], None]   # (stage name, fraction done 0..1)


@dataclass(frozen=True)
class SpeechAnalysis:
    """What a take's audio says, apart from how a face moves to it.

    duration: seconds of audio (at audio.decode.SAMPLE_RATE); features: per 10 ms frame;
    segments: the visemes, in seconds from the take's start, time-ordered.
    """

    duration: float
    features: SpeechFeatures
    segments: tuple[VisemeSegment, ...]


def analyze_speech(samples: np.ndarray, rate: int, transcript: str | None = None, lipsync: str = "auto",
                   language: str = "en", progress: Progress | None = None,
                   marks: Line | None = None) -> SpeechAnalysis:
    """samples: float32 mono, shape = (n,), at `rate` Hz; transcript: its words, if known;
    lipsync: one of options.LIPSYNC_MODES; language: ISO code of the speech ("auto": no text used).
    progress(stage, fraction) is called as the work goes (stages "features", "phones").
    marks: a TTS engine's own timings for the take (motion.line.Line): its visemes or phonemes are
    the lips as they are; its word times hold the transcript's alignment over the phone model."""
    report = progress or (lambda stage, frac: None)
    if lipsync not in LIPSYNC_MODES:
        raise OptionsError(f"lipsync must be one of {', '.join(LIPSYNC_MODES)}, got {lipsync!r}")
    samples = _checked(samples, rate)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)
    report("features", 0.0)
    feat = analyze(samples)
    report("phones", 0.2)
    if marks is not None and marks.marks:
        segments = _marked(samples, marks)
    else:
        segments = _viseme_segments(samples, feat, lipsync, language, transcript,
                                    lambda f: report("phones", 0.2 + 0.5 * f))
    return SpeechAnalysis(len(samples) / SAMPLE_RATE, feat, tuple(segments))


def _marked(samples: np.ndarray, line: Line) -> list[VisemeSegment]:
    """Lips from a TTS engine's marks: its visemes or phonemes as given, else its words aligned
    over the phone model (the stream's lip source, told the whole take at once)."""
    source = lip_source(line)
    post = _model_posteriors(samples)
    source.hear(post, final=True)
    if source.notice:
        log.warning("motion.transcript_not_aligned", hint=f"{source.notice}; using the phone model's audio-only "
                    "visemes instead")
    return source.segments(post, 0)


def _checked(samples: np.ndarray, rate: int) -> np.ndarray:
    """Raw samples from an API caller (the CLI's come through load_audio, already checked)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"sample rate {rate} Hz is not usable: pass the rate the samples were recorded "
                         f"at, between {MIN_RATE} and {MAX_RATE} Hz")
    samples = checked_samples(samples, "audio")
    if samples.size == 0:
        raise AudioError("the audio is empty: pass at least one sample of speech or silence")
    return samples


MAX_AMPLITUDE = 16.0        # |sample| above this is integer PCM passed unscaled, not audio in -1..1


def checked_samples(samples: np.ndarray, what: str) -> np.ndarray:
    """API samples (a take or a stream's chunk) as float32, shape = (n,); AudioError, saying what
    to do, for integer PCM (scaled or not), more than one channel, NaN/inf or unscaled values."""
    x = np.asarray(samples)
    if x.dtype.kind != "f":
        hint = " (divide 16-bit PCM by 32768)" if x.dtype.kind in "iu" else ""
        raise AudioError(f"{what} has dtype {x.dtype}: pass float32 samples between -1 and 1{hint}")
    if x.ndim != 1:
        raise AudioError(f"{what} has shape {x.shape}: pass mono samples as a 1-D array (average the channels first)")
    x = x.astype(np.float32, copy=False)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if not np.isfinite(peak):
        raise AudioError(f"the {what} contains NaN or infinite samples: pass finite values between -1 and 1")
    if peak > MAX_AMPLITUDE:
        raise AudioError(f"the {what} peaks at {peak:.0f}: pass samples scaled to -1..1 (divide 16-bit PCM by 32768)")
    return x


def _viseme_segments(samples: np.ndarray, feat: SpeechFeatures, lipsync: str, language: str,
                     transcript: str | None, progress: Callable[[float], None]) -> list[VisemeSegment]:
    if lipsync == "acoustic" or not feat.speech.any():
        return visemes_from_acoustics(feat)
    has_text = bool(transcript and transcript.strip()) and language != "auto"
    english = language.lower().startswith("en")
    # the model's aligner for every language but English, and for English too under --lipsync model
    # (pocketsphinx's aligner otherwise: benchmarks/lipsync_accuracy.py compares the two)
    if has_text and (lipsync == "model" or not english):
        post = _model_posteriors(samples)
        aligned = _model_aligned(post, transcript, language)
        if aligned is not None:
            return aligned
        # the audio-only lips this option and language give without a transcript: the model's
        return visemes_from_posteriors(post)
    if lipsync == "model":
        return _model_visemes(samples, progress=progress)
    phones = _aligned(samples, feat, transcript, progress) if has_text else None
    source = "transcript"
    other_language = language != "auto" and not english
    if phones is None and lipsync == "auto" and (AUDIO_ONLY == "model" or other_language):
        # the model: English where AUDIO_ONLY says so; other languages always (chosen on the DEV
        # voices, benchmarks/dev_voices.py: 20 MBROLA voices in 16 languages besides English, never
        # trained on: class score 0.76 with 3 false closures of 256 vowels, against 0.70 and 11 for
        # the model and pocketsphinx fused, the default until stop 25, and 0.67 and 12 for pocketsphinx)
        log.debug("motion.phones", source="model")
        return _model_visemes(samples, progress=progress)
    if phones is None:
        source = "recognized"
        phones = _recognize_in_chunks(samples, feat, progress)
    segments = visemes_from_phones(phones)
    if lipsync == "auto":
        segments = _fill_uncovered(segments, feat, samples)
    log.debug("motion.phones", source=source, phones=len(phones))
    return segments


def _aligned(samples: np.ndarray, feat: SpeechFeatures, transcript: str,
             progress: Callable[[float], None]) -> list[PhoneSegment] | None:
    phones = align_transcript(samples, transcript, lambda f: progress(0.7 * f))
    if phones is not None and transcript_fits(phones, recognize_phone_loop(samples), feat.speech):
        return phones
    log.warning("motion.transcript_not_aligned", hint="the transcript does not seem to match the audio; "
                "using phones recognised from the audio instead")
    return None


def _recognize_in_chunks(samples: np.ndarray, feat: SpeechFeatures,
                         progress: Callable[[float], None]) -> list[PhoneSegment]:
    phones: list[PhoneSegment] = []
    chunks = speech_chunks(feat.speech)
    for i, (start, end) in enumerate(chunks):
        progress(i / len(chunks))
        chunk = samples[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
        if feat.speech[int(start / HOP): int(end / HOP)].any():
            phones += [PhoneSegment(p.phone, p.start + start, p.end + start) for p in recognize_phones(chunk)]
    return phones


def _model_visemes(samples: np.ndarray, spans: list[tuple[float, float]] | None = None,
                   progress: Callable[[float], None] | None = None) -> list[VisemeSegment]:
    """The phone model's visemes for the whole take, or only those overlapping `spans` (s)."""
    segs = visemes_from_posteriors(_model_posteriors(samples, progress))
    if spans is None:
        return segs
    return [s for s in segs if any(s.start < b and s.end > a for a, b in spans)]


def _model_posteriors(samples: np.ndarray, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Whole-take posteriors, run as a stream of MODEL_CHUNK_S pieces (the same rows) to report progress."""
    stream = PhoneModel.shared().stream()
    step = int(MODEL_CHUNK_S * SAMPLE_RATE)
    rows = []
    for i in range(0, len(samples), step):
        if progress:
            progress(i / len(samples))
        rows.append(stream.push(samples[i: i + step]))
    return np.concatenate(rows + [stream.finish()])


def _model_aligned(post: np.ndarray, transcript: str, language: str) -> list[VisemeSegment] | None:
    """A transcript (any language espeak-ng speaks) aligned over the phone model's posteriors;
    None, with a warning, where it does not fit the audio."""
    try:
        phones = align_text(post, transcript, language)
    except espeak.UnknownLanguage:
        raise OptionsError(f"language {language!r} is not one espeak-ng speaks: use an ISO code such as it, fi, "
                           "de, fr, or auto") from None
    if phones is None:
        log.warning("motion.transcript_not_aligned", language=language, hint="the transcript does not seem to "
                    "match the audio; using the audio-only visemes instead")
        return None
    return [VisemeSegment(CLASS_VISEME[p.phone], p.start, p.end) for p in phones]


def _fill_uncovered(segments: list[VisemeSegment], feat: SpeechFeatures, samples: np.ndarray) -> list[VisemeSegment]:
    """Speech the recogniser called silence (another language, noise, singing) gets the phone model's visemes."""
    covered = np.zeros(len(feat.speech), bool)
    for s in segments:
        if s.viseme != "sil":
            covered[int(s.start / HOP): int(np.ceil(s.end / HOP))] = True
    gaps = [(a * HOP, b * HOP) for a, b in true_runs(feat.speech & ~covered) if (b - a) * HOP >= UNCOVERED_SPEECH_S]
    if not gaps:
        return segments
    filled = np.zeros(len(feat.speech), bool)
    for a, b in gaps:
        filled[int(a / HOP): int(b / HOP)] = True
    # the recogniser's silences over the filled gaps give way to the acoustic visemes
    kept = [s for s in segments if s.viseme != "sil" or not filled[int(s.start / HOP): int(np.ceil(s.end / HOP))].any()]
    extra = [s for s in _model_visemes(samples, gaps) if s.viseme != "sil"]
    return sorted(kept + extra, key=lambda s: s.start)
