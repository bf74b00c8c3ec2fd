"""Single frames as bytes (JPEG, PNG or raw RGB) and a labelled contact sheet of chosen frames.

Frames are RGB uint8, shape (height, width, 3). OpenCV works in BGR, so every cv2 call here
swaps the channel order on the way in and out; callers never see BGR.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import structlog

from talkinghead.errors import MediaError

log = structlog.get_logger(__name__)

IMAGE_ENCODINGS = ("jpeg", "png", "raw")
PNG_COMPRESSION = 1  # zlib level: frames are streamed live, and level 1 is several times faster than 9
LABEL_HEIGHT = 24  # pixels of caption strip under each contact-sheet cell
_BACKGROUND = (32, 32, 32)  # BGR
_TEXT = (235, 235, 235)  # BGR


def encode_frame(frame: np.ndarray, encoding: str, quality: int = 90) -> bytes:
    """Encode one RGB uint8 frame, shape (H, W, 3), as `encoding` ("jpeg", "png" or "raw").

    quality: JPEG quality 1..100 (ignored for png and raw). raw is the RGB bytes row-major,
    H * W * 3 long, with no header: the receiver needs the width and height.
    Raises MediaError for an unknown encoding, a bad quality or a frame that is not RGB uint8.
    """
    _check_encoding(encoding)
    _check_rgb(frame, "The frame")
    if encoding == "raw":
        return np.ascontiguousarray(frame).tobytes()
    if encoding == "jpeg":
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise MediaError(f"JPEG quality must be a whole number in 1..100 (90 is a good default), not {quality!r}.")
        ok, buf = cv2.imencode(".jpg", _bgr(frame), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", _bgr(frame), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise MediaError(f"OpenCV could not encode a {frame.shape[1]}x{frame.shape[0]} frame as {encoding}; try png.")
    return buf.tobytes()


def decode_frame(data: bytes, encoding: str, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Inverse of `encode_frame`: bytes -> RGB uint8 frame, shape (height, width, 3).

    width, height: required for "raw" (it has no header); for jpeg/png, when given, the decoded
    image must have that size. Raises MediaError for data that does not decode or fit.
    """
    _check_encoding(encoding)
    if encoding == "raw":
        if width is None or height is None:
            raise MediaError("Raw frames carry no size; pass width= and height= to decode_frame.")
        if width <= 0 or height <= 0:
            raise MediaError(f"The raw frame size {width}x{height} must be positive; pass the sender's size.")
        expected = width * height * 3
        if len(data) != expected:
            raise MediaError(
                f"The raw frame has {len(data)} bytes but {width}x{height} RGB needs {expected}; "
                "check the width and height the sender announced."
            )
        return np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if len(data) else None
    if bgr is None:
        raise MediaError(f"The data ({len(data)} bytes) is not a readable {encoding} image; check the encoding.")
    frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if (width is not None and frame.shape[1] != width) or (height is not None and frame.shape[0] != height):
        raise MediaError(
            f"The {encoding} image is {frame.shape[1]}x{frame.shape[0]}, not the expected {width}x{height}; "
            "check which frame stream it came from."
        )
    return frame


def write_contact_sheet(
    frames: Sequence[np.ndarray],
    labels: Sequence[str],
    path: str | os.PathLike[str],
    columns: int = 5,
    cell: int = 256,
) -> Path:
    """Write `frames` as one PNG grid, `columns` wide, each scaled to fit `cell` x `cell` pixels
    (aspect kept) with its label in a strip under it; returns the path.

    frames: RGB uint8 arrays, shape (H, W, 3), sizes may differ. labels: one short ASCII caption
    per frame (OpenCV's Hershey font has no other glyphs; long ones are cut with "...").
    Sheet size: columns * cell wide, rows * (cell + LABEL_HEIGHT) high. Raises MediaError.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise MediaError(f"The contact sheet path '{out}' must end in .png; choose a .png file name.")
    if not out.parent.is_dir():
        raise MediaError(f"The folder '{out.parent}' does not exist; create it first or choose another path.")
    if len(frames) == 0:
        raise MediaError("There are no frames for the contact sheet; pass at least one frame.")
    if len(labels) != len(frames):
        raise MediaError(f"Got {len(frames)} frames but {len(labels)} labels; pass one label per frame.")
    if not 1 <= columns <= 100 or not 32 <= cell <= 4096:
        raise MediaError(f"columns must be 1..100 and cell 32..4096 pixels, not {columns} and {cell}.")
    for i, frame in enumerate(frames):
        _check_rgb(frame, f"Frame {i}")

    columns = min(columns, len(frames))
    rows = math.ceil(len(frames) / columns)
    pitch = cell + LABEL_HEIGHT
    sheet = np.empty((rows * pitch, columns * cell, 3), np.uint8)
    sheet[:] = _BACKGROUND
    for i, (frame, label) in enumerate(zip(frames, labels, strict=True)):
        top, left = (i // columns) * pitch, (i % columns) * cell
        _paste_fitted(sheet[top : top + cell, left : left + cell], _bgr(frame))
        _put_label(sheet[top + cell : top + pitch, left : left + cell], str(label))

    ok, buf = cv2.imencode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise MediaError("OpenCV could not encode the contact sheet; try fewer frames or a smaller cell.")
    # Temp file + rename: a failed write never leaves a truncated PNG at the path.
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MediaError(
            f"Cannot write the contact sheet '{out}': {e.strerror or e}. Choose a writable path."
        ) from e
    log.info("media.contact_sheet_written", path=str(out), frames=len(frames), columns=columns, cell=cell)
    return out


def _paste_fitted(dst: np.ndarray, bgr: np.ndarray) -> None:
    """Scale `bgr` to fit `dst` (a cell x cell view) keeping its aspect, centred."""
    cell = dst.shape[0]
    h, w = bgr.shape[:2]
    scale = cell / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # AREA avoids aliasing when shrinking
    small = cv2.resize(bgr, (nw, nh), interpolation=interp)
    y, x = (cell - nh) // 2, (cell - nw) // 2
    dst[y : y + nh, x : x + nw] = small


def _put_label(strip: np.ndarray, label: str) -> None:
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    text = label.encode("ascii", "replace").decode("ascii")
    max_w = strip.shape[1] - 8
    while text and cv2.getTextSize(text, font, scale, thickness)[0][0] > max_w:
        text = text[:-4] + "..." if len(text) > 4 else text[:-1]
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    org = ((strip.shape[1] - tw) // 2, (strip.shape[0] + th) // 2)
    cv2.putText(strip, text, org, font, scale, _TEXT, thickness, cv2.LINE_AA)


def _bgr(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)


def _check_encoding(encoding: str) -> None:
    if encoding not in IMAGE_ENCODINGS:
        raise MediaError(f"Unknown frame encoding {encoding!r}; use one of {', '.join(IMAGE_ENCODINGS)}.")


def _check_rgb(frame: np.ndarray, what: str) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise MediaError(f"{what} is {desc}, not an RGB uint8 array of shape (height, width, 3).")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise MediaError(f"{what} is empty ({frame.shape}); pass a frame with pixels in it.")
