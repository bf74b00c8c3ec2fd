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

import numpy as np
import structlog

from talkinghead.audio import espeak
from talkinghead.audio.phones import FRAME_RATE, PhoneSegment
from talkinghead.audio.phoneset import CLASS_INDEX, from_espeak

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
    n, s = len(logp), len(states)
    cls = np.array([c for c, _ in states])
    optional = np.array([o for _, o in states])
    emit = logp[:, cls]                                  # (n, s)
    score = np.full(s, -np.inf)
    score[0] = emit[0, 0]
    if s > 1:
        score[1] = emit[0, 1]
    back = np.zeros((n, s), np.int32)
    idx = np.arange(s)
    for t in range(1, n):
        stay = score
        step = np.concatenate([[-np.inf], score[:-1]])
        # skip one optional state: from k-2 to k when k-1 is optional
        skip = np.concatenate([[-np.inf, -np.inf], np.where(optional[1:-1], score[:-2], -np.inf)])
        choice = np.stack([stay, step, skip])
        best = choice.argmax(0)
        score = choice[best, idx] + emit[t]
        back[t] = idx - best
    end = s - 1 if score[s - 1] >= score[s - 2] or not optional[s - 1] else s - 2
    path = np.zeros(n, np.int32)
    path[-1] = end
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def align_text(post: np.ndarray, text: str, language: str) -> list[PhoneSegment] | None:
    """post: shape = (n, classes) from PhoneModel. Returns class segments in seconds, or None when
    there is nothing to align or the text does not fit the audio."""
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
    segs: list[PhoneSegment] = []
    k = 0
    names = list(CLASS_INDEX)
    while k < len(path):
        j = k
        while j < len(path) and path[j] == path[k]:
            j += 1
        segs.append(PhoneSegment(names[cls[k]], k / FRAME_RATE, j / FRAME_RATE))
        k = j
    return segs
