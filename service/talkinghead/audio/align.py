"""Alignment of known text over the phone model's posteriors, in any language espeak-ng speaks.

text -> phonemes (espeak-ng's dictionaries and letter-to-sound rules, `espeak.text_to_phonemes`)
-> the phone classes of `audio.phoneset` (a diphthong is two states) -> Viterbi over the
posteriors: a left-to-right chain, every phone at least one frame, silence optional between
clauses and words and at both ends. The result is `PhoneSegment`s whose names are phone
classes.

Text that does not match the audio (wrong language, wrong line) still aligns somewhere, so the
path's mean log posterior is compared with the best free per-frame classes': more than
MAX_FIT_GAP nats per speech frame worse, and `align_text` returns None (the caller falls back
to audio-only lips and warns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import structlog

from talkinghead.audio import espeak
from talkinghead.audio.features import value_runs
from talkinghead.audio.phones import FRAME_RATE, PhoneSegment
from talkinghead.audio.phoneset import CLASS_INDEX, CLASSES, from_arpabet, from_espeak

log = structlog.get_logger(__name__)

MAX_FIT_GAP = 1.2     # nats per speech frame: right texts measured 0.2-0.7 worse than the free path
FLOOR = 1e-4          # posterior floor (log of zero would forbid a state outright)
SIL = CLASS_INDEX["sil"]


def text_states(text: str, language: str) -> list[tuple[int, bool]]:
    """(class index, optional) per state: phones are required, silences optional."""
    states: list[tuple[int, bool]] = [(SIL, True)]
    for clause in espeak.text_to_phonemes(text, language):
        for name in clause:
            classes = from_espeak(name)
            for c in classes:
                idx = CLASS_INDEX[c]
                if idx == SIL:
                    if not states[-1][1]:
                        states.append((SIL, True))
                else:
                    states.append((idx, False))
        if not states[-1][1]:
            states.append((SIL, True))
    return states


def viterbi(logp: np.ndarray, states: list[tuple[int, bool]]) -> np.ndarray:
    """logp: shape = (n, classes). Returns the state index per frame (n,), monotonic, every
    required state visited."""
    cls = np.array([c for c, _ in states])
    optional = np.array([o for _, o in states])
    emit = logp[:, cls]                                  # (n, s)
    s = len(states)
    score = np.full(s, -np.inf)
    score[: min(2, s)] = emit[0, : min(2, s)]            # the first state is an optional silence
    score, back = _forward(emit, optional, score)
    end = s - 1 if score[s - 1] >= score[s - 2] or not optional[s - 1] else s - 2
    return _trace(back, end)


def _forward(emit: np.ndarray, optional: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Viterbi's forward pass over a left-to-right chain of s states: emit shape = (n, s) log
    emissions; optional (s,): the states that may be skipped; score (s,): the first frame's scores.
    Each frame a state stays, steps on one, or skips one optional state. Returns the last frame's
    scores and the move into each state at each frame, shape = (n, s) (0 stay, 1 step, 2 skip)."""
    back = np.zeros(emit.shape, np.int8)
    for t in range(1, len(emit)):
        score, back[t] = _moves(score, optional)
        score = score + emit[t]
    return score, back


