"""Lip-sync accuracy against true phone timings, per voice and mode, with what each mode costs.

    python benchmarks/lipsync_accuracy.py [--fps 30] [--quick] [--markdown] [--phone-model FILE]
        [--viseme-gain FF=6 ...] [--decode MIN_WEIGHT=0.8 ...] [--groups ...,DEV] [--dev-voices ic1,ma1,...]
        [--stream-lookahead 0.14]

--phone-model measures a candidate phone model (models/phones/CARD.md) instead of the registered
one, for this run only: its SHA-256 is what the registry checks, and it is printed first.

Rows: voices and recordings, grouped as
- "trained": voices the phone model trained on (festival kal/ked, espeak-ng English voices; the
  sentences here are not in its training data, but the voices are);
- "HELD-OUT": voices it never heard: festival's US English HTS voice (slt) and its Italian,
  Finnish, Russian, Catalan and Czech voices (languages it never trained on either; ten voices,
  Debian's festvox-italp16k, -itapc16k, -suopuhe-lj, -suopuhe-mv, -ru, -ca-ona-hts, -czech-dita,
  -czech-krb, -czech-machac, -czech-ph; those not installed are skipped);
- "real": people: ../shared/data/realspeech/ (phone TextGrids; TALKINGHEAD_REALSPEECH names
  another place) and five LibriVox sentences
  (*their reference is pocketsphinx's alignment of the true transcript, not independent truth);
- "DEV" (only with --groups ...,DEV): MBROLA voices of 24 people in 17 languages
  (benchmarks/dev_voices.py; Debian's mbrola packages), never trained on, for choosing settings so
  that HELD-OUT and real stay a test set; pooled in "ALL DEV", never in "ALL unseen".

Modes (columns), each the lips a user gets from that input:
- "file audio": the phone model, no transcript (`params --lipsync model`);
- "file audio sphinx": pocketsphinx's recognition, no transcript (`--lipsync phones`);
- "file audio auto": what `params` does by default without a transcript, given the take's
  language (`--language`): pocketsphinx for English, the phone model for other languages (until
  stop 25 the two above fused);
- "file+text": the transcript aligned over the phone model's posteriors (audio/align.py, any
  language espeak-ng speaks; `--lipsync model` with a transcript, or any non-English transcript);
- "file+text sphinx": pocketsphinx's aligner (`auto` with an English transcript; English only);
- "stream audio": MotionStream in 100 ms chunks (the live path), audio only;
- "stream+text": the same with the line's text and language given first (`begin_line`), where
  this version of MotionStream has it;
- "file acoustic": the old formant rules (not run unless asked for with --modes).
A take's text is known for the synthetic voices, LibriVox and the real recordings whose TextGrid
has a word tier; the "+text" modes skip the others.

Output: first the summary a user reads (one row per voice, recording, group, and per language of
the speech the model never trained on, i.e. HELD-OUT + real, and "ALL unseen": HELD-OUT + real
pooled, the row models/phones/CARD.md's go/no-go rule reads; one column per mode; each cell the
class score with the share of false closures in brackets; the last row the cost), then the
detail (each recall, per row and mode). --json writes the counts for comparing two models.

Checks (tests/speech.py `score`, phone classes from talkinghead.audio.phoneset for every voice
alike): p/b/m sealed within +-40 ms, open vowels open, rounded phones round, f/v lower lip to the
teeth (mouthRollLower >= 0.4 within +-40 ms), long pauses closed, false closures (vowels
whose middle is sealed; lower is better) and false rounding (unrounded vowels whose middle is
rounded; lower is better; in the detail table only) and false f/v (vowels whose middle shows the
lower lip to the teeth; lower is better; in the detail table only). "class score" is the mean of the first four recalls.
Cost: CPU seconds per second of audio, one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "models" / "phones"))

from realspeech import Unavailable, librivox, shared_recordings  # noqa: E402
from speech import PhoneSets, Seg, score, synth_takes  # noqa: E402

from talkinghead.audio import phoneset  # noqa: E402
from talkinghead.audio.decode import SAMPLE_RATE, load_audio  # noqa: E402
from talkinghead.motion import motion_from_audio  # noqa: E402
from talkinghead.motion.options import MotionOptions  # noqa: E402
from talkinghead.motion.stream import MotionStream  # noqa: E402
from talkinghead.track import MotionTrack  # noqa: E402

SENTENCES = [
    "Bob bought a big map, but the pub by the bay was empty.",
    "You knew the moon would move over the blue pool.",
    "My mother made a warm apple pie for Paul.",
    "Five brave women moved up the hill, whispering about the vote.",
    "Please bring me the probe. We must be home by nine.",
    "Hello! How are you? I am fine, thank you, and happy to be back.",
]
MODES = ("file audio", "file audio sphinx", "file audio auto", "file+text", "file+text sphinx", "stream audio", "stream+text")
EXTRA_MODES = ("file acoustic",)
# the modes of the earlier table, still accepted (benchmarks/tune_visemes.py runs "file model")
ALIASES = {"file model": "file audio", "file phones": "file audio sphinx", "file + text": "file+text sphinx",
           "stream model": "stream audio"}
CHECKS = ("closure", "open", "round", "labiodental", "silence", "false_closure", "false_round", "false_fv")
SPREAD_VOWELS = frozenset({"i", "e", "a", "ae"})   # phoneset classes whose lips spread or open (false rounding)
VOWELS = frozenset({"i", "e", "@", "a", "ae", "O", "o", "u", "y"})   # phoneset's vowel classes (false f/v)
TRAINED_VOICES = {"kal_diphone", "ked_diphone", "espeak en-us", "espeak en-gb", "espeak en-us+f1"}


@dataclass
class Take:
    group: str          # "trained", "HELD-OUT", "real"
    voice: str
    text: str           # "" where the words are not known
    samples: np.ndarray
    segs: list[Seg]
    scheme: str
    language: str = "en"


def class_sets(segs: list[Seg], scheme: str) -> PhoneSets:
    first = {s.phone: (phoneset.classes_of(s.phone, scheme) or ("?",))[0] for s in segs}
    pick = lambda group: frozenset(p for p, c in first.items() if c in group)  # noqa: E731
    return PhoneSets(pick(phoneset.BILABIAL), pick(phoneset.OPEN), pick(phoneset.ROUNDED), pick(phoneset.SILENT))


def labiodental(track: MotionTrack, segs: list[Seg], scheme: str) -> tuple[int, int]:
    hits = n = 0
    roll = track.channel("mouthRollLower")
    for s in segs:
        if (phoneset.classes_of(s.phone, scheme) or ("?",))[0] in phoneset.LABIODENTAL:
            w = (track.times >= s.start - 0.04) & (track.times <= s.end + 0.04)
            hits += bool(w.any() and roll[w].max() >= 0.4)
            n += 1
    return hits, n


def _shown_mid_vowel(values: np.ndarray, track: MotionTrack, segs: list[Seg], scheme: str,
                     vowels: frozenset[str], threshold: float) -> tuple[int, int]:
    """(vowels shown, vowels): vowels of `vowels`' classes of >= 80 ms whose middle (+-20 ms)
    `values` (one per frame of `track`) reach `threshold`."""
    shown = n = 0
    for s in segs:
        if (phoneset.classes_of(s.phone, scheme) or ("?",))[0] in vowels and s.end - s.start >= 0.08:
            w = np.abs(track.times - (s.start + s.end) / 2) <= 0.02
            if w.any():
                shown += bool(values[w].max() >= threshold)
                n += 1
    return shown, n


def false_labiodental(track: MotionTrack, segs: list[Seg], scheme: str) -> tuple[int, int]:
    """(vowels shown f/v, vowels): the middle of a vowel whose lower lip (mouthRollLower) reaches
    the 0.4 that counts an f/v as shown (lower is better: the check a bolder f/v must not fail)."""
    return _shown_mid_vowel(track.channel("mouthRollLower"), track, segs, scheme, VOWELS, 0.4)


def false_rounding(track: MotionTrack, segs: list[Seg], scheme: str) -> tuple[int, int]:
    """(vowels shown rounded, vowels): the middle of an unrounded vowel whose rounding
    (mouthPucker + mouthFunnel) reaches the 0.35 that counts a rounded phone as round (lower is
    better; the rounding of a neighbouring oo/w spread too far)."""
    rounding = track.channel("mouthPucker") + track.channel("mouthFunnel")
    return _shown_mid_vowel(rounding, track, segs, scheme, SPREAD_VOWELS, 0.35)


def checks(take: Take, track: MotionTrack) -> dict[str, tuple[int, int]]:
    """(hits, total) per check (CHECKS) of `track` against the take's true phones."""
    res = score(track, take.segs, class_sets(take.segs, take.scheme))
    res["labiodental"] = labiodental(track, take.segs, take.scheme)
    res["false_round"] = false_rounding(track, take.segs, take.scheme)
    res["false_fv"] = false_labiodental(track, take.segs, take.scheme)
    fc = res.pop("no_false_closure")
    res["false_closure"] = (fc[1] - fc[0], fc[1])
    return res


