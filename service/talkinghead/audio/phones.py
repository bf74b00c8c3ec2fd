"""Phones from speech with pocketsphinx: free phone recognition, or forced alignment of a transcript.

Both return `PhoneSegment`s in seconds with ARPAbet phone names as pocketsphinx's US-English
model writes them (AA AE ... ZH, plus SIL for silence and noise).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import structlog
from pocketsphinx import Decoder, get_model_path

from talkinghead.audio.decode import SAMPLE_RATE

log = structlog.get_logger(__name__)

FRAME_RATE = 100  # pocketsphinx frames per second (10 ms hop)
HOP_SAMPLES = SAMPLE_RATE // FRAME_RATE
HOP = 1 / FRAME_RATE  # seconds per frame: the feature frames' too (features.HOP), so masks line up
ALIGN_CHUNK_S = 20.0  # phone-level alignment runs on phrases up to this long

# Phone-loop decoding: the pocketsphinx phoneme-recognition docs' wide beams, with a language-model
# weight of 1 (not their 2): on festival speech with true timings it found 85% of p/b/m closures
# against 78% (benchmarks/lipsync_accuracy.py).
ALLPHONE_CONFIG = dict(lw=1.0, pip=1.0, beam=1e-200, pbeam=1e-20)

# Single-pass word decoding: skipping the flat-lexicon and lattice passes was faster (0.12 -> 0.10 s
# of CPU per second of audio, both benchmark modes together) and, aligned afterwards, placed more
# p/b/m on festival speech (121 against 114 of 129; benchmarks/lipsync_accuracy.py).
WORDS_CONFIG: dict = dict(fwdflat=False, bestpath=False)
# Forced alignment with beams far wider than the defaults (1e-48): accents the US model fits
# poorly (espeak-ng's en-gb voice) otherwise fail to align at all.
ALIGN_CONFIG: dict = dict(beam=1e-100, wbeam=1e-80, pbeam=1e-100)
BILABIAL_PHONES = frozenset({"P", "B", "M"})
_local = threading.local()  # decoders are not thread-safe and take ~0.1 s to load: one per thread


@dataclass(frozen=True)
class PhoneSegment:
    phone: str      # ARPAbet, upper case, no stress digits; "SIL" for silence
    start: float    # seconds
    end: float      # seconds

    @property
    def center(self) -> float:
        return 0.5 * (self.start + self.end)


def _decoder(kind: str) -> Decoder:
    cache = _local.__dict__.setdefault("decoders", {})
    if kind not in cache:
        if kind == "words":
            cache[kind] = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **WORDS_CONFIG)
        elif kind == "allphone":
            cache[kind] = Decoder(allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                                  samprate=SAMPLE_RATE, loglevel="FATAL", **ALLPHONE_CONFIG)
        else:
            cache[kind] = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", bestpath=False, **ALIGN_CONFIG)
    return cache[kind]


def pcm16(samples: np.ndarray) -> np.ndarray:
    """float -1..1 -> little-endian int16, the format pocketsphinx's decoder and VAD take."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")


def _clean(name: str) -> str:
    name = name.upper().rstrip("012")
    return "SIL" if name in ("SIL", "+NSN+", "+SPN+", "+BREATH+", "+NOISE+", "") or name.startswith("+") else name


def recognize_phones(samples: np.ndarray) -> list[PhoneSegment]:
    """Phones without a transcript. samples: float32 mono at SAMPLE_RATE, shape = (n,).

    Recognises words and aligns them: the dictionary's pronunciations place phones better than a
    free phone loop. A missed p/b/m is the lip-sync error viewers see first, so bilabials that the
    phone loop hears and the words missed are added (on festival and espeak-ng speech this found
    78% of closures instead of 69%, with one more closure in the middle of a vowel in 237:
    benchmarks/lipsync_accuracy.py). Where no words are recognised, the phone loop alone is used.
    """
    text = transcribe(samples)
    loop = recognize_phone_loop(samples)
    words = align_transcript(samples, text) if text else None
    return loop if words is None else _add_missed_bilabials(words, loop)


def _add_missed_bilabials(phones: list[PhoneSegment], other: list[PhoneSegment]) -> list[PhoneSegment]:
    def overlaps(a: PhoneSegment, b: PhoneSegment) -> bool:
        return a.start < b.end and b.start < a.end

    extra = [p for p in other if p.phone in BILABIAL_PHONES
             and not any(q.phone in BILABIAL_PHONES and overlaps(p, q) for q in phones)]
    kept = [q for q in phones if not any(e.start <= q.center < e.end for e in extra)]
    return sorted(kept + extra, key=lambda s: s.start)


