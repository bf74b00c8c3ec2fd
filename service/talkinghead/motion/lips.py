"""Viseme segments -> mouth blendshapes per frame, with coarticulation.

Coarticulation follows Cohen & Massaro's dominance model: every segment pulls the mouth toward its
pose with a strength (dominance) that is flat inside the segment and falls off outside it, and the
mouth at time t is the dominance-weighted mean of the poses around t. Bilabials and labiodentals
dominate the lips strongly (the lips must close on p/b/m whatever the neighbours); rounding spreads
far ahead (lips round before the "oo" sounds); alveolars and velars are weak (their lip shape
borrows from the neighbouring vowels). Hard constraints then guarantee what dominance only makes
likely: every p/b/m reaches a full closure, every f/v brings the lower lip to the teeth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from talkinghead.arkit import BLENDSHAPE_NAMES, BS, VISEME_INDEX
from talkinghead.audio.features import true_runs
from talkinghead.audio.phones import PhoneSegment
from talkinghead.audio.phoneset import DIPHTHONG_SPLIT
from talkinghead.motion.noise import clip
from talkinghead.motion.visemes import DIPHTHONG_SECOND_HALF, PHONE_TO_VISEME, POSES, VOWELS

# Dominance magnitude per viseme (how strongly it holds the mouth against its neighbours).
DOMINANCE = {"sil": 0.7, "PP": 4.0, "FF": 2.5, "TH": 1.2, "DD": 0.5, "kk": 0.4, "CH": 1.5, "SS": 1.0,
             "nn": 0.5, "RR": 1.0, "aa": 1.2, "E": 1.0, "I": 1.0, "O": 1.3, "U": 1.5}
FALLOFF_S = 0.045             # how far (s) a segment's pull reaches past its edges (Gaussian sigma)
# Lip contacts are brief, ballistic gestures: strong inside their segment, quickly gone outside it,
# so the neighbouring vowels still open fully.
CONTACT_FALLOFF_S = 0.02
CONTACT_VISEMES = frozenset({"PP", "FF"})
ROUNDING_LEAD_S = 0.14        # rounding starts this far ahead of a rounded segment...
ROUNDED_VISEMES = frozenset({"U", "O", "CH", "RR"})
# ...but not across a vowel that spreads or opens the lips (Henke's look-ahead model: anticipatory
# rounding starts after the last unrounded vowel, on the consonants between): the lead shrinks so
# that the rounded segment's pull at that vowel's end is ROUNDING_BLOCK_SIGMAS fall-offs away.
UNROUNDED_VOWELS = frozenset({"aa", "E", "I"})
ROUNDING_BLOCK_SIGMAS = 1.5
ROUNDING_CHANNELS = [BS["mouthPucker"], BS["mouthFunnel"]]
# Channels that part the lips: zeroed during a bilabial closure.
LIP_PARTING = [BS[n] for n in ("mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight",
                               "mouthUpperUpLeft", "mouthUpperUpRight", "mouthStretchLeft",
                               "mouthStretchRight", "tongueOut")]
BLOCK_FRAMES = 512            # frames blended at a time
REACH_S = 0.6                 # segments further than this from a block have no visible pull on it
SILENCE_RELAX_S = 0.30        # pauses longer than this relax the mouth fully closed


@dataclass(frozen=True)
class VisemeSegment:
    viseme: str
    start: float      # seconds
    end: float        # seconds
    weight: float = 1.0  # articulation strength 0..1 (e.g. /h/ borrows its vowel at half strength)

    @property
    def center(self) -> float:
        return 0.5 * (self.start + self.end)


def visemes_from_phones(phones: list[PhoneSegment]) -> list[VisemeSegment]:
    """Map phones to visemes; diphthongs become two targets; /h/ takes the next vowel's shape."""
    out: list[VisemeSegment] = []
    for i, p in enumerate(phones):
        vis = PHONE_TO_VISEME.get(p.phone, "sil")
        if p.phone == "HH" and i + 1 < len(phones) and phones[i + 1].phone in VOWELS:
            out.append(VisemeSegment(PHONE_TO_VISEME[phones[i + 1].phone], p.start, p.end, 0.5))
        elif p.phone in DIPHTHONG_SECOND_HALF:
            mid = p.start + DIPHTHONG_SPLIT * (p.end - p.start)
            out.append(VisemeSegment(vis, p.start, mid))
            out.append(VisemeSegment(PHONE_TO_VISEME[DIPHTHONG_SECOND_HALF[p.phone]], mid, p.end))
        else:
            out.append(VisemeSegment(vis, p.start, p.end))
    return out


