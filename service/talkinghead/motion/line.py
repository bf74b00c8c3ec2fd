"""Where a line's lips come from: `Line` (what is known about a line before it is heard) and the
lip sources a stream runs on it.

A TTS engine knows what it is saying, and usually when: its text, its language, and often its
own timings (word boundaries, phonemes, or visemes with times, as Amazon Polly's speech marks,
Azure's viseme events or ElevenLabs' alignments give them). The best lips cost nothing: use the
engine's visemes as they are. In order of preference, `lip_source(line)` gives

- `MarkedLips`: the engine's viseme or phoneme marks, as they are (no recognition at all);
- `AlignedLips`: the text (with the engine's word times, when given) aligned over the phone
  model's posteriors as they arrive (`audio.align.LiveAligner`), in any language espeak-ng
  speaks; when the text does not fit the audio it falls back to the model's own visemes for the
  rest of the line, and says so (`notice`);
- `ModelLips`: the phone model's visemes alone (`posteriors.visemes_from_posteriors`).

Every source answers `segments(post, k0)`: the line's viseme segments (times in seconds from
the line's first sample) around the posterior rows `post` of frames [k0, k0 + len(post)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkinghead.arkit import VISEME_INDEX, VISEMES
from talkinghead.audio import espeak
from talkinghead.audio.align import LiveAligner, Word, split_words
from talkinghead.audio.features import HOP, value_runs
from talkinghead.audio.phoneset import CLASS_VISEME, CLASSES, DIPHTHONG_SPLIT, classes_of
from talkinghead.errors import OptionsError
from talkinghead.motion.lips import VisemeSegment
from talkinghead.motion.posteriors import visemes_from_posteriors

MARK_KINDS = ("word", "phoneme", "viseme")
VISEME_SETS = ("oculus", "polly", "azure")
PHONEME_SETS = ("ipa", "arpabet", "sampa")
LAST_MARK_S = 0.12        # a final mark with no end lasts this long
MAX_MARKS = 20_000        # a line's marks (an hour of visemes at ~5 a second)
MAX_LINE_S = 15 * 60.0    # marks later than this are a mistake (seconds)

# Amazon Polly's viseme symbols -> the Oculus/Meta 15 (Polly's speech marks documentation)
POLLY_VISEMES = {"sil": "sil", "p": "PP", "t": "DD", "S": "CH", "T": "TH", "f": "FF", "k": "kk", "i": "I",
                 "r": "RR", "s": "SS", "u": "U", "@": "E", "a": "aa", "e": "E", "E": "E", "o": "O", "O": "O"}
# Azure Speech's viseme ids 0..21 (its "map phonemes to visemes" table) -> the Oculus/Meta 15
AZURE_VISEMES = ("sil", "aa", "aa", "O", "E", "RR", "I", "U", "O", "aa", "O", "aa", "kk", "RR", "nn", "SS", "CH",
                 "TH", "FF", "DD", "kk", "PP")


@dataclass(frozen=True)
class Mark:
    """One timing a TTS engine gave: a word, a phoneme or a viseme, in seconds from the line's
    first audio sample. end = None: until the next mark of the same kind starts."""

    kind: str           # one of MARK_KINDS
    value: str          # the word ("Hello"), the phoneme ("h", IPA by default) or the viseme ("PP")
    start: float
    end: float | None = None


@dataclass(frozen=True)
class Line:
    """What is known about a line before its audio: any of text, language, marks.

    language: ISO code ("en", "it", ...); "auto" ignores the text. viseme_set / phoneme_set say
    how viseme and phoneme marks are written (VISEME_SETS, PHONEME_SETS)."""

    text: str = ""
    language: str = "en"
    marks: tuple[Mark, ...] = ()
    viseme_set: str = "oculus"
    phoneme_set: str = "ipa"

    def __post_init__(self) -> None:
        if self.viseme_set not in VISEME_SETS:
            raise OptionsError(f"viseme_set must be one of {', '.join(VISEME_SETS)}, got {self.viseme_set!r}")
        if self.phoneme_set not in PHONEME_SETS:
            raise OptionsError(f"phoneme_set must be one of {', '.join(PHONEME_SETS)}, got {self.phoneme_set!r}")
        if len(self.marks) > MAX_MARKS:
            raise OptionsError(f"a line has {len(self.marks)} timing marks, over the limit of {MAX_MARKS}: "
                               "send one line at a time")
        for m in self.marks:
            if m.kind not in MARK_KINDS:
                raise OptionsError(f"a mark's kind must be one of {', '.join(MARK_KINDS)}, got {m.kind!r}")
            ends = [m.start] + ([m.end] if m.end is not None else [])
            if not all(math.isfinite(x) and 0 <= x <= MAX_LINE_S for x in ends) or (m.end is not None and m.end < m.start):
                raise OptionsError(f"the {m.kind} mark {m.value!r} has times {m.start}..{m.end}: give seconds from "
                                   f"the line's first sample, 0..{MAX_LINE_S:g}, with end >= start")

    def of_kind(self, kind: str) -> list[Mark]:
        return sorted((m for m in self.marks if m.kind == kind), key=lambda m: m.start)


def _ends(marks: list[Mark]) -> list[tuple[Mark, float]]:
    out = []
    for i, m in enumerate(marks):
        end = m.end if m.end is not None else (marks[i + 1].start if i + 1 < len(marks) else m.start + LAST_MARK_S)
        out.append((m, max(end, m.start)))
    return out


def _viseme_name(value: str, viseme_set: str) -> str:
    v = value.strip()
    if viseme_set == "polly":
        name = POLLY_VISEMES.get(v)
    elif viseme_set == "azure":
        name = AZURE_VISEMES[int(v)] if v.isdigit() and int(v) < len(AZURE_VISEMES) else None
    else:
        name = v if v in VISEMES else None
    if name is None:
        allowed = {"oculus": " ".join(VISEMES), "polly": " ".join(POLLY_VISEMES), "azure": "0..21"}[viseme_set]
        raise OptionsError(f"viseme mark {value!r} is not one of the {viseme_set} visemes ({allowed}): set the "
                           "line's viseme_set to the engine's")
    return name


def marked_segments(line: Line) -> list[VisemeSegment] | None:
    """The line's viseme marks, else its phoneme marks, as viseme segments; None without either."""
    visemes = line.of_kind("viseme")
    if visemes:
        return [VisemeSegment(_viseme_name(m.value, line.viseme_set), m.start, end) for m, end in _ends(visemes)]
    phonemes = line.of_kind("phoneme")
    if not phonemes:
        return None
    out: list[VisemeSegment] = []
    for m, end in _ends(phonemes):
        classes = classes_of(m.value, line.phoneme_set) or ("sil",)
        if len(classes) == 2:   # a diphthong: its two vowels, as phoneset splits them
            mid = m.start + DIPHTHONG_SPLIT * (end - m.start)
            out += [VisemeSegment(CLASS_VISEME[classes[0]], m.start, mid),
                    VisemeSegment(CLASS_VISEME[classes[1]], mid, end)]
        else:
            out.append(VisemeSegment(CLASS_VISEME[classes[0]], m.start, end))
    return out


