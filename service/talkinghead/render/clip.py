"""A whole take: motion track + rig -> frames, and the MP4 with the speech under them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import structlog

from talkinghead import __version__
from talkinghead.errors import OptionsError
from talkinghead.face.rig import Rig
from talkinghead.media import VideoInfo, write_mp4
from talkinghead.render.cpu import render
from talkinghead.render.device import pick_backend
from talkinghead.track import MotionTrack

log = structlog.get_logger(__name__)


def render_frames(rig: Rig, track: MotionTrack, backend: str = "cpu", batch: int = 16) -> Iterator[np.ndarray]:
    """One RGB frame (shape = (H, W, 3) uint8) per track frame, generated lazily. `backend`:
    "cpu", "torch" or "auto" (`device.pick_backend`); torch renders `batch` frames per call.
    A backend that cannot run raises OptionsError here, before the first frame."""
    kind, device = pick_backend(backend)
    if batch < 1:
        raise OptionsError(f"the render batch must be at least 1 frame, not {batch}")
    log.info("render.backend", backend=kind, device=device, batch=batch if kind == "torch" else 1)
    if kind == "cpu":
        return (render(rig, params) for params in track)
    from talkinghead.render.torch_backend import TorchRenderer

    return _batches(TorchRenderer(rig, device), track, batch)


def _batches(renderer, track: MotionTrack, batch: int) -> Iterator[np.ndarray]:
    for start in range(0, track.n_frames, batch):
        yield from renderer.render_batch([track.frame(i) for i in range(start, min(start + batch, track.n_frames))])


def render_video(rig: Rig, track: MotionTrack, audio: np.ndarray, audio_rate: int, path: str | Path, *,
                 progress: Callable[[int], None] | None = None, metadata: dict[str, str] | None = None,
                 backend: str = "cpu") -> VideoInfo:
    """Render the take (with `backend`, see `render_frames`) and write it as H.264 + AAC MP4,
    the first frame at t = 0 with the audio's first sample. `progress(n_frames_done)` after
    every frame."""
    meta = {"comment": f"talkinghead {__version__}: synthetic talking face generated from one photo"}
    meta.update(metadata or {})
    info = write_mp4(path, render_frames(rig, track, backend), track.fps, audio, audio_rate, metadata=meta,
                     progress=progress)
    log.info("render.video_written", path=str(path), frames=info.n_frames, fps=track.fps, size=rig.size)
    return info
