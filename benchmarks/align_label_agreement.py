"""How well the project's own aligner labels speech whose words are known: the share of 10 ms
frames where `audio.align.align_frames`' phone class (and its viseme) equals the true timings',
beside the phone model's free per-frame argmax. Chooses nothing; it says how good a first labeller
of transcribed real speech (models/phones/CARD.md: what would unblock the audio-only targets) the
aligner would be.

    TALKINGHEAD_REALSPEECH=../shared/data/realspeech python benchmarks/align_label_agreement.py [--groups DEV,real]

Rows per group and voice (lipsync_accuracy.py's takes: DEV = MBROLA voices with exact timings,
real = the realspeech TextGrids and LibriVox, whose reference is pocketsphinx's alignment); takes
whose text the aligner refuses as not fitting the audio are listed and left out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from lipsync_accuracy import takes   # puts tests/ and models/phones/ on the path
from make_data import frame_labels
from talkinghead.audio import phoneset
from talkinghead.audio.align import align_frames
from talkinghead.audio.phone_model import PhoneModel
from talkinghead.audio.phones import PhoneSegment

VISEME = np.array([phoneset.CLASS_VISEME[c] for c in phoneset.CLASSES])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", default="DEV,real", help="comma-separated: DEV, real, HELD-OUT, trained")
    args = ap.parse_args()
    groups = set(args.groups.split(","))
    model = PhoneModel.shared()
    totals: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for take in takes(Path(tmp), False, groups):
            if take.group not in groups or not take.text:
                continue
            post = model.posteriors(take.samples)
            truth = frame_labels([PhoneSegment(s.phone, s.start, s.end) for s in take.segs], take.scheme,
                                 len(post), set())
            aligned = align_frames(post, take.text, take.language)
            if aligned is None:
                print(f"refused as not fitting the audio: {take.voice}", file=sys.stderr)
                continue
            ali, free, keep = aligned[1], post.argmax(1), truth != phoneset.IGNORE
            t = truth[keep]
            counts = [len(t), (ali[keep] == t).sum(), (free[keep] == t).sum(),
                      (VISEME[ali[keep]] == VISEME[t]).sum(), (VISEME[free[keep]] == VISEME[t]).sum()]
            for key in (f"ALL {take.group}", f"{take.group} {take.voice}"):
                totals.setdefault(key, np.zeros(5))[:] += counts
    print(f"{'group / voice':40s} {'frames':>7s}  class: aligner / free    viseme: aligner / free")
    for key, (n, a, f, va, vf) in sorted(totals.items()):
        print(f"{key:40s} {int(n):7d}  {a / n:.3f} / {f / n:.3f}            {va / n:.3f} / {vf / n:.3f}")


if __name__ == "__main__":
    main()
