"""Tune posteriors.VISEME_GAIN on the voices the phone model trained on (never on held-out ones).

    python benchmarks/tune_visemes.py [--ff | --dev]

Prints the class score (mean of p/b/m, open, round, f/v recalls) and false closures of the
offline `--lipsync model` path for each candidate gain set, on three sentences per trained voice.

--ff: the f/v gain alone (the others as committed), with false f/v (vowels shown with the lower
lip to the teeth), on all six sentences per trained voice. Why (stop 24): on unseen speech the
lips showed every f/v the decoding found (23 of 23) but the decoding found 23 of 43, while the
model's FF posterior passed 0.2 in 31 of them; no vowel of 480 unseen ones showed f/v. The rule,
fixed before any held-out run: the largest FF gain whose false f/v on the trained voices stays
at most 1 % of their vowels and whose trained class score is at most 0.01 below the committed
gain's; none above 2.0 -> 2.0 stays. Its one held-out run (benchmarks/lipsync_accuracy.py
--modes "file audio,stream audio" --groups HELD-OUT,real, with --viseme-gain FF=<chosen> and
without) keeps it only if, on ALL unseen, the
class score rises by >= 0.01 in both modes, false f/v stays <= 1 % of the vowels and false
closures <= the committed gain's + 1 % of the scored vowels.

Its run (stop 24): the trained voices barely tell the gains apart (class score 0.962-0.972, false
f/v 2/247 at every gain); the rule chose 6.0. Held out, against 2.0 in the same session, on ALL
unseen: class score 0.76 -> 0.81 (file audio) and 0.75 -> 0.81 (stream audio), f/v 23 -> 34 and
21 -> 33 of 43, false f/v 1 -> 2 of 480, false closures 6 -> 5 and 7 -> 6 of 339: the rule says keep
it. NOT applied: the gain comes out of the p/b/m closures (242 -> 231 and 244 -> 233 of 301; a
frame the model finds between p and f is now shown f), which the class score weighs a quarter
like the 43 f/v, and on real people it is a loss with nothing gained (f/v 6/8 both ways, closures
28 -> 25 of 45, class score 0.73 -> 0.70 file, 0.75 -> 0.73 stream). The rule should have guarded
each class recall and the real rows; a new rule needs material that is not this held-out set.

--dev (stop 25): the decoding's settings chosen on the DEV voices (benchmarks/dev_voices.py: 24
MBROLA voices in 17 languages, never trained on, never part of the test set), in both "file audio"
and "stream audio" — the material stop 24 lacked. Coordinate ascent from the committed settings,
two passes over: the FF gain (2, 3, 4, 6, 8), FF_OVER_PP (None, 2, 1: f/v beats p/b/m only at
this ratio; removed since), the O and U gains together (2, 2.5, 3, 4) and posteriors.MIN_WEIGHT (0.6, 0.7,
0.8, 1.0). Objective: the mean of the two modes' ALL DEV class scores. A setting is admissible only
if, in each mode on ALL DEV: the p/b/m, open and round recalls are each at most 0.01 below the
committed settings', false closures at most the committed's + 1 % of the scored vowels, false
rounding and false f/v each at most the committed's + 1 % of their vowels. This rule was fixed
before its run, but for one correction made during it: it first bounded false f/v at 1 % of the
vowels, which the committed settings themselves exceed on DEV (7 and 6 of 496), so it could choose
nothing; the bound is now relative, like the others (DEV is for choosing; the test rule below
was not touched). The held-out (test) rule for what it chooses, also fixed
before that run: `lipsync_accuracy.py --modes "file audio,stream audio" --groups HELD-OUT,real`
with the chosen settings and without, same session; keep them only if on ALL unseen the class
score rises by >= 0.01 in both modes, p/b/m recall falls by at most 0.01 in either, false closures
stay <= 3 % and <= the committed's + 1 % of the scored vowels, and on ALL real the class score
does not fall in either mode.

Its run (stop 25), on ALL DEV (class score, mean of the two modes): committed 0.786; FF 3, 4, 6, 8:
0.798, 0.803, 0.808, 0.814, but from FF 4 up the p/b/m recall falls by more than 0.01 (542 -> 531
of 678 closures, file audio); FF_OVER_PP 2 or 1 with FF 3: 0.785, 0.794 (it kept closures, 561
and 553, but took as many f/v: a true f/v frame is often one the model finds more p than f);
O/U 2.5-4: 0.800-0.801, MIN_WEIGHT 0.7-1.0: 0.805-0.821 — all with false rounding past the bound
(32 -> 39-55 of 340). Chosen: FF 3. That run's DEV voices spoke on one note (dev_voices.py then
dropped espeak-ng's pitch targets); with their intonation FF 2, 3, 4, 6 score 0.768, 0.782, 0.789,
0.794, and FF 4 and 6 again lose more than 1 % of the closures (525 -> 515 and 507 of 678, file
audio), so the choice stands (O/U and MIN_WEIGHT not re-run). Held out (the rule above; same
session, 2026-12-06): ALL unseen class score 0.758 -> 0.781 (file audio) and 0.750 -> 0.784
(stream audio), f/v 23 -> 27 and 21 -> 27 of 43, p/b/m 242 -> 241 and 244 -> 243 of 301, false
closures 6 -> 5 and 7 -> 6 of 339, ALL real unchanged (0.73, 0.75): kept (posteriors.VISEME_GAIN).
FF_OVER_PP, tried here, is gone from the code and from DEV_GRID; the figures above are its record.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np

# lipsync_accuracy puts tests/ and models/phones/ on the path (speech, make_data)
from lipsync_accuracy import (add_counts, checks, class_score, dev_takes, run, takes, use_decoding,  # noqa: E402
                              use_viseme_gains)

from talkinghead.motion import posteriors


def evaluate(takes_, mode: str = "file audio") -> dict[str, list[int]]:
    """The takes' checks in `mode`, pooled."""
    acc: dict[str, list[int]] = {}
    for take in takes_:
        add_counts(acc, checks(take, run(take, mode, 30.0)))
    return acc