def transcribe(samples: np.ndarray) -> str:
    """Best word hypothesis from pocketsphinx's US-English language model ('' when none)."""
    dec = _decoder("words")
    _decode(dec, samples)
    hyp = dec.hyp()
    text = hyp.hypstr if hyp is not None else ""
    log.debug("phones.transcribed", words=len(text.split()))
    return text


def recognize_phone_loop(samples: np.ndarray) -> list[PhoneSegment]:
    """Free phone recognition with the phone language model (works on any speech, any words)."""
    dec = _decoder("allphone")
    _decode(dec, samples)
    segs = [PhoneSegment(_clean(s.word), s.start_frame / FRAME_RATE, (s.end_frame + 1) / FRAME_RATE)
            for s in dec.seg()]
    log.debug("phones.recognized", n=len(segs))
    return _merge_silence(segs)


def align_transcript(samples: np.ndarray, text: str,
                     progress: Callable[[float], None] | None = None) -> list[PhoneSegment] | None:
    """Force-align `text` to the audio. Returns None when the words cannot be aligned
    (the caller then falls back to free recognition).

    Word alignment runs over the whole recording (cheap); phone-level alignment then runs per
    phrase of at most ALIGN_CHUNK_S, cut at silences between words: over a whole 10-minute take
    its state-level search would take gigabytes.
    """
    words = normalize_text(text)
    if not words:
        return None
    dec = _decoder("align")
    for w in words:
        if dec.lookup_word(w) is None:
            dec.add_word(w, " ".join(letters_to_phones(w)), True)
    try:
        spans = [(0, len(samples) // HOP_SAMPLES + 1, words)]
        if len(samples) > ALIGN_CHUNK_S * SAMPLE_RATE:
            dec.set_align_text(" ".join(words))
            _decode(dec, samples)
            words_found = dec.seg()
            if words_found is None:      # the search found no path through all the words
                raise ValueError("the transcript's words do not fit the audio")
            spans = _phrases([(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame + 1) for s in words_found])
        segs: list[PhoneSegment] = []
        for i, (start, end, chunk_words) in enumerate(spans):
            if progress:
                progress(i / len(spans))
            segs += _align_phones(dec, samples[start * HOP_SAMPLES: end * HOP_SAMPLES], chunk_words, start)
    except (RuntimeError, ValueError) as exc:
        log.info("phones.align_failed", error=str(exc), words=len(words))
        return None
    log.debug("phones.aligned", n=len(segs), words=len(words), phrases=len(spans))
    return _merge_silence(segs) if segs else None


def _decode(dec: Decoder, samples: np.ndarray) -> None:
    # The live cepstral mean normalisation adapts from one utterance to the next: the same audio
    # decoded twice on one decoder gave different phones, and a thread's first call differed from
    # its later ones. Every utterance starts from the configured initial mean (set_cmn alone
    # leaves the running sums behind; reinit_feat takes 0.1 ms).
    dec.reinit_feat()
    dec.start_utt()
    dec.process_raw(pcm16(samples).tobytes(), full_utt=True)
    dec.end_utt()


def _phrases(words: list[tuple[str, int, int]]) -> list[tuple[int, int, list[str]]]:
    """Group aligned words (name, start frame, end frame) into spans of at most ALIGN_CHUNK_S,
    cutting in the middle of the longest silence available."""
    limit = int(ALIGN_CHUNK_S * FRAME_RATE)
    spans: list[tuple[int, int, list[str]]] = []
    start, current = 0, []
    best_cut: tuple[int, int] | None = None  # (index into current, frame)
    for name, a, b in words:
        if name in ("<sil>", "<s>", "</s>"):
            if current:
                best_cut = (len(current), (a + b) // 2)
            continue
        if current and b - start > limit and best_cut is not None:
            cut_index, cut_frame = best_cut
            spans.append((start, cut_frame, current[:cut_index]))
            start, current, best_cut = cut_frame, current[cut_index:], None
        current.append(name)
    end = words[-1][2] if words else 0
    if current:
        spans.append((start, end, current))
    return spans


def _align_phones(dec: Decoder, samples: np.ndarray, words: list[str], offset: int) -> list[PhoneSegment]:
    dec.set_align_text(" ".join(words))
    _decode(dec, samples)
    dec.set_alignment()  # phone-level alignment needs a second pass
    _decode(dec, samples)
    alignment = dec.get_alignment()
    if alignment is None:
        raise RuntimeError("no phone alignment")
    return [PhoneSegment(_clean(p.name), (offset + p.start) / FRAME_RATE, (offset + p.start + p.duration) / FRAME_RATE)
            for w in alignment for p in w]


def _merge_silence(segs: list[PhoneSegment]) -> list[PhoneSegment]:
    out: list[PhoneSegment] = []
    for s in segs:
        if out and s.phone == "SIL" and out[-1].phone == "SIL":
            out[-1] = PhoneSegment("SIL", out[-1].start, s.end)
        else:
            out.append(s)
    return out


_NUMBERS = "zero one two three four five six seven eight nine".split()


def normalize_text(text: str) -> list[str]:
    """Lower-case words the dictionary can hold: punctuation dropped, digits spelled one by one."""
    words: list[str] = []
    for token in re.findall(r"[A-Za-z']+|\d", text):
        words.append(_NUMBERS[int(token)] if token.isdigit() else token.lower().strip("'"))
    return [w for w in words if w]


# Out-of-dictionary words (names, made-up words) get a rough letter-to-sound spelling: good enough
# for mouth shapes, which need the consonant class and vowel openness, not the exact phoneme.
_GRAPHEMES = [
    ("tch", "CH"), ("sch", "S K"), ("igh", "AY"), ("ough", "AO"),
    ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("wh", "W"), ("ck", "K"), ("ng", "NG"),
    ("qu", "K W"), ("oo", "UW"), ("ee", "IY"), ("ea", "IY"), ("ai", "EY"), ("ay", "EY"),
    ("ow", "OW"), ("ou", "AW"), ("oi", "OY"), ("oy", "OY"), ("au", "AO"), ("aw", "AO"),
    ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH"), ("f", "F"), ("g", "G"),
    ("h", "HH"), ("i", "IH"), ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"),
    ("o", "AA"), ("p", "P"), ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"), ("u", "AH"),
    ("v", "V"), ("w", "W"), ("x", "K S"), ("y", "Y"), ("z", "Z"),
]


def letters_to_phones(word: str) -> list[str]:
    word = re.sub(r"[^a-z]", "", word.lower())
    phones: list[str] = []
    i = 0
    while i < len(word):
        for graph, ph in _GRAPHEMES:
            if word.startswith(graph, i):
                if not (phones and ph == phones[-1]):  # doubled letters are one sound
                    phones.extend(ph.split())
                i += len(graph)
                break
    if len(word) > 2 and word.endswith("e") and phones and phones[-1] == "EH":
        phones.pop()  # silent final e
    return phones or ["AH"]


# Broad phone classes for comparing two phone sequences frame by frame.
_BROAD = {**{p: "V" for p in "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW L R W Y".split()},
          **{p: "S" for p in "P B T D K G".split()},
          **{p: "F" for p in "F V TH DH S Z SH ZH HH CH JH".split()},
          **{p: "N" for p in "M N NG".split()}, "SIL": "_"}
MIN_SPEECH_COVERED = 0.8   # a matching transcript puts phones on >= 88% of voiced frames (measured)
MIN_CLASS_AGREEMENT = 0.45  # ... and agrees with the free phone loop on >= 58% of them


def _broad_frames(phones: list[PhoneSegment], n: int) -> np.ndarray:
    out = np.full(n, "_", dtype="<U1")
    for p in phones:
        out[int(p.start * FRAME_RATE): int(p.end * FRAME_RATE)] = _BROAD.get(p.phone, "?")
    return out


def transcript_fits(aligned: list[PhoneSegment], loop: list[PhoneSegment], speech: np.ndarray) -> bool:
    """Whether a forced alignment looks like the audio really says the transcript.

    Forced alignment always "succeeds" with wide beams, even for the wrong text, so compare it with
    what was heard: speech frames (`speech`, bool at FRAME_RATE) the alignment calls silence, and
    frames where its broad phone class (vowel, stop, fricative, nasal) differs from the free phone
    loop's. On festival and espeak-ng speech, right transcripts scored >= 0.88 coverage and >= 0.58
    agreement; the wrong transcripts that aligned at all mostly fell below the thresholds.
    """
    if not speech.any():
        return True
    a = _broad_frames(aligned, len(speech))[speech]
    b = _broad_frames(loop, len(speech))[speech]
    covered = float(np.mean(a != "_"))
    agree = float(np.mean(a == b))
    log.debug("phones.transcript_fit", covered=round(covered, 2), agreement=round(agree, 2))
    return covered >= MIN_SPEECH_COVERED and agree >= MIN_CLASS_AGREEMENT
