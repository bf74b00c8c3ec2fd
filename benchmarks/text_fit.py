"""Does a line's text fit its audio? How often the live aligner's check (audio/align.py
`LiveAligner`: MIN_FIT_MARGIN, MAX_FIT_SURPRISE, MAX_SURPRISE_ANY_MARGIN) keeps a right text and
drops a wrong one.

    python benchmarks/text_fit.py [--margins 0.25,0.7] [--surprises inf,2] [--groups trained,HELD-OUT,real,DEV]

Each take is aligned, as a stream hears it (10 rows a call), with its own text and with every
other text of its language in the set (a TTS client that sent the wrong line). Per take and text:
the committed path's surprise (nats per speech frame beyond the model's own uncertainty) and the
margin (how much better the text fits than its phones reversed). The aligner drops a text when its
margin is under MIN_FIT_MARGIN and its surprise over MAX_FIT_SURPRISE, or its surprise is over
MAX_SURPRISE_ANY_MARGIN, or the audio goes on past the text; the table counts, per row group and
setting tried: right texts dropped (a line whose lips fall back to audio-only for nothing) and
wrong texts caught.

Rows: "trained" = voices the phone model trained on (festival kal/ked, espeak-ng en-us, en-gb,
en-us+f1) saying TUNING_SENTENCES (where the constants are chosen); "HELD-OUT" and "real" = the lip-sync
benchmark's takes (benchmarks/lipsync_accuracy.py: festival voices and languages the model never
heard, and people), each with the other texts of its language in that set.

Stop 23's choice, fixed before the HELD-OUT and real rows were run with the phone model that
ships: on the trained rows (48 takes, 528 wrong pairs) MIN_FIT_MARGIN 0.25 caught 83 % of the
wrong texts, 0.5 95 %, 0.7 99 %, dropping no right text (the lowest right margin 1.43). 0.7 (half
the lowest right margin) is tried on HELD-OUT + real; it replaces 0.25 only if it drops no more
right texts there than 0.25 does; else 0.5 under the same condition; else 0.25 stays.
Result, with the phone model that ships (run D; its trained rows: 0.25 83 %, 0.5 95 %, 0.7 98 %, no
right text lost, lowest right margin 1.53): HELD-OUT 0.25 dropped 0 of 46 right texts and caught
78 % of the wrong ones, 0.5 and 0.7 each dropped 1 right text (85 %, 89 % caught); real 0 of 7 at
all three (82 %, 90 %, 93 %). **0.25 stays.**
On the DEV voices (stop 25, `--groups DEV`: 24 MBROLA voices, 144 takes, 1,584 wrong pairs;
benchmarks/dev_voices.py): right texts dropped 0, 0 and 1 of 144 at 0.25, 0.5 and 0.7 (the lowest
right margin 0.61), wrong texts caught 91 %, 97 %, 98 %. Not changed: the HELD-OUT rows, already read, drop one
right text of 46 at 0.5 and 0.7; which matters more (a right line's lips falling back to audio
alone, or a wrong line's kept) is the planners' call.

A second rule, fixed after that and before its own HELD-OUT run: a text whose surprise is over
MAX_SURPRISE_ANY_MARGIN is dropped whatever its margin (a short text stretched over long audio
fits its reversed phones about as badly as itself: "Good morning to you." over a 3 s sentence,
surprise 2.62, margin 0.65). On the trained rows with run D the right texts' surprise is at most
0.38 and the wrong ones' at least 1.00 (66 % of them over 2). 2.0 (five times the trained right
texts' highest) is tried with MIN_FIT_MARGIN 0.25; it is kept only if it drops no right text on
HELD-OUT + real. Result: trained 83 % -> 94 % caught; HELD-OUT 0 of 46 right texts dropped, 150 of
192 wrong caught either way; real 0 of 7, 69 of 84 either way. **Kept** (align.py).

(The choices above were made on 48 trained takes, without espeak-ng's en-us+f1; the trained rows
now come from the lip-sync benchmark's own list, 60 takes: 0.25 without / with the second rule
84 % / 94 % of 660 wrong texts caught, no right text dropped.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from lipsync_accuracy import SENTENCES, TRAINED_VOICES, takes  # noqa: E402
from speech import synth_takes  # noqa: E402  (tests/, on the path lipsync_accuracy set)

from talkinghead.audio import align  # noqa: E402
from talkinghead.audio.align import LiveAligner, split_words  # noqa: E402
from talkinghead.audio.decode import load_audio  # noqa: E402
from talkinghead.audio.phone_model import PhoneModel  # noqa: E402

TUNING_SENTENCES = SENTENCES + [
    "The old farmer carried a heavy basket of fresh eggs to the market every morning.",
    "Nobody expected the little red train to arrive before the storm started.",
    "She opened the window and listened to the birds singing in the garden.",
    "Our neighbours painted their kitchen a bright shade of yellow last summer.",
    "When the lights went out, everyone in the theatre started to laugh.",
    "Take the second road on the left and keep walking until you see the church.",
]


def trained_takes(tmp: Path) -> list[tuple[str, str, str, np.ndarray]]:
    """(group, language, text, samples) of the voices the phone model trained on (the lip-sync
    benchmark's TRAINED_VOICES) saying TUNING_SENTENCES."""
    return [("trained", "en", t.text, load_audio(t.wav)) for t in synth_takes(TUNING_SENTENCES, tmp)
            if t.voice in TRAINED_VOICES]


def heard(post: np.ndarray, text: str, language: str) -> LiveAligner:
    aligner = LiveAligner(split_words(text), language)
    for i in range(0, len(post), 10):
        aligner.hear(post[i: i + 10])
    aligner.hear(post[:0], final=True)
    return aligner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--margins", default=f"{align.MIN_FIT_MARGIN}", help="MIN_FIT_MARGIN values to compare")
    ap.add_argument("--surprises", default=f"{align.MAX_SURPRISE_ANY_MARGIN}",
                    help="MAX_SURPRISE_ANY_MARGIN values to compare (inf: none)")
    ap.add_argument("--groups", default="trained,HELD-OUT,real")
    args = ap.parse_args()
    settings = [(float(m), float(x)) for m in args.margins.split(",") for x in args.surprises.split(",")]
    groups = args.groups.split(",")
    rows = []   # (group, (margin, surprise) tried, right text?, dropped?, the text's margin over reversed)
    with tempfile.TemporaryDirectory() as tmp:
        items = trained_takes(Path(tmp)) if "trained" in groups else []
        items += [(t.group, t.language, t.text, t.samples) for t in takes(Path(tmp), quick=False, groups=set(groups))
                  if t.group in groups and t.group != "trained" and t.text]
        texts: dict[tuple[bool, str], list[str]] = {}
        for group, language, text, _ in items:
            pool = texts.setdefault((group == "trained", language), [])
            if text not in pool:
                pool.append(text)
        for n, (group, language, text, samples) in enumerate(items):
            post = PhoneModel.shared().posteriors(samples)
            for other in texts[(group == "trained", language)]:
                for setting in settings:
                    # read by LiveAligner as it judges, mid-line and at the end
                    align.MIN_FIT_MARGIN, align.MAX_SURPRISE_ANY_MARGIN = setting
                    a = heard(post, other, language)
                    rows.append((group, setting, other == text, a.failed, a._reference.surprise() - a.surprise()))
            print(f"\r{n + 1}/{len(items)} takes", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"{len(items)} takes; MAX_FIT_SURPRISE {align.MAX_FIT_SURPRISE}")
    print("| rows | MIN_FIT_MARGIN | MAX_SURPRISE_ANY_MARGIN | right texts dropped | wrong texts caught "
          "| right margin, lowest | wrong margin, p90 |")
    print("|---|---|---|---|---|---|---|")
    for group in groups:
        for setting in settings:
            right = [r for r in rows if r[0] == group and r[1] == setting and r[2]]
            wrong = [r for r in rows if r[0] == group and r[1] == setting and not r[2]]
            if not right:
                continue
            lost, caught = sum(r[3] for r in right), sum(r[3] for r in wrong)
            print(f"| {group} | {setting[0]:g} | {setting[1]:g} | {lost}/{len(right)} | {caught}/{len(wrong)} "
                  f"({100 * caught / max(1, len(wrong)):.0f} %) | {min(r[4] for r in right):.2f} "
                  f"| {np.percentile([r[4] for r in wrong], 90) if wrong else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