def _dominances(segments: list[VisemeSegment], times: np.ndarray, lead: np.ndarray) -> np.ndarray:
    """Each segment's pull at `times`, shape = (k, n): flat inside the segment, Gaussian fall-off
    outside; lead: shape = (k,) s, widens the fall-off before it."""
    start = np.array([s.start for s in segments])[:, None]
    end = np.array([s.end for s in segments])[:, None]
    falloff = np.array([CONTACT_FALLOFF_S if s.viseme in CONTACT_VISEMES else FALLOFF_S for s in segments])[:, None]
    magnitude = np.array([DOMINANCE[s.viseme] for s in segments])[:, None]
    before = np.maximum(start - times, 0)
    after = np.maximum(times - end, 0)
    return magnitude * np.exp(-0.5 * ((before / (falloff + lead[:, None])) ** 2 + (after / falloff) ** 2))


def lip_motion(segments: list[VisemeSegment], times: np.ndarray, gain: np.ndarray,
               speech: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Mouth blendshapes and the viseme label per frame.

    times: shape = (n,) frame times (s); gain: shape = (n,) articulation gain (~0.6..1.3, from
    loudness and expressiveness); speech: shape = (n,) bool voice activity.
    Returns (blendshapes shape = (n, 52), visemes: n names).
    """
    n = len(times)
    out = np.zeros((n, len(BLENDSHAPE_NAMES)), np.float32)
    labels = ["sil"] * n
    if all(s.viseme == "sil" for s in segments):   # a pause: the silent pose is all zeros, nothing to blend
        return out, labels
    starts = np.array([s.start for s in segments])
    ends = np.array([s.end for s in segments])
    for i0 in range(0, n, BLOCK_FRAMES):  # blocks keep memory flat on long takes
        t = times[i0:i0 + BLOCK_FRAMES]
        near = np.flatnonzero((ends > t[0] - REACH_S) & (starts < t[-1] + REACH_S))
        if len(near):
            out[i0:i0 + len(t)], labels[i0:i0 + len(t)] = _blend([segments[k] for k in near], t)
    out[:] = clip(out * gain[:, None], 0, 1)
    out *= _silence_gate(speech, segments, times)[:, None]
    _enforce_contacts(out, labels, segments, times)
    return out, labels


def _blend(segments: list[VisemeSegment], times: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Dominance-weighted mean pose per frame, and the most dominant viseme per frame."""
    weights = np.array([s.weight for s in segments], np.float32)
    poses = POSES[[VISEME_INDEX[s.viseme] for s in segments]] * weights[:, None]                         # (k, 52)
    dom = _dominances(segments, times, np.zeros(len(segments)))                                          # (k, n)
    rounded = [j for j, s in enumerate(segments) if s.viseme in ROUNDED_VISEMES]
    dom_round = dom
    if rounded:   # rounding reaches further ahead of the rounded visemes: their rows again, with the lead
        dom_round = dom.copy()
        dom_round[rounded] = _dominances([segments[j] for j in rounded], times, _rounding_leads(segments))
    blend = (dom.T @ poses) / (dom.sum(0)[:, None] + 1e-9)
    blend[:, ROUNDING_CHANNELS] = (dom_round.T @ poses[:, ROUNDING_CHANNELS]) / (dom_round.sum(0)[:, None] + 1e-9)
    return blend, [segments[j].viseme for j in dom.argmax(0).tolist()]


def _rounding_leads(segments: list[VisemeSegment]) -> np.ndarray:
    """The rounding lead (s) of each rounded segment, in order: ROUNDING_LEAD_S, less where an
    unrounded vowel ends closer before it than the lead would reach (segments in time order)."""
    leads, last_end = [], -np.inf          # end of the latest unrounded vowel so far
    for seg in segments:
        if seg.viseme in ROUNDED_VISEMES:
            leads.append(min(ROUNDING_LEAD_S, max(0.0, (seg.start - last_end) / ROUNDING_BLOCK_SIGMAS - FALLOFF_S)))
        elif seg.viseme in UNROUNDED_VOWELS:
            last_end = max(last_end, seg.end)
    return np.array(leads)


def _silence_gate(speech: np.ndarray, segments: list[VisemeSegment], times: np.ndarray) -> np.ndarray:
    """1 in speech, easing to 0 inside pauses longer than SILENCE_RELAX_S (mouth relaxes closed)."""
    if len(times) < 2:
        return np.ones(len(times))
    fps = 1.0 / (times[1] - times[0])
    spoken = [s for s in segments if s.viseme != "sil"]
    if spoken:  # a recognised phone keeps the mouth active even where the VAD hesitates
        edges = np.zeros(len(times) + 1, int)
        np.add.at(edges, np.searchsorted(times, [s.start for s in spoken]), 1)
        np.add.at(edges, np.searchsorted(times, [s.end for s in spoken]), -1)
        quiet = ~speech & (np.cumsum(edges[:-1]) <= 0)
    else:
        quiet = ~speech
    gap = int(SILENCE_RELAX_S * fps)
    if gap > 1 and quiet.any():  # only long pauses close the mouth; short gaps are stop closures or breaths
        for a, b in true_runs(quiet):
            if b - a < gap:
                quiet[a:b] = False
    if not quiet.any():  # speech throughout (a stream's usual window): nothing to relax
        return np.ones(len(times))
    return 1.0 - clip(gaussian_filter1d(quiet.astype(float), sigma=max(1.0, 0.04 * fps)) * 1.6, 0, 1) * quiet


def _frame_span(seg: VisemeSegment, times: np.ndarray) -> tuple[int, int]:
    """[i0, i1): the frames whose times fall inside the segment (times ascending)."""
    return int(np.searchsorted(times, seg.start)), int(np.searchsorted(times, seg.end))


def _contact_frames(seg: VisemeSegment, times: np.ndarray) -> np.ndarray:
    """Frames inside the segment, or the nearest one when it falls between frames."""
    i0, i1 = _frame_span(seg, times)
    if i1 > i0:
        return np.arange(i0, i1)
    return np.array([int(np.argmin(np.abs(times - seg.center)))])


def _enforce_contacts(out: np.ndarray, labels: list[str], segments: list[VisemeSegment], times: np.ndarray) -> None:
    """p/b/m: lips fully sealed (mouthClose = jawOpen) and pressed; f/v: lower lip tucked to the teeth."""
    for seg in segments:
        if seg.viseme == "PP":
            idx = _contact_frames(seg, times)
            out[np.ix_(idx, LIP_PARTING)] = 0.0
            out[idx, BS["jawOpen"]] = np.minimum(out[idx, BS["jawOpen"]], 0.12)
            out[idx, BS["mouthClose"]] = out[idx, BS["jawOpen"]]
            for side in ("mouthPressLeft", "mouthPressRight"):
                out[idx, BS[side]] = np.maximum(out[idx, BS[side]], 0.35)
        elif seg.viseme == "FF":
            idx = _contact_frames(seg, times)
            out[idx, BS["jawOpen"]] = np.minimum(out[idx, BS["jawOpen"]], 0.14)
            out[idx, BS["mouthRollLower"]] = np.maximum(out[idx, BS["mouthRollLower"]], 0.55)
            for side in ("mouthUpperUpLeft", "mouthUpperUpRight"):
                out[idx, BS[side]] = np.maximum(out[idx, BS[side]], 0.2)
        else:
            continue
        for i in idx.tolist():
            labels[i] = seg.viseme
