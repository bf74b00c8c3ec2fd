"""Portrait loading and face analysis: one photo -> 478 landmarks, 52 blendshapes, head pose.

MediaPipe's FaceLandmarker (model bundle `face_landmarker.task`, resolved and verified by
`talkinghead.models.model_path`) does the work; this module turns user input into the RGB
array it wants and its result into plain arrays in the project's conventions:

- landmarks: pixels of the analysed image, x right, y down, z = MediaPipe's z * image width
  (same scale as x; smaller = nearer the camera, 0 near the face's centre depth)
- blendshapes: ARKit order of `talkinghead.arkit.BLENDSHAPE_NAMES` (MediaPipe's own order is
  alphabetical with a leading `_neutral`, and it never predicts `tongueOut`, which stays 0)
- head angles: degrees in the conventions of `talkinghead.track` (+yaw = toward the subject's
  left, +pitch = chin up, +roll = top of the head toward the subject's left shoulder)

`load_portrait` and `analyze_face` raise `PortraitError` with a sentence that says what to do.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import sys
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import cv2
import numpy as np
import structlog

from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.errors import PortraitError
from talkinghead.models import model_path

log = structlog.get_logger(__name__)

MIN_FACE_PX = 96  # below this the 478-point mesh is guesswork and the rendered face is mush
MAX_IMAGE_SIDE = 4096  # larger photos add nothing (the landmarker works at 256 px) but cost memory
# Width x height a portrait file may declare (24 MP: 6000 x 4000), read from its header before
# anything is decoded: a 1 MB PNG can declare 20000 x 20000 pixels and decode to gigabytes.
MAX_IMAGE_PIXELS = 24_000_000
N_LANDMARKS = 478  # MediaPipe's face mesh (468) + 10 iris points

_BLENDSHAPE_INDEX = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
_FORMATS = "a JPEG or PNG photo"


# ---------------------------------------------------------------------------------------------
# loading


def load_portrait(source: str | os.PathLike | bytes | np.ndarray, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read a portrait into the array every later stage uses.

    `source`: a file path, a whole file's bytes, or an array (H, W), (H, W, 1), (H, W, 3) RGB
    or (H, W, 4) RGBA of uint8, uint16 or float in 0..1.
    Returns shape = (H, W, 3), uint8, RGB, C-contiguous. Grey becomes RGB, transparency is
    composited on white, 16-bit is reduced to 8-bit, and a side longer than MAX_IMAGE_SIDE is
    downscaled (keeping the aspect ratio). JPEG EXIF orientation is applied. A file whose header
    declares more than `max_pixels` pixels is refused before it is decoded.
    """
    if isinstance(source, np.ndarray):
        image = _rgb_from_array(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = _decode(bytes(source), "the portrait data", max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        image = _decode(_read_file(Path(source)), f"'{os.fspath(source)}'", max_pixels)
    else:
        raise PortraitError(f"Cannot read a portrait from a {type(source).__name__}; pass a file path, "
                            f"the file's bytes or an RGB uint8 array.")
    _check_size(image)
    h, w = image.shape[:2]
    if max(h, w) > MAX_IMAGE_SIDE:
        scale = MAX_IMAGE_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # area: no aliasing when shrinking
        log.warning("portrait.downscaled", from_size=f"{w}x{h}", to_size=f"{size[0]}x{size[1]}",
                    max_side=MAX_IMAGE_SIDE)
    return np.ascontiguousarray(image)


def _read_file(path: Path) -> bytes:
    if not path.exists():
        raise PortraitError(f"The portrait file '{path}' does not exist; check the path.")
    if not path.is_file():
        raise PortraitError(f"The portrait path '{path}' is not a file; pass the path of {_FORMATS}.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PortraitError(f"Cannot read the portrait file '{path}' ({e.strerror}); check its permissions.") from e
    if not data:
        raise PortraitError(f"The portrait file '{path}' is empty (0 bytes); export the photo again.")
    return data


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that an image file's header declares, read without decoding the pixels
    (Pillow's lazy open); None when the bytes are not an image Pillow knows."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError as exc:   # past Pillow's own limit (about 179 MP): its message has the count
        found = re.search(r"\((\d+) pixels\)", str(exc))
        side = math.isqrt(int(found.group(1))) if found else 1 << 16
        return (side, side)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def check_image_size(data: bytes, name: str = "the portrait data", max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Refuse a file whose header declares more than `max_pixels` pixels, before decoding it."""
    size = image_size(data)
    if size is None:
        _unreadable(data, name)
    if size[0] * size[1] > max_pixels:
        raise PortraitError(f"{name[0].upper()}{name[1:]} declares {size[0] * size[1] / 1e6:.0f} megapixels "
                            f"({size[0]}x{size[1]}), more than the {max_pixels / 1e6:g} megapixel limit; send a "
                            "smaller photo (4096 px on the long side is plenty)")


def _unreadable(data: bytes, name: str):
    kind = _sniff(data)
    looks = f" (it looks like {kind})" if kind else ""
    raise PortraitError(f"{name[0].upper()}{name[1:]} is not an image that can be read{looks}; "
                        f"use {_FORMATS} of a face.")


def _decode(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    if not data:
        raise PortraitError(f"The portrait data is empty (0 bytes); send the content of {_FORMATS}.")
    check_image_size(data, name, max_pixels)
    buf = np.frombuffer(data, np.uint8)
    # IMREAD_UNCHANGED keeps alpha and 16-bit depth but ignores EXIF orientation; a JPEG has no
    # alpha, and phone JPEGs are often stored sideways with an orientation tag, so JPEGs are
    # decoded with the flags that honour it (still keeping grey and depth as they are).
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if is_jpeg else cv2.IMREAD_UNCHANGED
    try:
        decoded = cv2.imdecode(buf, flags)
    except cv2.error:  # e.g. past OpenCV's pixel-count limit, or a truncated stream
        decoded = None
    if decoded is None or decoded.size == 0:
        _unreadable(data, name)
    if decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    elif decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    return _rgb_from_array(decoded)


def _sniff(data: bytes) -> str:
    """A word about what non-image bytes are, so the error can say what was passed."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV audio"
    if head[:4] in (b"fLaC", b"OggS") or head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "audio"
    if head[4:8] == b"ftyp":
        return "an MP4/MOV/HEIC file"
    if head[:4] == b"%PDF":
        return "a PDF document"
    try:
        data[:4096].decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return ""


def _rgb_from_array(image: np.ndarray) -> np.ndarray:
    """Any supported array -> (H, W, 3) uint8 RGB. Raises PortraitError for anything else."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise PortraitError(f"The portrait array has shape {image.shape}; pass (height, width, 3) RGB, "
                            f"(height, width, 4) RGBA or (height, width) grey.")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise PortraitError(f"The portrait array has shape {image.shape}, with no pixels; pass a photo of a face.")
    image = _to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return _composite_on_white(image)
    return image


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # rounded, 65535 -> 255 (the same values as (x * 255 + 32767) // 65535, without a uint32 copy)
        return cv2.convertScaleAbs(image, alpha=255 / 65535)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise PortraitError("The portrait array is float but not within 0..1; scale it to 0..1 "
                                "or pass uint8 values 0..255.")
        return np.round(image * 255).astype(np.uint8)
    raise PortraitError(f"The portrait array has dtype {image.dtype}; pass uint8 (0..255), uint16 "
                        f"or float (0..1) pixel values.")


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    # transparent cut-outs usually have garbage (often black) colour under alpha 0; white is the
    # background a portrait cut-out is normally shown on, and the face detector copes with it
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    if alpha.min() < 1.0:
        log.info("portrait.alpha_composited", background="white",
                 transparent_fraction=round(float((alpha < 1.0).mean()), 3))
    rgb = rgba[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.round(rgb).astype(np.uint8)


def _check_size(image: np.ndarray) -> None:
    h, w = image.shape[:2]
    if min(h, w) < MIN_FACE_PX:
        raise PortraitError(f"The portrait is {w}x{h} pixels, too small to hold a face of at least "
                            f"{MIN_FACE_PX} pixels; use a larger photo (512 pixels or more is best).")


# ---------------------------------------------------------------------------------------------
# analysis


@dataclass(frozen=True)
class FaceAnalysis:
    """One face found in one image. Arrays are read-only.

    landmarks:   shape = (478, 3), float32, pixels of the analysed image: x right, y down,
                 z = depth at the same scale as x (smaller = nearer the camera)
    blendshapes: shape = (52,), float32, 0..1, `arkit.BLENDSHAPE_NAMES` order
    matrix:      shape = (4, 4), float64, MediaPipe's facial transformation matrix: canonical
                 face model (centimetres) -> camera space (x right, y up, z toward the viewer)
    n_faces:     how many faces the image holds (this one is the largest)
    bbox:        (x0, y0, x1, y1) pixels, the landmarks' bounding box
    image_size:  (width, height) pixels of the analysed image
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    matrix: np.ndarray
    n_faces: int
    bbox: tuple[float, float, float, float]
    image_size: tuple[int, int]

    @property
    def size_px(self) -> float:
        """The face's extent in pixels: the larger side of `bbox`."""
        x0, y0, x1, y1 = self.bbox
        return max(x1 - x0, y1 - y0)

    @property
    def head_angles(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) degrees of the head in the photo; see `head_angles`."""
        return head_angles(self.matrix)

    def blendshape(self, name: str) -> float:
        return float(self.blendshapes[_BLENDSHAPE_INDEX[name]])


def head_angles(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from MediaPipe's facial transformation matrix.

    Conventions of `talkinghead.track`: +yaw turns the face toward the subject's left (the
    viewer sees it turn to the image's right), +pitch lifts the chin, +roll tilts the top of
    the head toward the subject's left shoulder (clockwise in the image as the viewer sees it).

    MediaPipe's camera space is right-handed, x to the image's right, y up, z toward the
    viewer; the canonical face looks along +z with its own left on +x. The rotation R is
    decomposed as R = Ry(a) @ Rx(b) @ Rz(c) (yaw, then pitch, then roll about the head's own
    axes). A turn toward +x is +a (yaw = a); +b swings the face's +z toward -y, chin down
    (pitch = -b); +c swings the head's up axis toward -x, the subject's right (roll = -c).

    Verified on real photos (tests/test_face.py): rotating the astronaut portrait clockwise in
    the image with cv2.warpAffine (top of the head toward the viewer's right = the subject's
    left shoulder) raises roll by the rotation angle; a horizontal flip negates yaw and roll
    and leaves pitch; and yaw agrees in sign with the landmarks' own evidence — the nose tip
    lies toward the image's right of the midpoint between the cheek contours, and the
    subject's right cheek (image left) is nearer the camera than the left one, exactly when
    yaw > 0. Pitch agrees with the landmark face normal (chin up -> normal points up).
    """
    m = np.asarray(matrix, np.float64)
    r = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)  # drop any scale MediaPipe folds in
    a = math.atan2(r[0, 2], r[2, 2])
    b = math.asin(max(-1.0, min(1.0, -r[1, 2])))
    c = math.atan2(r[1, 0], r[1, 1])
    return math.degrees(a), -math.degrees(b), -math.degrees(c)


@contextlib.contextmanager
def _native_stderr_quiet():
    """Silence what MediaPipe's C++ core writes straight to file descriptor 2 while it loads
    (glog and TFLite banners: 'Logging before InitGoogle', 'Created TensorFlow Lite XNNPACK
    delegate', ...), which would otherwise break the one-event-per-line log on stderr.
    Python's own sys.stderr is flushed first and restored after; failures still raise."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceLandmarker:
    """A reusable MediaPipe FaceLandmarker (IMAGE mode, blendshapes + transformation matrix).

    Creating one loads the model (~0.2 s); each `detect` then takes ~5-20 ms on a 512 px
    image (7 ms measured on CPU), so make one and call it on many frames. Use it as a context
    manager or call `close()`; one never closed is closed when garbage-collected, or quietly
    at interpreter exit (MediaPipe's own `__del__` would print a traceback during teardown).
    Thread-safe: calls are serialised.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, num_faces: int = 4,
                 min_confidence: float = 0.5) -> None:
        """`model`: an explicit face_landmarker.task (SHA-256-checked); default: the registry's."""
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision  # heavy import: only when used

        path = model_path("face_landmarker", model)
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=num_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        with _native_stderr_quiet():
            self._mp = vision.FaceLandmarker.create_from_options(options)
            # The first inference prints more of the same (XNNPACK, feedback tensors).
            self._mp.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((64, 64, 3), np.uint8)))
        self._lock = threading.Lock()
        # weakref.finalize runs at garbage collection, at interpreter exit, or when close()
        # calls it; afterwards mediapipe's own __del__ finds the task closed and does nothing
        self._finalizer = weakref.finalize(self, _close_task, self._mp)
        log.debug("face.landmarker_ready", model=str(path), num_faces=num_faces)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect_all(self, image: np.ndarray) -> list[FaceAnalysis]:
        """Every face in `image` ((H, W, 3) uint8 RGB), largest (bbox area) first."""
        import mediapipe as mp

        if not self._finalizer.alive:
            raise RuntimeError("FaceLandmarker is closed")
        rgb = np.ascontiguousarray(_rgb_from_array(image))
        h, w = rgb.shape[:2]
        with self._lock:
            result = self._mp.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        n = len(result.face_landmarks)
        faces = [_face_from_result(result, i, w, h, n) for i in range(n)]
        faces.sort(key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]), reverse=True)
        return faces

    def detect(self, image: np.ndarray) -> FaceAnalysis | None:
        """The largest face in `image` ((H, W, 3) uint8 RGB), or None when there is none."""
        faces = self.detect_all(image)
        return faces[0] if faces else None


