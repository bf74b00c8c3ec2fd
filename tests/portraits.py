"""Real portraits for tests and benchmarks: every photo of a person that a package ships (that we
found), each checked by SHA-256.

| name | what it covers | from | licence |
|---|---|---|---|
| astronaut | closed-lips smile, studio light | scikit-image's `data.astronaut()` (Eileen Collins) | NASA photo, public domain |
| grace_hopper | glasses, age, lips nearly closed | matplotlib's `mpl-data/sample_data/grace_hopper.jpg` | US Navy photo, public domain |
| biden | closed lips, a man, grey hair, full-length photo | face_recognition 1.3.0 sdist, `tests/test_images/biden.jpg` | White House photo, public domain |
| obama | a teeth smile | same sdist, `obama.jpg` | White House photo, public domain |
| obama2 | mid-word (mouth open, teeth) | same sdist, `obama2.jpg` | White House photo, public domain |
| obama3 | a small face in a full-length photo (`full` framing) | same sdist, `obama3.jpg` | White House photo, public domain |

The sdist's other images are the same photos again (`32bit.png` is obama2 with an alpha
channel; `obama_partial_face*.jpg` are crops of obama.jpg). face_recognition's code is MIT; the
photos are works of the US federal government. The sdist (3.2 MB) is fetched from PyPI once;
the four photos (1.4 MB) are kept in CACHE.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realspeech import Unavailable, fetch_sdist

SDIST = "face_recognition-1.3.0.tar.gz"
SDIST_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
INDEX = "https://pypi.org/simple/face-recognition/"
MEMBER_DIR = "face_recognition-1.3.0/tests/test_images/"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "talkinghead" / "testdata" / "portraits"

# name -> (SHA-256 of the file, or of the RGB array's bytes for skimage's, what it covers, framing)
PORTRAITS = {
    "astronaut": ("a8c429c18afa7b0fd5673e598d73a21225d94c864a71bbb3885126fdecb41071", "closed-lips smile", "face"),
    "grace_hopper": ("a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", "glasses, age", "face"),
    "biden": ("3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c", "closed lips", "face"),
    "obama": ("0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6", "teeth smile", "face"),
    "obama2": ("a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6", "mid-word", "face"),
    "obama3": ("76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3", "small face, full photo", "full"),
}
NAMES = tuple(PORTRAITS)

__all__ = ["NAMES", "PORTRAITS", "Portrait", "Unavailable", "load", "portraits"]


@dataclass(frozen=True)
class Portrait:
    name: str
    image: np.ndarray      # shape = (H, W, 3) uint8 RGB
    covers: str
    framing: str


def _check(name: str, data: bytes) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != PORTRAITS[name][0]:
        raise ValueError(f"portrait {name}: sha256 {digest}, expected {PORTRAITS[name][0]}")
    return data


def _decode(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _face_recognition_file(name: str) -> bytes:
    path = CACHE / f"{name}.jpg"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(fetch_sdist(SDIST, SDIST_SHA256, INDEX)), mode="r:gz") as tar:
            for other in ("biden", "obama", "obama2", "obama3"):
                data = _check(other, tar.extractfile(MEMBER_DIR + f"{other}.jpg").read())
                tmp = CACHE / f"{other}.jpg.part"
                tmp.write_bytes(data)
                tmp.replace(CACHE / f"{other}.jpg")
    return path.read_bytes()


def load(name: str) -> Portrait:
    """One portrait by name (raises Unavailable where PyPI cannot be reached and it is not cached)."""
    if name == "astronaut":
        from skimage import data

        image = np.ascontiguousarray(data.astronaut())
        _check(name, image.tobytes())
    elif name == "grace_hopper":
        import matplotlib.cbook

        image = _decode(_check(name, Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()))
    else:
        image = _decode(_check(name, _face_recognition_file(name)))
    _, covers, framing = PORTRAITS[name][:3]
    return Portrait(name, image, covers, framing)


def portraits() -> list[Portrait]:
    return [load(n) for n in NAMES]
