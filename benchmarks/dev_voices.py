"""DEV voices: MBROLA diphone voices (recordings of people, many languages) with exact phone
timings, for CHOOSING settings (decoding, gains, candidate models) on speech the phone model never
heard, so that the HELD-OUT voices and real recordings of benchmarks/lipsync_accuracy.py stay a
test set read once per decision.

    bash benchmarks/install_dev_voices.sh   # mbrola + the mbrola-* packages VOICES names (Debian contrib/non-free)

Never trained on: the MBROLA voices' licences allow non-commercial use only, so they must not
go into the project's Apache-2.0 weights (models/phones/make_data.py does not know them), and
they are never shipped; this module only measures with them.

How: espeak-ng's front end turns the text into MBROLA's phone file (`espeak-ng -v mb-XX --pho`:
each phone with its duration in ms), the `mbrola` binary speaks exactly that file, so the phone
timings are the synthesiser's own. The text is random frequent words of the language (wordfreq,
as make_data.py's training text, with a seed of its own), so nothing is chosen on the test
sentences either.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MBROLA_DIR = Path("/usr/share/mbrola")
SEED = 20261206
# voice -> language of its text (wordfreq code = espeak-ng's language for the stream+text mode)
VOICES = {
    "us1": "en", "us2": "en", "us3": "en", "en1": "en",
    "de2": "de", "de5": "de", "fr1": "fr", "fr4": "fr", "es2": "es", "es3": "es", "nl2": "nl", "nl3": "nl",
    "pl1": "pl", "pt1": "pt", "sw1": "sv", "sw2": "sv", "it3": "it", "it4": "it", "cz2": "cs",
    "ro1": "ro", "hu1": "hu", "tr2": "tr", "id1": "id", "gr2": "el",
}   # left out: Estonian's ee1 (wordfreq has no Estonian list), Brazilian br1 (its phone "y" is not ours to guess)
# More MBROLA voices, never part of "ALL DEV" (`lipsync_accuracy.py --dev-voices ic1,ma1,...` measures
# them instead of VOICES): languages run F's Kokoro added (models/phones/CARD.md "Run F") and Persian,
# which it did not, as a control. Their phone names were not checked against audio.phoneset as
# VOICES' were, and 6 utterances give them 9-54 open vowels each: a diagnostic, not a DEV set.
MORE_VOICES = {"ic1": "is", "ma1": "ms", "in1": "hi", "in2": "hi", "lt1": "lt", "ir1": "fa"}
ALL_VOICES = {**VOICES, **MORE_VOICES}   # what install_dev_voices.sh installs
# MBROLA's SAMPA where it differs from espeak-ng's mnemonics (audio.phoneset.from_espeak)
_TO_ESPEAK = {"{": "&", "Q": "0", "J": "n^", "H": "w", "6": "@", "2": "Y", "9": "W", "}": "u", "1": "i",
              "r=": "r", "3`": "3", "@`": "3", "7": "@", "=": "", "rr": "r", "jj": "j", "L": "l^",
              "5": "l", "rs": "s.", "pf": "p", "#": "_"}


@dataclass
class DevUtterance:
    voice: str
    language: str
    text: str
    audio: np.ndarray         # float32, 16 kHz
    segs: list[tuple[str, float, float]]   # (phone as an espeak-ng mnemonic, start s, end s)


class Unavailable(RuntimeError):
    pass


def to_espeak(symbol: str) -> str:
    """An MBROLA SAMPA phone -> the espeak-ng mnemonic audio.phoneset maps (scheme "sampa")."""
    core = symbol.replace("~", "").replace(":", "")
    if core in _TO_ESPEAK:
        return _TO_ESPEAK[core]
    if len(core) == 2 and core[1] in _TO_ESPEAK:
        return core[0] + _TO_ESPEAK[core[1]]      # diphthongs such as "a6", "O2"
    if len(core) == 2 and core[0] in _TO_ESPEAK:
        return _TO_ESPEAK[core[0]] + core[1]
    return core


def installed() -> list[str]:
    if not (shutil.which("mbrola") and shutil.which("espeak-ng")):
        return []
    return [v for v in VOICES if (MBROLA_DIR / v / v).is_file()]


def _pho(text: str, voice: str, wpm: int) -> str:
    """espeak-ng's MBROLA phone file for `text`: a phone, its duration in ms and its pitch
    targets per line."""
    return subprocess.run(["espeak-ng", "-v", f"mb-{voice}", "-s", str(wpm), "--pho", "-q", text],
                          capture_output=True, text=True, timeout=60, check=True).stdout


def speak(text: str, voice: str, wpm: int = 140) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """MBROLA voice `voice` says `text` at `wpm` words a minute (espeak-ng's 175 gives vowels of
    15-30 ms): 16 kHz audio and its phones (espeak-ng mnemonics, s). mbrola speaks espeak-ng's
    phone file as it is (durations and intonation), so the phones' times are the audio's."""
    import soundfile
    import soxr

    pho_text = _pho(text, voice, wpm)
    with tempfile.TemporaryDirectory() as tmp:
        pho, wav = Path(tmp) / "a.pho", Path(tmp) / "a.wav"
        pho.write_text(pho_text)
        # -e: a diphone the voice lacks becomes silence of the same length instead of an abort
        subprocess.run(["mbrola", "-e", str(MBROLA_DIR / voice / voice), str(pho), str(wav)],
                       capture_output=True, timeout=60, check=True)
        audio, rate = soundfile.read(wav, dtype="float32")
    if rate != 16000:
        audio = soxr.resample(audio, rate, 16000).astype(np.float32)
    segs, t = [], 0.0
    for line in pho_text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(";"):
            d = float(parts[1]) / 1000
            segs.append((to_espeak(parts[0]), t, t + d))
            t += d
    if abs(len(audio) / 16000 - t) > 0.02:
        raise Unavailable(f"mbrola {voice}: audio {len(audio) / 16000:.3f} s but phones {t:.3f} s")
    return audio, segs


def utterances(per_voice: int, voices: list[str] | None = None, pad: float = 0.8) -> list[DevUtterance]:
    """`per_voice` random sentences per installed DEV voice (or per voice of `voices`, VOICES' or
    MORE_VOICES'), padded with `pad` s of silence."""
    import wordfreq
    import unicodedata

    voices = voices or installed()
    if not voices:
        raise Unavailable("no MBROLA voice installed: bash benchmarks/install_dev_voices.sh")
    out = []
    for voice in voices:
        lang = ALL_VOICES[voice]
        words = [w for w in wordfreq.top_n_list(lang, 5000)
                 if w and all(unicodedata.category(ch)[0] in "LM" for ch in w)]
        rng = random.Random(f"{SEED}-{voice}")
        made = []
        try:
            for _ in range(per_voice):
                text = " ".join(rng.choice(words) + (rng.choice([",", "."]) if rng.random() < 0.1 else "")
                                for _ in range(rng.randint(6, 14)))
                audio, segs = speak(text, voice, rng.randint(120, 160))
                z = np.zeros(int(pad * 16000), np.float32)
                segs = [("_", 0.0, pad)] + [(p, a + pad, b + pad) for p, a, b in segs]
                segs.append(("_", segs[-1][2], segs[-1][2] + pad))
                made.append(DevUtterance(voice, lang, text, np.concatenate([z, audio, z]), segs))
        except (Unavailable, subprocess.SubprocessError, OSError) as exc:   # a voice that will not speak: left out, named
            print(f"(DEV voice {voice} skipped: {exc})", file=sys.stderr)
            continue
        out += made
    return out