def add_counts(acc: dict[str, list[int]], res: dict[str, tuple[int, int]]) -> None:
    """Pool one take's checks into `acc`."""
    for check, (hit, n) in res.items():
        a = acc.setdefault(check, [0, 0])
        a[0] += hit
        a[1] += n


def has_line_text() -> bool:
    """Whether this MotionStream takes a line's text before its audio (begin_line)."""
    return hasattr(MotionStream, "begin_line")


def stream_track(samples: np.ndarray, fps: float, text: str = "", language: str = "en") -> MotionTrack:
    stream = MotionStream(MotionOptions(fps=fps, language=language))
    step = SAMPLE_RATE // 10
    frames = stream.begin_line(text=text, language=language) if text else []
    for i in range(0, len(samples), step):
        frames += stream.push(samples[i: i + step])
    frames += stream.flush()
    return MotionTrack(fps=fps, duration=len(frames) / fps, blendshapes=np.stack([f.blendshapes for f in frames]),
                       head=np.zeros((len(frames), 6), np.float32), gaze=np.zeros((len(frames), 4), np.float32),
                       visemes=[f.viseme for f in frames])


def run(take: Take, mode: str, fps: float) -> MotionTrack | None:
    """The take's track in `mode` (MODES, EXTRA_MODES); None where the mode does not apply."""
    mode = ALIASES.get(mode, mode)
    if "+text" in mode and not take.text:
        return None
    if mode == "stream audio":
        return stream_track(take.samples, fps)
    if mode == "stream+text":
        return stream_track(take.samples, fps, take.text, take.language) if has_line_text() else None
    if mode == "file+text":
        options = MotionOptions(fps=fps, lipsync="model", language=take.language)
        return motion_from_audio(take.samples, SAMPLE_RATE, options, take.text)
    if mode == "file+text sphinx":
        if take.language != "en":
            return None
        return motion_from_audio(take.samples, SAMPLE_RATE, MotionOptions(fps=fps, lipsync="auto"), take.text)
    if mode == "file audio auto":
        return motion_from_audio(take.samples, SAMPLE_RATE, MotionOptions(fps=fps, language=take.language), None)
    lipsync = {"file audio": "model", "file audio sphinx": "phones", "file acoustic": "acoustic"}[mode]
    return motion_from_audio(take.samples, SAMPLE_RATE, MotionOptions(fps=fps, lipsync=lipsync), None)