def _window(segments: list[VisemeSegment], k0: int, n: int) -> list[VisemeSegment]:
    a, b = k0 * HOP, (k0 + n) * HOP
    return [s for s in segments if s.end > a and s.start < b]


class ModelLips:
    """The phone model's visemes: the lips of a line nobody said anything about."""

    notice = ""

    def hear(self, post: np.ndarray, final: bool = False) -> None:
        pass

    def segments(self, post: np.ndarray, k0: int) -> list[VisemeSegment]:
        return [VisemeSegment(s.viseme, s.start + k0 * HOP, s.end + k0 * HOP, s.weight)
                for s in visemes_from_posteriors(post)]


class MarkedLips(ModelLips):
    """A TTS engine's own visemes (or phonemes), as they are."""

    def __init__(self, segments: list[VisemeSegment]) -> None:
        self._segments = segments

    def segments(self, post: np.ndarray, k0: int) -> list[VisemeSegment]:
        return _window(self._segments, k0, len(post))


class AlignedLips(ModelLips):
    """The line's text aligned over the posteriors as they arrive; the model's visemes once the
    text is found not to fit (`notice` says why, once)."""

    def __init__(self, aligner: LiveAligner) -> None:
        self._aligner = aligner
        self.notice = ""
        self._fell_back_at: int | None = None

    def hear(self, post: np.ndarray, final: bool = False) -> None:
        was = self._aligner.failed
        self._aligner.hear(post, final)
        if self._aligner.failed and not was:
            self._fell_back_at = len(self._aligner.committed)
            self.notice = self._aligner.reason

    def segments(self, post: np.ndarray, k0: int) -> list[VisemeSegment]:
        """Runs of the aligned classes over the window's frames [k0, k0 + len(post)) only (the
        model's visemes are cut at the window's start the same way)."""
        classes = self._aligner.classes(k0)[: len(post)]
        cut = len(classes) if self._fell_back_at is None else max(0, self._fell_back_at - k0)
        segs = _runs(classes[:cut], k0)
        if self._fell_back_at is not None:
            segs += [s for s in super().segments(post, k0) if s.end > (k0 + cut) * HOP]
        return segs