def _moves(score: np.ndarray, optional: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame of the chain, before its emission: each state's best score from staying, stepping
    on one, or skipping one optional state, and which move that was (0, 1, 2)."""
    s = len(score)
    step = np.full(s, -np.inf)
    step[1:] = score[:-1]
    skip = np.full(s, -np.inf)
    skip[2:] = np.where(optional[1:-1], score[:-2], -np.inf)
    choice = np.stack([score, step, skip])
    best = choice.argmax(0)
    return choice[best, np.arange(s)], best.astype(np.int8)


def _trace(back: np.ndarray, end: int) -> np.ndarray:
    """The state per frame of the path that ends in state `end` (back from _forward)."""
    path = np.zeros(len(back), np.int32)
    path[-1] = end
    for t in range(len(back) - 1, 0, -1):
        path[t - 1] = path[t] - back[t, path[t]]
    return path


def align_frames(post: np.ndarray, text: str, language: str) -> tuple[np.ndarray, np.ndarray] | None:
    """post: shape = (n, classes) from PhoneModel. Returns the text's state (n,) and its class
    index (n,) per frame, or None when there is nothing to align or the text does not fit the
    audio."""
    states = text_states(text, language)   # raises espeak.UnknownLanguage
    if sum(1 for _, o in states if not o) == 0 or len(post) < len(states):
        return None
    logp = np.log(np.maximum(post, FLOOR))
    path = viterbi(logp, states)
    cls = np.array([c for c, _ in states])[path]
    speech = post.argmax(1) != SIL
    if speech.any():
        gap = float(np.mean(logp.max(1)[speech] - logp[np.flatnonzero(speech), cls[speech]]))
        if gap > MAX_FIT_GAP:
            log.info("align.text_does_not_fit", gap=round(gap, 2))
            return None
    return path, cls


def align_text(post: np.ndarray, text: str, language: str) -> list[PhoneSegment] | None:
    """`align_frames` as class segments in seconds (one per state: two phones of one class in a
    row stay two), or None."""
    aligned = align_frames(post, text, language)
    if aligned is None:
        return None
    path, cls = aligned
    names = list(CLASS_INDEX)
    return [PhoneSegment(names[cls[k]], k / FRAME_RATE, j / FRAME_RATE) for k, j in value_runs(path)]


# --- Live alignment -------------------------------------------------------------------------------
#
# The same chain as `align_text`, decided as the posteriors arrive: a fixed-lag Viterbi. Each
# update re-runs the Viterbi from the last committed frame (whose state is known) over the frames
# heard since, on the band of states reachable in that time, and commits the frames more than
# `lag` behind the newest one. Committed frames never change, so the lips built on them do not
# jump; the frames after them are a best guess that the next update may revise.

WORD_SLACK_S = 0.06     # a TTS engine's word boundary may be off by this much (s)
OFF_WORD_PENALTY = 8.0  # nats per frame for a word's phone outside its word's marked time
# Frames the live path waits before it commits a frame's state (1 s). The lips never wait for it
# (they read the current best guess for the frames not yet committed); the wait only makes the
# committed path right. The path is one Viterbi over the line, decided per frame on a beam of
# states (cheap however long the line) and traced back from its best state now: with 20 frames
# it agreed with the offline path on 54-93 % of LibriVox's frames and ran ahead of long vowels in
# slow speech (espeak-ng's voices at 80-100 words a minute, a 30 s line: it reached the text's
# end 6 s early); 100 frames followed the offline path there.
LAG_FRAMES = 100
BEAM = 30.0             # nats: live states this far below the best are dropped
DECODE_EVERY = 4        # frames: the path is decoded again once this many new ones are heard (40 ms;
                        # a stream of 20 ms chunks would otherwise decode the whole lag 50 times a second)
MIN_PHONE_FRAMES = 2    # live: frames a consonant lasts at least (20 ms)
MIN_VOWEL_FRAMES = 3    # ... and a vowel (30 ms)
VOWEL_CLASSES = frozenset({"i", "e", "@", "ae", "a", "O", "o", "u", "y"})
# Is the text what was said? The committed path's surprise (-log p(path class) minus the entropy
# of the frame's posteriors: about 0 where the path follows what the model hears, whatever the
# voice) against that of the same phones in reverse order (a text of the same length and sounds
# that was not said). Both in nats per speech frame, judged from MIN_FIT_FRAMES speech frames on.
# Measured on the trained voices (festival kal/ked, espeak en-us/en-gb/en-us+f1, 15 sentences):
# right texts fit 1.1-2.9 better than reversed (surprise -0.6..1.2), other sentences' texts
# -0.7..0.8 (surprise 1.6..3.8). Keeping a right text matters more than catching a wrong one (a
# TTS client sends what it says), so the bounds sit low: a text is dropped when it fits less than
# MIN_FIT_MARGIN better than reversed AND its surprise is over MAX_FIT_SURPRISE. Caught: another
# language's line, a line much shorter or longer than the audio, and with the shipped model (run
# D) about 80 % of the other lines of the same language (benchmarks/text_fit.py: held-out voices
# 78 %, real people 82 %, no right text lost; 0.5 or 0.7 here lost one right held-out text).
MIN_FIT_MARGIN = 0.25   # 0.35 with the first phone model; its second (2026-12-06) fits a right line of
                        # festival kal (trained) only 0.29 better than reversed, with surprise over 0.6
MAX_FIT_SURPRISE = 0.6
# A text this surprising is dropped whatever its margin: a short text stretched over long audio fits
# its reversed phones about as badly as itself. Trained voices with the shipped model: right texts
# at most 0.38, wrong ones 1.00 and up; with it 94 % of the wrong texts are caught there (84 %
# without), and no right text is lost on held-out voices or real people (benchmarks/text_fit.py).
MAX_SURPRISE_ANY_MARGIN = 2.0
MIN_FIT_FRAMES = 250    # speech frames committed before the fit is judged mid-line (2.5 s; at 1-1.5 s right
                        # and wrong texts of real speech overlapped)...
MIN_FIT_FRAMES_AT_END = 100  # ... and at the end of a line (1 s)
TEXT_END_SPEECH_S = 1.2  # speech this long after the text's last phone: the text did not cover the audio
                         # (a right text's trailing breath and noise measured up to ~1 s)


@dataclass(frozen=True)
class Word:
    """A word of a line, with the time a TTS engine gave it (seconds from the line's first sample;
    None when unknown)."""

    text: str
    start: float | None = None
    end: float | None = None


@lru_cache(maxsize=1)
def _cmudict() -> dict[str, tuple[str, ...]]:
    """pocketsphinx's CMU dictionary (word -> ARPAbet phones), the first pronunciation of each word."""
    from pocketsphinx import get_model_path

    out: dict[str, tuple[str, ...]] = {}
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            word, _, pron = line.partition(" ")
            if "(" not in word and word not in out:
                out[word] = tuple(pron.split())
    return out


def word_classes(word: str, language: str) -> list[str]:
    """A word's phone classes: English from the CMU dictionary where it has the word, otherwise
    (and for every other language) from espeak-ng's dictionaries and letter-to-sound rules.
    Raises espeak.UnknownLanguage for a language espeak-ng does not speak."""
    lang = language.lower()
    if lang in ("en", "en-us"):   # the CMU dictionary is American English
        key = re.sub(r"[^a-z']", "", word.lower()).strip("'")
        pron = _cmudict().get(key)
        if pron:
            return [c for p in pron for c in from_arpabet(p) if c != "sil"]
    voice = "en-us" if lang == "en" else lang
    return [c for clause in espeak.text_to_phonemes(word, voice) for name in clause
            for c in from_espeak(name) if c != "sil"]


def split_words(text: str) -> list[Word]:
    """The words of a line (letters, digits and apostrophes in any script), punctuation dropped."""
    return [Word(w) for w in re.findall(r"[\w']+", text) if w.strip("'_")]


class LiveAligner:
    """Known text aligned over phone posteriors as they arrive (a stream), in any language.

    words: the line's words (with times when a TTS engine gave them: then each word's phones
    are held to its time). Feed posterior rows with `hear`; `path()` gives the class of every
    frame heard so far (committed frames first, then the current best guess). `failed` turns
    True (with `reason`) when the text does not fit the audio; the caller then falls back to the
    audio-only lips for the rest of the line."""

    def __init__(self, words: list[Word], language: str, lag: int = LAG_FRAMES, _reversed: bool = False) -> None:
        self.lag = lag
        states: list[tuple[int, bool]] = [(SIL, True)]
        owner: list[int] = [-1]
        for i, w in enumerate(words):
            for c in word_classes(w.text, language):
                # a chain of required states per phone: the path spends at least that many frames
                # on it, so it cannot race ahead through the text within the lag
                for _ in range(MIN_VOWEL_FRAMES if c in VOWEL_CLASSES else MIN_PHONE_FRAMES):
                    states.append((CLASS_INDEX[c], False))
                    owner.append(i)
            states.append((SIL, True))
            owner.append(-1)
        if _reversed:
            states, owner = states[::-1], owner[::-1]
        self.cls = np.array([c for c, _ in states])
        self.optional = np.array([o for _, o in states])
        self.owner = np.array(owner)
        self.has_times = any(w.start is not None for w in words) and not _reversed
        # The same phones in reverse order, aligned beside the text: how well a text of this
        # length and these sounds fits the audio by chance. A right text fits far better.
        self._reference = None if _reversed else LiveAligner(words, language, lag, _reversed=True)
        self.empty = not (~self.optional).any()
        self._logp = np.zeros((0, len(CLASSES)), np.float32)   # rows of the frames not committed yet
        self._score: np.ndarray | None = None                    # Viterbi scores of states [_lo, ...) now
        self._lo = 0
        self._backs: list[tuple[int, np.ndarray]] = []           # per uncommitted frame: (band start, moves)
        self._word_from = np.full(len(self.cls), -np.inf)        # the times a state's word may be heard, s
        self._word_to = np.full(len(self.cls), np.inf)
        for k, w in enumerate(self.owner):
            if self.has_times and w >= 0 and words[w].start is not None:
                self._word_from[k] = words[w].start - WORD_SLACK_S
                if words[w].end is not None:
                    self._word_to[k] = words[w].end + WORD_SLACK_S
        self.committed = np.zeros(0, np.int32)                   # state per committed frame
        self._state = 0                                          # state of the last committed frame
        self._guess = np.zeros(0, np.int32)                      # states of frames after the committed
        self._undecoded = 0                                      # rows heard since the last decode
        self._gap = 0.0
        self._speech_frames = 0
        self._after_end = 0
        self.failed = False
        self.reason = ""

    def hear(self, post: np.ndarray, final: bool = False) -> None:
        """post: shape = (n, classes), the rows that follow those heard before. final: no more
        rows will come (the whole path is committed)."""
        if self.failed or self.empty:
            return
        if self._reference is not None:   # every row, as this path does, whenever either decodes
            self._reference.hear(post, final)
        logp = np.log(np.maximum(post, FLOOR)).astype(np.float32)
        for row in logp:
            self._frame(row)
        self._logp = np.concatenate([self._logp, logp])
        n = len(self._logp)
        self._undecoded += len(logp)
        if not n or (self._undecoded < DECODE_EVERY and not final):
            return
        self._undecoded = 0
        path = self._path()
        keep = n if final else max(0, n - self.lag)
        self._commit(path[:keep], final)
        self._guess = path[keep:]

    def _frame(self, row: np.ndarray) -> None:
        """The Viterbi's next frame (row: its log posteriors), on the band of states within BEAM
        of the best: the band moves on as the speech does."""
        if self._score is None:            # the first frame: the optional silence or the first phone
            lo, hi = 0, min(2, len(self.cls))
            score, moves = np.zeros(hi), np.zeros(hi, np.int8)
        else:
            lo = self._lo
            hi = min(len(self.cls), lo + len(self._score) + 2)
            score = np.full(hi - lo, -np.inf)
            score[: len(self._score)] = self._score
            score, moves = _moves(score, self.optional[lo:hi])
        states = np.arange(lo, hi)
        score = score + row[self.cls[states]]
        if self.has_times:
            t = (len(self.committed) + len(self._backs) + 0.5) / FRAME_RATE     # this frame's middle
            score -= OFF_WORD_PENALTY * ((t < self._word_from[states]) | (t > self._word_to[states]))
        score[states < self._state] = -np.inf   # behind what the committed frames have said
        self._backs.append((lo, moves))
        kept = np.flatnonzero(score >= score.max() - BEAM)
        self._lo, self._score = lo + int(kept[0]), score[kept[0]: kept[-1] + 1]

    def _path(self) -> np.ndarray:
        """The states of the frames not committed yet, traced back from the best state now."""
        path = np.zeros(len(self._backs), np.int32)
        state = self._lo + int(np.argmax(self._score))
        for t in range(len(self._backs) - 1, -1, -1):
            path[t] = state
            lo, moves = self._backs[t]
            state -= int(moves[state - lo])
        return path

    def _commit(self, states: np.ndarray, final: bool = False) -> None:
        if not len(states):
            return
        logp = self._logp[: len(states)]
        speech = logp.argmax(1) != SIL
        if speech.any():
            # the path's surprise beyond the model's own uncertainty (its entropy): about 0 where
            # the text is what was said, whatever the voice; large where it is not
            rows = logp[np.flatnonzero(speech)]
            entropy = -(np.exp(rows) * rows).sum(1)
            got = rows[np.arange(len(rows)), self.cls[states[speech]]]
            self._gap += float(np.sum(-got - entropy))
            self._speech_frames += int(speech.sum())
        at_end = states >= len(self.cls) - 1
        self._after_end = self._after_end + int(speech[at_end].sum()) if at_end.any() else 0
        self.committed = np.concatenate([self.committed, states.astype(np.int32)])
        self._state = int(states[-1])
        self._logp = self._logp[len(states):]
        self._backs = self._backs[len(states):]
        if self._reference is None:
            return
        if self._speech_frames >= (MIN_FIT_FRAMES_AT_END if final else MIN_FIT_FRAMES):
            fit = self._gap / self._speech_frames
            margin = self._reference.surprise() - fit
            if (margin < MIN_FIT_MARGIN and fit > MAX_FIT_SURPRISE) or fit > MAX_SURPRISE_ANY_MARGIN:
                self._fail(f"the text does not match the audio (it fits {margin:.2f} nats per speech frame better "
                           f"than its own phones in reverse order, {fit:.2f} beyond the model's own uncertainty)")
                return
        if self._after_end / FRAME_RATE >= TEXT_END_SPEECH_S:
            self._fail("the audio goes on after the text's last word")

    def surprise(self) -> float:
        """Mean surprise of the committed path beyond the model's uncertainty, nats per speech frame."""
        return self._gap / max(1, self._speech_frames)

    def _fail(self, reason: str) -> None:
        self.failed, self.reason = True, reason
        log.info("align.live_text_dropped", reason=reason, frame=len(self.committed))

    def classes(self, start: int = 0) -> np.ndarray:
        """Class index per frame heard so far, from frame `start` on: committed frames, then the
        current guess (a stream asks for its window's frames only, not the whole line's)."""
        return self.cls[np.concatenate([self.committed[start:], self._guess[max(0, start - len(self.committed)):]])]