def dev_takes(quick: bool, voices: list[str] | None = None) -> list[Take]:
    """The DEV group: MBROLA voices (benchmarks/dev_voices.py) for choosing settings, or `voices`
    instead; [] with a note where none is installed."""
    import dev_voices

    try:
        utts = dev_voices.utterances(3 if quick else 6, voices)
    except dev_voices.Unavailable as exc:
        print(f"(DEV skipped: {exc})", file=sys.stderr)
        return []
    return [Take("DEV", f"mbrola {u.voice} ({u.language})", u.text, u.audio, [Seg(*s) for s in u.segs], "sampa",
                 u.language) for u in utts]


def takes(tmp: Path, quick: bool, groups: set[str] = frozenset({"trained", "HELD-OUT", "real"}),
          dev_voices: list[str] | None = None) -> list[Take]:
    from make_data import FESTIVAL_HELDOUT, HELDOUT_SENTENCES, festival_utterances

    out = dev_takes(quick, dev_voices) if "DEV" in groups else []
    if not groups - {"DEV"}:
        return out
    for t in synth_takes(SENTENCES[:3] if quick else SENTENCES, tmp):
        voice = t.voice
        group = "trained" if voice in TRAINED_VOICES else "HELD-OUT"
        scheme = "sampa" if voice.startswith("espeak") else "arpabet"
        out.append(Take(group, voice, t.text, load_audio(t.wav), t.segs, scheme))
    for voice, (lang, scheme, encoding) in FESTIVAL_HELDOUT.items():
        if lang == "en":
            continue   # slt is in synth_takes already
        if not list(Path("/usr/share/festival/voices").glob(f"*/{voice}")):
            print(f"({voice} skipped: not installed; apt-get install the festvox package make_data.py names)",
                  file=sys.stderr)
            continue
        texts = HELDOUT_SENTENCES[lang][:2] if quick else HELDOUT_SENTENCES[lang]
        for u in festival_utterances(texts, voice, scheme, encoding):
            pad = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
            segs = [Seg("pau", 0.0, 0.8)] + [Seg(s.phone, s.start + 0.8, s.end + 0.8) for s in u.segs]
            end = segs[-1].end
            segs.append(Seg("pau", end, end + 0.8))
            out.append(Take("HELD-OUT", f"{voice} ({lang})", u.text, np.concatenate([pad, u.audio, pad]), segs,
                             scheme, lang))
    for rec, scheme in shared_recordings():
        out.append(Take("real", f"realspeech {rec.wav.stem}", rec.text, load_audio(rec.wav), rec.segs, scheme))
    try:
        for rec in librivox():
            out.append(Take("real", "LibriVox*", rec.text, load_audio(rec.wav), rec.segs, "arpabet"))
    except Unavailable as exc:
        print(f"(LibriVox skipped: {exc})", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--quick", action="store_true", help="fewer sentences per voice")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated subset of: " + ", ".join(MODES + EXTRA_MODES))
    ap.add_argument("--groups", default="trained,HELD-OUT,real", help="comma-separated subset of the row groups")
    ap.add_argument("--dev-voices", type=lambda v: v.split(","), metavar="ic1,ma1,...",
                    help="these MBROLA voices as the DEV group (and its ALL DEV row) instead of dev_voices.VOICES: "
                         "e.g. dev_voices.MORE_VOICES' (the diagnostic of models/phones/CARD.md run F)")
    ap.add_argument("--json", type=Path, help="also write the totals here")
    ap.add_argument("--phone-model", type=Path, help="a candidate phone model (.onnx) to measure instead")
    ap.add_argument("--viseme-gain", nargs="+", default=[], metavar="VISEME=GAIN",
                    help="candidate posteriors.VISEME_GAIN entries to measure instead (benchmarks/tune_visemes.py)")
    ap.add_argument("--decode", nargs="+", default=[], metavar="NAME=VALUE",
                    help="candidate posteriors settings (MIN_WEIGHT, SMOOTH_FRAMES) to measure instead")
    ap.add_argument("--stream-lookahead", type=float, metavar="S",
                    help="the stream modes' wait (motion.stream.LOOKAHEAD_S, s) instead of the committed one: "
                         "a candidate phone model with more right context wants a longer one (CARD run G)")
    args = ap.parse_args()
    if args.stream_lookahead is not None:
        from talkinghead.motion import stream

        stream.LOOKAHEAD_S = args.stream_lookahead   # final_frames() reads it at each push
        print(f"stream lookahead: {stream.LOOKAHEAD_S} s")
    if args.decode:
        print(f"decoding: {use_decoding(dict(item.split('=') for item in args.decode))}")
    if args.phone_model:
        use_phone_model(args.phone_model)
    if args.viseme_gain:
        gains = dict(item.split("=") for item in args.viseme_gain)
        print(f"viseme gains: {use_viseme_gains({name: float(gain) for name, gain in gains.items()})}")
    modes = [ALIASES.get(m.strip(), m.strip()) for m in args.modes.split(",")]
    unknown = set(modes) - set(MODES + EXTRA_MODES)
    if unknown:
        sys.exit(f"unknown modes {sorted(unknown)}: choose from {', '.join(MODES + EXTRA_MODES)}")
    if "stream+text" in modes and not has_line_text():
        print("(stream+text skipped: this MotionStream has no begin_line)", file=sys.stderr)
    totals: dict[tuple[str, str, str], dict[str, list[int]]] = {}
    cost: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        groups = set(args.groups.split(","))
        all_takes = [t for t in takes(Path(tmp), args.quick, groups, args.dev_voices) if t.group in groups]
        for take in all_takes:
            for mode in modes:
                t0 = time.process_time()
                track = run(take, mode, args.fps)
                if track is None:
                    continue
                spent = time.process_time() - t0
                c = cost.setdefault(mode, [0.0, 0.0])
                c[0] += spent
                c[1] += len(take.samples) / SAMPLE_RATE
                res = checks(take, track)
                keys = [(take.group, take.voice, mode), (f"ALL {take.group}", "", mode)]
                if take.group in ("HELD-OUT", "real"):   # the test set: pooled, and by language
                    keys += [("ALL unseen", "HELD-OUT + real", mode), ("language", take.language, mode)]
                for key in keys:
                    add_counts(totals.setdefault(key, {}), res)
    print_summary(totals, cost, modes, args.markdown)
    print()
    print_table(totals, cost, modes, args.markdown)
    if args.json:
        args.json.write_text(json.dumps({" | ".join(k): v for k, v in totals.items()} | {"cost": cost}, indent=1))


