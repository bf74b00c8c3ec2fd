"""A whole take: motion track + rig -> frames, and the MP4 with the speech under them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import structlog

from talkinghead import __version__
from talkinghead.face.rig import Rig
from talkinghead.media import VideoInfo, write_mp4
from talkinghead.render.cpu import render
from talkinghead.track import MotionTrack

log = structlog.get_logger(__name__)


def render_frames(rig: Rig, track: MotionTrack) -> Iterator[np.ndarray]:
    """One RGB frame (shape = (H, W, 3) uint8) per track frame, generated lazily."""
    for params in track:
        yield render(rig, params)


def render_video(rig: Rig, track: MotionTrack, audio: np.ndarray, audio_rate: int, path: str | Path, *,
                 progress: Callable[[int], None] | None = None, metadata: dict[str, str] | None = None) -> VideoInfo:
    """Render the take and write it as H.264 + AAC MP4, the first frame at t = 0 with the
    audio's first sample. `progress(n_frames_done)` after every frame."""
    meta = {"comment": f"talkinghead {__version__}: synthetic talking face generated from one photo"}
    meta.update(metadata or {})
    info = write_mp4(path, render_frames(rig, track), track.fps, audio, audio_rate, metadata=meta,
                     progress=progress)
    log.info("render.video_written", path=str(path), frames=info.n_frames, fps=track.fps, size=rig.size)
    return info