def tune_ff(trained) -> None:
    rows = []
    for ff in (2.0, 2.5, 3.0, 4.0, 5.0, 6.0):
        use_viseme_gains({"FF": ff})
        acc = evaluate(trained)
        fc, fv = acc["false_closure"], acc["false_fv"]
        rows.append((ff, class_score(acc), fv[0] / fv[1]))
        print(f"FF {ff}: class score {class_score(acc):.3f}  f/v {acc['labiodental']}  false f/v {fv[0]}/{fv[1]}  "
              f"false closures {fc[0]}/{fc[1]}", flush=True)
    committed = next(cs for ff, cs, _ in rows if ff == posteriors.VISEME_GAIN["FF"])
    ok = [ff for ff, cs, false_fv in rows if false_fv <= 0.01 and cs >= committed - 0.01]
    print(f"chosen by the rule: FF {max(ok + [posteriors.VISEME_GAIN['FF']])}")


DEV_GRID = {"FF": (2.0, 3.0, 4.0, 6.0, 8.0), "OU": (2.0, 2.5, 3.0, 4.0),
            "MIN_WEIGHT": (0.6, 0.7, 0.8, 1.0)}


def apply(setting: dict) -> None:
    use_viseme_gains({"FF": setting["FF"], "O": setting["OU"], "U": setting["OU"]})
    use_decoding({"MIN_WEIGHT": setting["MIN_WEIGHT"]})


def evaluate_modes(dev, setting: dict) -> dict[str, dict[str, list[int]]]:
    apply(setting)
    return {mode: evaluate(dev, mode) for mode in ("file audio", "stream audio")}


def admissible(res: dict, base: dict) -> bool:
    for mode, acc in res.items():
        b = base[mode]
        rate = lambda a, k: a[k][0] / a[k][1]  # noqa: E731
        if any(rate(acc, k) < rate(b, k) - 0.01 for k in ("closure", "open", "round")):
            return False
        for k in ("false_closure", "false_round", "false_fv"):
            if acc[k][0] > b[k][0] + 0.01 * acc[k][1]:
                return False
    return True


def tune_dev() -> None:
    dev = dev_takes(quick=False)
    if not dev:
        raise SystemExit("no DEV voice installed: bash benchmarks/install_dev_voices.sh")
    current = {"FF": posteriors.VISEME_GAIN["FF"], "OU": posteriors.VISEME_GAIN["O"], "MIN_WEIGHT": posteriors.MIN_WEIGHT}
    seen: dict[tuple, tuple[float, dict]] = {}

    def measure(setting: dict) -> tuple[float, dict]:
        key = tuple(sorted(setting.items(), key=lambda kv: kv[0]))
        if key not in seen:
            res = evaluate_modes(dev, setting)
            objective = float(np.mean([class_score(acc) for acc in res.values()]))
            seen[key] = (objective, res)
            detail = " | ".join(f"{mode}: {class_score(a):.3f} closure {a['closure'][0]} open {a['open'][0]} "
                                f"round {a['round'][0]} f/v {a['labiodental'][0]} false closures "
                                f"{a['false_closure'][0]} false rounding {a['false_round'][0]} false f/v "
                                f"{a['false_fv'][0]}" for mode, a in res.items())
            print(f"{setting}: {objective:.4f}  {detail}", flush=True)
        return seen[key]

    committed, base = measure(current)
    best, best_obj = dict(current), committed
    for _ in range(2):
        for name, values in DEV_GRID.items():
            for value in values:
                cand = dict(best, **{name: value})
                obj, res = measure(cand)
                if obj > best_obj and admissible(res, base):
                    best, best_obj = cand, obj
    print(f"chosen by the rule: {best} (objective {best_obj:.4f}; committed {committed:.4f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ff", action="store_true", help="the f/v gain alone, with false f/v, and the rule's choice")
    ap.add_argument("--dev", action="store_true", help="the decoding's settings on the DEV voices, by the rule above")
    args = ap.parse_args()
    if args.dev:
        tune_dev()
        return
    if args.ff:
        with tempfile.TemporaryDirectory() as tmp:
            tune_ff([t for t in takes(Path(tmp), quick=False) if t.group == "trained"])
        return
    with tempfile.TemporaryDirectory() as tmp:
        trained = [t for t in takes(Path(tmp), quick=True) if t.group == "trained"]
        for pp, ff, rounded in itertools.product((1.0, 1.5), (1.0, 2.0), (1.0, 1.5, 2.0)):
            gains = {"PP": pp, "FF": ff, "O": rounded, "U": rounded}
            use_viseme_gains(gains)
            acc = evaluate(trained)
            fc = acc["false_closure"]
            print(f"{gains}: class score {class_score(acc):.3f}  closure {acc['closure']}  round {acc['round']}  "
                  f"f/v {acc['labiodental']}  false closures {fc[0]}/{fc[1]}", flush=True)


if __name__ == "__main__":
    main()
