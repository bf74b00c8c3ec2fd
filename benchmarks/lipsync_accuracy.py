"""Lip-sync accuracy against true phone timings (festival and espeak-ng), with and without a transcript.

    python benchmarks/lipsync_accuracy.py [--fps 30]

Each line is padded with 0.8 s of room tone. Prints, per voice and mode, the share of p/b/m
with a full lip closure within +-40 ms, open vowels that open, rounded phones that round, long
pauses that stay closed, and vowels whose middle is NOT sealed (precision of the closures); plus
seconds of CPU per second of audio. *LibriVox: five sentences read by a person (pocketsphinx's test
data); their reference is pocketsphinx's alignment of the true transcript, not independent truth.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from realspeech import ARPABET_SETS, librivox  # noqa: E402
from speech import Take, score, synth_takes  # noqa: E402

from talkinghead.audio.decode import load_audio  # noqa: E402
from talkinghead.motion import motion_from_audio  # noqa: E402
from talkinghead.motion.options import MotionOptions  # noqa: E402

SENTENCES = [
    "Bob bought a big map, but the pub by the bay was empty.",
    "You knew the moon would move over the blue pool.",
    "My mother made a warm apple pie for Paul.",
    "Five brave women moved up the hill, whispering about the vote.",
    "Please bring me the probe. We must be home by nine.",
    "Hello! How are you? I am fine, thank you, and happy to be back.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()
    totals: dict[str, dict[str, list[int]]] = {}
    cpu: dict[str, float] = {}
    audio_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        human = [Take("LibriVox human*", r.text, r.wav, r.segs, ARPABET_SETS) for r in librivox()]
        for take in synth_takes(SENTENCES, Path(tmp)) + human:
            samples = load_audio(take.wav)
            for mode, transcript in (("transcript", take.text), ("audio only", None)):
                t0 = time.process_time()
                track = motion_from_audio(samples, 16000, MotionOptions(fps=args.fps), transcript)
                cpu[mode] = cpu.get(mode, 0.0) + time.process_time() - t0
                audio_s[mode] = audio_s.get(mode, 0.0) + track.duration
                keys = [f"{take.voice:24s} {mode:10s}"]
                if not take.voice.startswith("LibriVox"):
                    keys.append(f"{'ALL synthetic':24s} {mode:10s}")
                for key in keys:
                    for check, (hit, n) in score(track, take.segs, take.sets).items():
                        acc = totals.setdefault(key, {}).setdefault(check, [0, 0])
                        acc[0] += hit
                        acc[1] += n
    checks = ("closure", "open", "round", "silence", "no_false_closure")
    print(f"{'voice':24s} {'mode':10s} " + " ".join(f"{c:>16s}" for c in checks))
    for key in sorted(totals, key=lambda k: (k.startswith("ALL"), k)):
        res = totals[key]
        print(key + " " + " ".join(f"{res[c][0]:>6d}/{res[c][1]:<4d}{100 * res[c][0] / max(1, res[c][1]):4.0f}%" for c in checks))
    for mode in cpu:
        print(f"CPU, {mode}: {cpu[mode] / audio_s[mode]:.3f} s per second of audio at {args.fps:g} fps "
              f"({audio_s[mode]:.1f} s of audio, one core)")


if __name__ == "__main__":
    main()
