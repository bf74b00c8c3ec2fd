"""A whole take: motion track + rig -> frames, and the MP4 with the speech under them.

Frames leave this module watermarked (provenance.watermark: invisible, robust, "synthetic,
made by talkinghead") unless the caller turns that off explicitly with `watermark=None`; the
rig's own `render()` stays unmarked, so its rest frame is the photo. Videos are also signed
with C2PA content credentials after they are written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import structlog

from talkinghead import __version__
from talkinghead.face.rig import Rig
from talkinghead.media import VideoInfo, write_mp4
from talkinghead.provenance import DEFAULT_PAYLOAD, Payload, watermark_record
from talkinghead.provenance.c2pa_sign import DEFAULT_SIGNING, Signer, SigningOptions, resolve_signer, sign_mp4
from talkinghead.render.frames import FrameMaker, ahead
from talkinghead.track import MotionTrack

log = structlog.get_logger(__name__)

WATERMARK_TAG = "talkinghead_watermark"  # MP4 metadata key: the watermark_record as JSON


def render_frames(rig: Rig, track: MotionTrack, backend: str = "cpu", batch: int = 16, *,
                  watermark: Payload | None = DEFAULT_PAYLOAD) -> Iterator[np.ndarray]:
    """One RGB frame (shape = (H, W, 3) uint8) per track frame, generated lazily: a
    `frames.FrameMaker` (`backend` "cpu", "torch" or "auto"; torch renders `batch` frames per
    call; `watermark` the payload every frame carries, None for unmarked frames, an explicit
    opt-out). A backend that cannot run raises OptionsError here, before the first frame."""
    return FrameMaker(backend, watermark=watermark, batch=batch).frames(rig, track)


def render_video(rig: Rig, track: MotionTrack, audio: np.ndarray, audio_rate: int, path: str | Path, *,
                 progress: Callable[[int], None] | None = None, metadata: dict[str, str] | None = None,
                 backend: str = "cpu", watermark: Payload | None = DEFAULT_PAYLOAD,
                 signing: SigningOptions | Signer | None = DEFAULT_SIGNING) -> VideoInfo:
    """Render the take (with `backend`, see `render_frames`) and write it as H.264 + AAC MP4,
    the first frame at t = 0 with the audio's first sample. `progress(n_frames_done)` after
    every frame. `watermark`: the frames' watermark payload, None for none; the MP4's
    `talkinghead_watermark` tag and its C2PA manifest record which. `signing`: who signs the
    C2PA manifest (see provenance.c2pa_sign; the default signs with $TALKINGHEAD_C2PA_CERT/KEY
    or the local test signer), or a Signer already resolved (a batch's workers get the driver's);
    None writes no manifest."""
    # A bad certificate or key should fail now, not after minutes of rendering.
    signer = signing if isinstance(signing, Signer) or signing is None else resolve_signer(signing)
    record = watermark_record(watermark)
    meta = {"comment": f"talkinghead {__version__}: synthetic talking face generated from one photo"}
    meta.update(metadata or {})
    meta[WATERMARK_TAG] = json.dumps(record, separators=(",", ":"))  # the truth, whatever `metadata` said
    # Frames made on a thread of their own, while the encoder works on the ones before.
    info = write_mp4(path, ahead(render_frames(rig, track, backend, watermark=watermark)), track.fps, audio, audio_rate,
                     metadata=meta, progress=progress)
    if signer is not None:
        try:  # signed into a temporary file that replaces the unsigned one
            sign_mp4(info.path, info.path, signer, title=info.path.name, watermark=record, generator=__version__)
        except BaseException:
            info.path.unlink(missing_ok=True)  # never leave a video that claims less than it should
            raise
    log.info("render.video_written", path=str(path), frames=info.n_frames, fps=track.fps, size=rig.size,
             watermark=watermark is not None, c2pa=signer is not None)
    return info
