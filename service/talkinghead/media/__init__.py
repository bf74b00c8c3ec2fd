"""Writing rendered frames out: an MP4 with the speech (H.264 + AAC), or single encoded images.

`write_mp4` streams frames from any iterable into a file that players can stream; `encode_frame` /
`decode_frame` turn one RGB frame into JPEG, PNG or raw bytes and back (the gRPC frame stream);
`write_contact_sheet` lays chosen frames out in one labelled PNG for a quick look.
"""

from __future__ import annotations

from talkinghead.media.images import IMAGE_ENCODINGS, decode_frame, encode_frame, write_contact_sheet
from talkinghead.media.video import FPS_CHOICES, VideoInfo, write_mp4

__all__ = [
    "FPS_CHOICES",
    "IMAGE_ENCODINGS",
    "VideoInfo",
    "decode_frame",
    "encode_frame",
    "write_contact_sheet",
    "write_mp4",
]