_CLASS_VISEME_INDEX = np.array([VISEME_INDEX[CLASS_VISEME[c]] for c in CLASSES])   # phone class -> viseme index


def _runs(classes: np.ndarray, k0: int) -> list[VisemeSegment]:
    """Per-frame class indices of frames k0.. -> viseme segments (runs of one viseme), in seconds."""
    visemes = _CLASS_VISEME_INDEX[classes]
    return [VisemeSegment(VISEMES[visemes[k]], (k0 + k) * HOP, (k0 + j) * HOP) for k, j in value_runs(visemes)]


def lip_source(line: Line | None) -> ModelLips:
    """The best lips what is known of the line allows (see the module's docstring). Raises
    OptionsError for marks it cannot read or a language espeak-ng does not speak."""
    if line is None:
        return ModelLips()
    marked = marked_segments(line)
    if marked is not None:
        return MarkedLips(marked)
    if line.language == "auto":
        return ModelLips()
    marks = line.of_kind("word")
    if marks:   # a Polly word mark has a start only: the word lasts until the next one starts
        words = [Word(m.value, m.start, m.end if m.end is not None else
                      (marks[i + 1].start if i + 1 < len(marks) else None)) for i, m in enumerate(marks)]
    else:
        words = split_words(line.text)
    if not words:
        return ModelLips()
    try:
        aligner = LiveAligner(words, line.language)
    except espeak.UnknownLanguage:
        raise OptionsError(f"language {line.language!r} is not one espeak-ng speaks: use an ISO code such as en, it, "
                           "fi, de, fr, or auto") from None
    return ModelLips() if aligner.empty else AlignedLips(aligner)



def read_line(text: str | None, text_file, language: str, marks_file=None) -> Line:
    """The CLI's --text / --text-file / --language / --marks as one Line: the transcript (the
    UTF-8 file's when given), its language, and a TTS engine's marks (read_marks). Raises
    OptionsError for a file it cannot read."""
    if text_file:
        from pathlib import Path

        try:
            text = Path(text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OptionsError(f"cannot read the transcript {text_file}: {exc}; pass a UTF-8 text file") from None
    return Line(text=text or "", language=language, **(read_marks(marks_file) if marks_file else {}))


def read_marks(path) -> dict:
    """A TTS engine's timings from a file, as Line fields (marks, viseme_set, phoneme_set):

    - Amazon Polly speech marks (JSON Lines: {"time": 125, "type": "viseme", "value": "p"}, time
      in milliseconds; "word" marks too; "sentence" and "ssml" marks are skipped);
    - or one JSON object {"viseme_set": "azure", "phoneme_set": "ipa", "marks": [{"kind": "viseme",
      "value": "21", "start": 0.125, "end": 0.2}, ...]} (seconds; end optional).
    Raises OptionsError, saying what is wrong, for anything else."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        body = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionsError(f"cannot read the marks file {p}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        doc = json.loads(body) if body.startswith("{") and "\n{" not in body else None
        if isinstance(doc, dict) and "marks" in doc:
            marks = tuple(Mark(str(m["kind"]), str(m["value"]), float(m["start"]),
                               None if m.get("end") is None else float(m["end"])) for m in doc["marks"])
            return {"marks": marks, "viseme_set": doc.get("viseme_set", "oculus"),
                    "phoneme_set": doc.get("phoneme_set", "ipa")}
        rows = [json.loads(line) for line in body.splitlines() if line.strip()]
        rows = [(str(r["type"]), float(r["time"]) / 1000.0, r.get("value")) for r in rows]   # every row has both
        marks = tuple(Mark(kind, str(value), start) for kind, start, value in rows if kind in ("word", "viseme"))
        return {"marks": marks, "viseme_set": "polly"}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OptionsError(f"{p} is not a marks file: give Amazon Polly speech marks (JSON Lines with time, type, "
                           "value) or a JSON object with a \"marks\" list of {kind, value, start, end} "
                           f"({type(exc).__name__}: {exc})") from None
