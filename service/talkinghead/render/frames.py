"""The one way frames are made, for every output: the CLI's and the batch runner's videos
(`clip.render_frames`), the web page, and the server's images (Generate and Stream).

`FrameMaker(backend, watermark=..., batch=...)` decides, once, what every caller would otherwise
decide again: the backend (`device.pick_backend`: the CPU renderer, or the batched torch
renderer on a GPU), how many frames go to the backend at a time, and the provenance watermark
(every frame marked unless the caller passed `watermark=None`, an explicit opt-out). It keeps a
renderer per rig for the last few rigs (the torch one holds the rig on the device). Frames and
encoded images come out in order; the maker is thread-safe (the server calls it from its pool).
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import structlog

from talkinghead.errors import OptionsError
from talkinghead.face.rig import Rig
from talkinghead.media import encode_frame
from talkinghead.provenance import DEFAULT_PAYLOAD, Payload, watermarker
from talkinghead.render.cpu import Renderer
from talkinghead.render.device import pick_backend
from talkinghead.track import FaceParams, MotionTrack

log = structlog.get_logger(__name__)

RENDERERS_KEPT = 4          # rigs whose renderer is kept (the torch renderer holds GPU memory)


@dataclass(frozen=True)
class ImageOptions:
    """How a frame becomes bytes: `encoding` ("jpeg", "png" or "raw"), JPEG `quality` 1..100,
    and `scale` (0 < scale <= 1: the frame shrunk by it before encoding, both sides kept even;
    a stream that cannot keep up sends smaller images)."""

    encoding: str = "jpeg"
    quality: int = 90
    scale: float = 1.0


class FrameMaker:
    """Frames for any rig: `backend` "cpu", "torch" or "auto" (`device.pick_backend`, which
    raises OptionsError for a backend that cannot run), `batch` frames per call to a batched
    backend, every frame marked with `watermark` (a Payload; None: unmarked, logged as such)."""

    def __init__(self, backend: str = "cpu", *, watermark: Payload | None = DEFAULT_PAYLOAD, batch: int = 16) -> None:
        self.kind, self.device = pick_backend(backend)
        if batch < 1:
            raise OptionsError(f"the render batch must be at least 1 frame, not {batch}")
        self.batch = batch if self.kind == "torch" else 1
        self.watermark = watermark
        self._marker = watermarker(watermark) if watermark is not None else None
        self._renderers: collections.OrderedDict[int, tuple[Rig, object]] = collections.OrderedDict()
        self._lock = threading.Lock()
        log.info("render.backend", backend=self.kind, device=self.device, batch=self.batch,
                 watermark=watermark is not None)
        if watermark is None:
            log.warning("render.watermark_off", note="frames are NOT marked as synthetic (turned off explicitly)")

    def _renderer(self, rig: Rig):
        key = id(rig)
        with self._lock:
            kept = self._renderers.get(key)
            if kept is not None and kept[0] is rig:
                self._renderers.move_to_end(key)
                return kept[1]
        if self.kind == "torch":
            from talkinghead.render.torch_backend import TorchRenderer

            renderer = TorchRenderer(rig, self.device)
        else:
            renderer = Renderer(rig)
        with self._lock:
            self._renderers[key] = (rig, renderer)       # the rig kept too: its id stays its own
            while len(self._renderers) > RENDERERS_KEPT:
                self._renderers.popitem(last=False)
        return renderer

    def render(self, rig: Rig, params: Sequence[FaceParams], stop: threading.Event | None = None) -> list[np.ndarray]:
        """Marked frames for `params`, each shape = (H, W, 3) uint8 RGB. `stop`: set by the
        caller to end early (checked between batches); the frames made so far are returned."""
        renderer = self._renderer(rig)
        out: list[np.ndarray] = []
        for start in range(0, len(params), self.batch):
            if stop is not None and stop.is_set():
                break
            chunk = params[start:start + self.batch]
            if self.kind == "torch":
                out.extend(renderer.render_batch(list(chunk)))
            else:
                out.extend(renderer.render(p) for p in chunk)
        if self._marker is not None:
            out = [self._marker.mark(f) for f in out]
        return out

    def images_across(self, items: Sequence[tuple[Rig, FaceParams, ImageOptions]],
                      batch: int | None = None) -> list[bytes]:
        """Encoded frames of any rigs (several streams' frames), each (rig, params, options),
        in order: with the torch backend the frames of one size go to the device in batches of
        `batch` (default: the maker's) whatever their rigs (`torch_backend.render_across`);
        with the CPU one they are rendered one by one."""
        if self.kind != "torch":
            return [self.images(rig, [params], options)[0] for rig, params, options in items]
        from talkinghead.render.torch_backend import render_across

        frames: list[np.ndarray | None] = [None] * len(items)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, (rig, _, _) in enumerate(items):
            by_size.setdefault(rig.size, []).append(i)
        for size, which in by_size.items():
            step = batch or self.batch
            for start in range(0, len(which), step):
                part = which[start:start + step]
                made = render_across([(self._renderer(items[i][0]), items[i][1]) for i in part], size=size)
                for i, frame in zip(part, made):
                    frames[i] = frame
        if self._marker is not None:
            frames = [self._marker.mark(f) for f in frames]
        return [encode_frame(_shrink(f, o.scale), o.encoding, o.quality) for f, (_, _, o) in zip(frames, items)]

    def frames(self, rig: Rig, track: MotionTrack) -> Iterator[np.ndarray]:
        """One marked frame per track frame, made lazily, `batch` at a time."""
        step = self.batch
        for start in range(0, track.n_frames, step):
            yield from self.render(rig, [track.frame(i) for i in range(start, min(start + step, track.n_frames))])

    def images(self, rig: Rig, params: Sequence[FaceParams], options: ImageOptions = ImageOptions(),
               stop: threading.Event | None = None) -> list[bytes]:
        """`render`, then each frame encoded as `options` says (the watermark goes on before
        any shrinking, at the rig's size, where its detector reads it)."""
        return [encode_frame(_shrink(f, options.scale), options.encoding, options.quality)
                for f in self.render(rig, params, stop)]


def ahead(items: Iterator, depth: int = 8) -> Iterator:
    """`items`, made up to `depth` ahead on a thread of their own: a video's frames rendered
    while the encoder (x264, PyAV; both release the GIL, as OpenCV does) works on the ones
    before. An error in `items` is raised here, at the item it replaced; closing this iterator
    stops the thread after the item in hand."""
    box: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def make() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put((item, None))
            box.put((done, None))
        except BaseException as exc:      # noqa: BLE001 - handed to the consumer
            box.put((done, exc))

    worker = threading.Thread(target=make, name="talkinghead-frames", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():          # unblock a producer waiting for room
            try:
                box.get(timeout=0.05)
            except queue.Empty:
                pass


def shrunk_size(w: int, h: int, scale: float) -> tuple[int, int]:
    """(width, height) of a w x h frame sent at `scale` (even sides, as video encoders want)."""
    if scale >= 1.0:
        return w, h
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def _shrink(frame: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return frame
    return cv2.resize(frame, shrunk_size(frame.shape[1], frame.shape[0], scale), interpolation=cv2.INTER_AREA)