def _face_from_result(result, i: int, width: int, height: int, n_faces: int) -> FaceAnalysis:
    pts = result.face_landmarks[i]
    norm = np.array([(p.x, p.y, p.z) for p in pts], np.float64)
    # MediaPipe: x, y normalised to the image; z "roughly the same scale as x" -> times width
    landmarks = (norm * np.array([width, height, width])).astype(np.float32)

    blendshapes = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
    for category in result.face_blendshapes[i]:
        j = _BLENDSHAPE_INDEX.get(category.category_name)  # skips "_neutral"; by name, not position
        if j is not None:
            blendshapes[j] = category.score

    matrix = np.asarray(result.facial_transformation_matrixes[i], np.float64).reshape(4, 4)
    x0, y0 = landmarks[:, :2].min(axis=0)
    x1, y1 = landmarks[:, :2].max(axis=0)
    for a in (landmarks, blendshapes, matrix):
        a.setflags(write=False)
    return FaceAnalysis(landmarks=landmarks, blendshapes=blendshapes, matrix=matrix, n_faces=n_faces,
                        bbox=(float(x0), float(y0), float(x1), float(y1)), image_size=(width, height))


def _close_task(task) -> None:
    try:
        task.close()
    except Exception:  # noqa: BLE001, S110 - at interpreter exit mediapipe's worker thread is already gone
        pass
    # Whether or not close() got through, the task is finished with. mediapipe's __del__ calls
    # close() again whenever `_handle` is set, and during interpreter teardown that prints a
    # TypeError traceback; clearing it makes that a no-op (the process is ending anyway).
    task._handle = None


