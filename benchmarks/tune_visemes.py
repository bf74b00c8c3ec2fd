"""Tune posteriors.VISEME_GAIN on the voices the phone model trained on (never on held-out ones).

    python benchmarks/tune_visemes.py

Prints the class score (mean of p/b/m, open, round, f/v recalls) and false closures of the
offline `--lipsync model` path for each candidate gain set, on three sentences per trained voice.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np

import lipsync_accuracy  # noqa: F401,E402 - puts tests/ and models/phones/ on the path
from lipsync_accuracy import class_score, class_sets, labiodental, run, takes  # noqa: E402
from speech import score  # noqa: E402

from talkinghead.arkit import VISEMES
from talkinghead.motion import posteriors


def evaluate(trained) -> dict[str, list[int]]:
    acc: dict[str, list[int]] = {}
    for take in trained:
        track = run(take, "file model", 30.0)
        res = score(track, take.segs, class_sets(take.segs, take.scheme))
        res["labiodental"] = labiodental(track, take.segs, take.scheme)
        for k, (h, n) in res.items():
            a = acc.setdefault(k, [0, 0])
            a[0] += h
            a[1] += n
    return acc


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trained = [t for t in takes(Path(tmp), quick=True) if t.group == "trained"]
        for pp, ff, rounded in itertools.product((1.0, 1.5), (1.0, 2.0), (1.0, 1.5, 2.0)):
            gains = {"PP": pp, "FF": ff, "O": rounded, "U": rounded}
            posteriors._GAIN = np.array([gains.get(v, 1.0) for v in VISEMES], np.float32)
            acc = evaluate(trained)
            fc = acc["no_false_closure"]
            print(f"{gains}: class score {class_score(acc):.3f}  closure {acc['closure']}  round {acc['round']}  "
                  f"f/v {acc['labiodental']}  false closures {fc[1] - fc[0]}/{fc[1]}", flush=True)


if __name__ == "__main__":
    main()
