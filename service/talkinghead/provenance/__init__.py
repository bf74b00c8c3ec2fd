"""Provenance: every frame talkinghead renders is marked as synthetic, and anyone can check it.

* `watermark`: an invisible, robust mark in the pixels of every frame (`mark(frame, payload)`,
  or a `Watermarker` per payload that caches the pattern per frame size), and `detect(frames)`,
  a statistical test with a false-positive rate of at most 1e-6 by design;
* `payload`: what the mark says (synthetic, generator version, operator id), 64 bits with a
  CRC under a convolutional code;
* `c2pa_sign`: signed C2PA content credentials on rendered MP4s ("created by a trained
  algorithm, with talkinghead") and reading them back;
* `verify`: both checks on a video or image file (`talkinghead verify`).

Rendering marks frames by default (`render.render_frames` / `render_video`); turning the mark
off takes an explicit `watermark=None` (CLI `--no-watermark`), which the video's metadata and
its manifest record.
"""

from talkinghead.provenance.payload import DEFAULT_PAYLOAD, Payload, operator_id
from talkinghead.provenance.watermark import (
    FALSE_POSITIVE_RATE,
    Detection,
    Watermarker,
    detect,
    mark,
    watermarker,
)

WATERMARK_SCHEME = "talkinghead/watermark/v1"


def watermark_record(payload: Payload | None) -> dict:
    """What the output's metadata says about the mark: {"embedded": True, "scheme": ...,
    "payload": {...}} or {"embedded": False, "reason": ...}."""
    if payload is None:
        return {"embedded": False, "scheme": WATERMARK_SCHEME,
                "reason": "turned off explicitly by the operator (--no-watermark / watermark=None)"}
    return {"embedded": True, "scheme": WATERMARK_SCHEME, "payload": payload.to_dict()}


__all__ = [
    "DEFAULT_PAYLOAD",
    "FALSE_POSITIVE_RATE",
    "WATERMARK_SCHEME",
    "Detection",
    "Payload",
    "Watermarker",
    "detect",
    "mark",
    "operator_id",
    "watermark_record",
    "watermarker",
]