_default: FaceLandmarker | None = None
_default_lock = threading.Lock()


def default_landmarker() -> FaceLandmarker:
    """The process-wide FaceLandmarker `analyze_face` uses, created on first use."""
    global _default
    with _default_lock:
        if _default is None or not _default._finalizer.alive:
            _default = FaceLandmarker()
        return _default


def analyze_face(image: np.ndarray, landmarker: FaceLandmarker | None = None) -> FaceAnalysis:
    """The face a portrait is about: its landmarks, blendshapes and pose.

    `image`: shape = (H, W, 3) uint8 RGB, as `load_portrait` returns (grey, RGBA, uint16 and
    0..1 float arrays are converted the same way, but not resized: landmarks are in the
    pixels of the array given). With several faces the largest is used, and a warning says so.
    Raises PortraitError when there is no face or the face is smaller than MIN_FACE_PX.
    """
    if not isinstance(image, np.ndarray):
        raise PortraitError(f"analyze_face needs an image array, not a {type(image).__name__}; "
                            f"read the file with load_portrait first.")
    faces = (landmarker or default_landmarker()).detect_all(image)
    if not faces:
        raise PortraitError("No face found in the portrait; use a photo with one face looking "
                            "roughly at the camera.")
    face = faces[0]
    if len(faces) > 1:
        log.warning("face.several_faces", n_faces=len(faces), chosen_bbox=[round(v) for v in face.bbox],
                    note="using the largest face; crop the portrait to choose another")
    if face.size_px < MIN_FACE_PX:
        raise PortraitError(f"The face is only {face.size_px:.0f} pixels across, smaller than the "
                            f"{MIN_FACE_PX} pixels needed; use a larger photo in which the face is at least "
                            f"{MIN_FACE_PX} pixels tall.")
    return face