def use_phone_model(path: Path) -> None:
    """The phone model at `path` instead of the registered one, for this process: the registry is
    given its SHA-256 (it refuses any other file, by design) and TALKINGHEAD_PHONE_MODEL points at it."""
    import dataclasses
    import os

    from talkinghead import models
    from talkinghead.audio.phone_model import PhoneModel

    if not path.is_file():
        sys.exit(f"--phone-model: no file {path}")
    entry = models.MODELS["phones"]
    sha = models.sha256_of(path)
    models.MODELS["phones"] = dataclasses.replace(entry, sha256=sha)
    os.environ[entry.env_var] = str(path.resolve())
    model = PhoneModel.shared()
    print(f"phone model: {path} (SHA-256 {sha}, lookahead {model.lookahead_frames} frames)")


def use_viseme_gains(changes: dict[str, float]) -> dict[str, float]:
    """posteriors.VISEME_GAIN with `changes`, for this process (a candidate's figures); returns
    the gains now used."""
    from talkinghead.motion import posteriors

    gains = dict(posteriors.VISEME_GAIN, **changes)
    posteriors._GAIN = posteriors.gain_vector(gains)
    return gains


def use_decoding(changes: dict) -> dict:
    """posteriors' decoding settings (MIN_WEIGHT, SMOOTH_FRAMES) changed for this process (a
    candidate's figures); returns them as now used."""
    from talkinghead.motion import posteriors

    for name, value in changes.items():
        if name not in ("MIN_WEIGHT", "SMOOTH_FRAMES"):
            raise SystemExit(f"--decode: unknown setting {name}")
        setattr(posteriors, name, int(value) if name == "SMOOTH_FRAMES" else float(value))
    return {n: getattr(posteriors, n) for n in ("MIN_WEIGHT", "SMOOTH_FRAMES")}


