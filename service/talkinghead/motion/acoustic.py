"""Acoustic fallback: viseme segments straight from the sound, for speech the English phone
recogniser cannot read (another language, singing, heavy noise) or did not cover.

Vowel quality comes from the first two formants (F1 rises as the jaw opens; F2 falls as the lips
round), fricatives from high-frequency energy, and dips of loudness inside speech are closures.
It knows no words, so it cannot place every p/b/m, but the mouth opens, rounds and closes with
the speech instead of freezing.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, uniform_filter1d
from scipy.signal import find_peaks

from talkinghead.audio.features import HOP, SpeechFeatures, value_runs
from talkinghead.motion.lips import VisemeSegment

MIN_SEGMENT_S = 0.04
MIN_CLOSURE_S = 0.02     # a loudness gap this short is still a visible closure (stops are brief)
CLOSURE_DROP_DB = 15.0   # this far below the local speech peak counts as a closure...
LOCAL_PEAK_S = 0.6       # ...the loudest frame in a window this long around it
VALLEY_DB = 4.0          # a loudness dip this deep between two syllables narrows the mouth
MAJORITY_S = 0.07        # vowel classes are decided by majority over this window (no flicker)
VOWEL_LIKE = ("aa", "E", "I", "O", "U")


def _vowel(f1: float, f2: float) -> str:
    """Crude vowel classes on the F1/F2 plane (adult averages, Peterson & Barney)."""
    if f1 > 650:
        return "aa"
    if f1 > 480:
        return "O" if f2 < 1200 else "E"
    if f2 > 1900:
        return "I"
    return "U" if f2 < 1250 else "E"


def frame_visemes(feat: SpeechFeatures) -> list[str]:
    """One viseme per feature frame (HOP seconds); closures are dips below the loudest frame within
    LOCAL_PEAK_S centred on each frame."""
    local_peak = maximum_filter1d(feat.rms_db, size=int(LOCAL_PEAK_S / HOP), mode="nearest")
    labels = []
    for k in range(len(feat.rms_db)):
        if not feat.speech[k]:
            labels.append("sil")
        elif feat.rms_db[k] < local_peak[k] - CLOSURE_DROP_DB:
            labels.append("PP" if feat.f0[k] > 0 or feat.hf_ratio[k] < 0.2 else "DD")
        elif feat.f0[k] > 0 and np.isfinite(feat.f1[k]) and np.isfinite(feat.f2[k]):
            labels.append(_vowel(feat.f1[k], feat.f2[k]))
        elif feat.hf_ratio[k] > 0.45:
            labels.append("SS")
        else:
            labels.append("DD")
    return labels


def _majority(labels: list[str]) -> list[str]:
    """Each frame takes the most common label in a MAJORITY_S window around it."""
    names = sorted(set(labels))
    onehot = np.array([[lab == n for n in names] for lab in labels], float)
    votes = uniform_filter1d(onehot, size=max(1, int(MAJORITY_S / HOP)), axis=0, mode="nearest")
    return [names[i] for i in votes.argmax(1)]


def _syllable_valleys(feat: SpeechFeatures, labels: list[str]) -> list[str]:
    """Narrow the mouth at loudness valleys between syllables, so a run of one vowel class still
    opens and closes with the syllables instead of hanging half open."""
    env = gaussian_filter1d(feat.rms_db, 2.0)
    valleys, _ = find_peaks(-env, prominence=VALLEY_DB, distance=int(0.08 / HOP))
    out = list(labels)
    for k in valleys:
        if feat.speech[k]:
            for j in range(max(0, k - 2), min(len(out), k + 3)):
                if out[j] in VOWEL_LIKE:
                    out[j] = "nn"
    return out


def visemes_from_acoustics(feat: SpeechFeatures) -> list[VisemeSegment]:
    """Viseme segments of the whole recording."""
    return label_segments(_syllable_valleys(feat, _majority(frame_visemes(feat))))


def label_segments(labels: list[str]) -> list[VisemeSegment]:
    """Runs of one label (one per frame from frame 0) as segments; runs too short to see join the previous."""
    runs = [(labels[k], k, j) for k, j in value_runs(np.array(labels))]
    return [VisemeSegment(label, start, end, 0.8) for label, start, end in merged_runs(runs)]


def merged_runs(runs: list[tuple[str, int, int]]) -> list[tuple[str, float, float]]:
    """label_segments' rule on runs already found, (label, first frame, one past the last) in
    order: (label, start s, end s) of the segments they make."""
    segs: list[tuple[str, float, float]] = []
    for label, k, j in runs:
        start, end = k * HOP, j * HOP
        shortest = MIN_CLOSURE_S if label == "PP" else MIN_SEGMENT_S
        if segs and end - start < shortest:  # too short to see: no flicker
            segs[-1] = (segs[-1][0], segs[-1][1], end)
        else:
            segs.append((label, start, end))
    return segs