def _pct(hit: int, n: int) -> str:
    return f"{100 * hit / n:.0f}%" if n else "-"


def class_score(res: dict[str, list[int]]) -> float:
    parts = [res[c][0] / res[c][1] for c in ("closure", "open", "round", "labiodental") if res.get(c, [0, 0])[1]]
    return float(np.mean(parts)) if parts else float("nan")


GROUP_ORDER = {"trained": 0, "DEV": 1, "HELD-OUT": 2, "real": 3, "language": 5, "unseen": 6}


def _row_order(row: tuple[str, str]) -> tuple:
    group, name = row
    return (group.startswith("ALL"), GROUP_ORDER.get(group.replace("ALL ", ""), 3), name)


def _emit(cells: list[str], markdown: bool, width: int = 13) -> None:
    print(("| " + " | ".join(cells) + " |") if markdown else "  ".join(f"{c:>{width}s}" for c in cells))


def print_summary(totals, cost, modes, markdown: bool) -> None:
    """One row per voice / recording / group / language, one column per mode: class score
    (false closures of open vowels)."""
    rows = sorted({k[:2] for k in totals}, key=_row_order)
    head = ["group", "voice / language"] + modes
    _emit(head, markdown, 17)
    if markdown:
        print("|" + "---|" * len(head))
    for row in rows:
        cells = list(row)
        for mode in modes:
            res = totals.get((*row, mode))
            cells.append("" if res is None else f"{class_score(res):.2f} ({_pct(*res['false_closure'])})")
        _emit(cells, markdown, 17)
    cells = ["cost", "CPU s / s audio"] + [f"{cost[m][0] / cost[m][1]:.3f}" if cost.get(m, [0, 0])[1] else ""
                                          for m in modes]
    _emit(cells, markdown, 17)


def print_table(totals, cost, modes, markdown: bool) -> None:
    keys = sorted(totals, key=lambda k: (*_row_order(k[:2]), modes.index(k[2])))
    head = ["group", "voice", "mode", "class score", "p/b/m sealed", "open", "round", "f/v", "pauses closed",
            "false closures", "false rounding", "false f/v"]
    _emit(head, markdown)
    if markdown:
        print("|" + "---|" * len(head))
    for key in keys:
        res = totals[key]
        cells = [key[0], key[1], key[2], f"{class_score(res):.2f}"] + [
            f"{res[c][0]}/{res[c][1]} {_pct(*res[c])}" for c in CHECKS]
        _emit(cells, markdown)
    for mode in modes:
        if mode in cost and cost[mode][1]:
            print(f"cost, {mode}: {cost[mode][0] / cost[mode][1]:.3f} CPU s per second of audio "
                  f"({cost[mode][1]:.0f} s of audio)")


if __name__ == "__main__":
    main()
