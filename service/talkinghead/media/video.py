"""Writing rendered frames and the speech audio into one MP4 (H.264 + AAC) that players stream.

Frames are RGB uint8, shape (height, width, 3), one per 1/fps seconds starting at t = 0; they are
pulled from any iterable one at a time, so a generator of thousands of frames is never held in
memory. Audio is mono float32 in -1..1, shape (n_samples,), at `audio_rate`, starting at t = 0.

Sync, as FFmpeg writes it (checked by decoding the files, see tests/test_media.py):

* AAC needs 1024 "priming" samples before the first real one (the encoder's delay). FFmpeg's aac
  encoder emits its first packet at pts -1024 and the MP4 muxer writes an edit list (elst
  media_time = 1024 samples) so that players skip the priming: the audio stream's start_time
  reads 0 and the first decoded sample is our sample 0.
* x264 delays the video by its B-frame reordering; the muxer writes a second edit list
  (media_time = the reorder delay) so the first frame also shows at t = 0.
* Audio is encoded as the video goes (up to the end of each frame), so the muxer can interleave
  the two streams in small chunks without buffering one of them whole.

`movflags=+faststart` moves the index (moov) before the media data so playback can start while
the file is still downloading; `use_metadata_tags` stores every metadata key as given.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path

import av
import numpy as np
import soxr
import structlog
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc, Interpolation

from talkinghead.errors import MediaError

log = structlog.get_logger(__name__)

FPS_CHOICES = (25, 30, 60)  # the documented rates; any fps in MIN_FPS..MAX_FPS is accepted
MIN_FPS, MAX_FPS = 1.0, 120.0
MIN_SIDE, MAX_SIDE = 16, 8192  # pixels; x264 needs even sides (4:2:0 chroma is half size)
SUFFIXES = (".mp4", ".m4v")
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip
AAC_RATES = (44100, 48000)  # kept as given; any other input rate is resampled to AAC_RATE
AAC_RATE = 48000
AAC_BITRATE = 96_000  # bits/s, mono: transparent for speech
MIN_AUDIO_RATE, MAX_AUDIO_RATE = 8000, 192000
RESERVED_METADATA = ("encoder",)  # FFmpeg always overwrites it with its own "Lavf..." version
_AVCOL_SPC_BT709 = 1  # AVColorSpace value for the stream's colour tag
_MOVFLAGS = "+faststart+use_metadata_tags"


@dataclass(frozen=True)
class VideoInfo:
    """What `write_mp4` wrote: `n_frames` frames of `width` x `height` pixels at `fps`.

    `duration_s` = n_frames / fps, the video stream's duration in seconds.
    """

    path: Path
    n_frames: int
    fps: float
    width: int
    height: int
    duration_s: float


def write_mp4(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None,
    audio_rate: int,
    *,
    size: tuple[int, int] | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    metadata: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VideoInfo:
    """Encode `frames` (+ `audio`) into an H.264/AAC MP4 at `path`; returns what was written.

    frames: RGB uint8 arrays, each shape (H, W, 3) and all the same shape; frame k is shown at
        t = k / fps seconds. Pass ceil(audio seconds * fps) frames so video and audio end together.
    fps: frames per second, 1..120 (25, 30 and 60 are the documented choices).
    audio: mono float32 samples in -1..1, shape (n_samples,), starting at t = 0; None for no
        audio track. `audio_rate` is its sample rate in Hz (ignored when audio is None).
    size: output (width, height) in pixels, both even; frames of another size are scaled to it.
        None: the frames' own size, which must then be even (H.264 4:2:0 halves the chroma).
    crf, preset: x264 quality (0 = lossless .. 51, 18 ~ visually lossless) and speed preset.
    metadata: container tags, e.g. {"comment": "...", "title": "..."}; every key round-trips.
    progress: called with the number of frames written so far, after each frame.

    Raises MediaError (with what to do) for a bad path, fps, size, frame, audio or option; on any
    error nothing is left at `path` (the file is written next to it and renamed at the end).
    """
    out = _check_path(path)
    fps = _check_fps(fps)
    _check_options(crf, preset)
    tags = _check_metadata(metadata)
    if audio is not None:
        audio = _check_audio(audio, audio_rate)
    if size is not None:
        size = _check_size(size, "The requested size", "pass an even size=(width, height)")

    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise MediaError("There are no frames to write; render at least one frame before writing the video.") from None
    _check_frame(first, 0, None)
    frame_shape = first.shape
    if size is None:
        size = _check_size(
            (frame_shape[1], frame_shape[0]), "The frames' size", "pass size=(even width, even height) to scale them"
        )
    width, height = size

    started = time.perf_counter()
    writer = _Mp4Writer(out, fps, width, height, crf, preset, tags, audio, audio_rate)
    n = 0
    try:
        for n, frame in enumerate(chain([first], it), start=1):  # the caller's own errors pass through as they are
            if n > 1:
                _check_frame(frame, n - 1, frame_shape)
            writer.add_frame(frame)
            if progress is not None:
                progress(n)
        writer.finish()
    except BaseException:
        writer.abort()
        raise

    info = VideoInfo(path=out, n_frames=n, fps=fps, width=width, height=height, duration_s=n / fps)
    log.info(
        "media.mp4_written",
        path=str(out),
        frames=n,
        fps=fps,
        size=f"{width}x{height}",
        duration_s=round(info.duration_s, 3),
        audio_s=None if audio is None else round(audio.shape[0] / audio_rate, 3),
        seconds=round(time.perf_counter() - started, 3),
    )
    if audio is not None and abs(audio.shape[0] / audio_rate - info.duration_s) > 1 / fps:
        log.warning(
            "media.duration_mismatch",
            video_s=round(info.duration_s, 3),
            audio_s=round(audio.shape[0] / audio_rate, 3),
            hint="pass ceil(audio seconds * fps) frames",
        )
    return info


class _Mp4Writer:
    """One MP4 being written to a temporary file beside the target; `finish` renames it into place."""

    def __init__(
        self,
        out: Path,
        fps: float,
        width: int,
        height: int,
        crf: int,
        preset: str,
        tags: dict[str, str],
        audio: np.ndarray | None,
        audio_rate: int,
    ) -> None:
        self.out = out
        self.fps = fps
        self.width, self.height = width, height
        self.n_frames = 0
        # Hidden, unique, in the same folder: os.replace is then atomic, and the file gets the
        # umask's permissions (mkstemp's would be 0600).
        self.tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
        self.container: av.container.OutputContainer | None = None
        self.audio: _AudioFeeder | None = None
        try:
            self._open(crf, preset, tags, audio, audio_rate)
        except BaseException:
            self.abort()
            raise

    def _open(self, crf: int, preset: str, tags: dict[str, str], audio: np.ndarray | None, audio_rate: int) -> None:
        fps, width, height = self.fps, self.width, self.height
        with self._media_errors():
            self.container = av.open(str(self.tmp), "w", format="mp4", options={"movflags": _MOVFLAGS})
            self.container.metadata.update(tags)
            # A small exact fraction (30000/1001 for NTSC's 29.97002997, 2997/100 for 29.97) so pts = frame index.
            rate = Fraction(fps).limit_denominator(1001)
            self.video = self.container.add_stream(
                "libx264", rate=rate, options={"crf": str(crf), "preset": preset}
            )
            self.video.width, self.video.height = width, height
            self.video.pix_fmt = "yuv420p"
            # Tag what the conversion below does; untagged HD would be shown as BT.601 by some players.
            cc = self.video.codec_context
            cc.colorspace = _AVCOL_SPC_BT709
            cc.color_primaries = int(ColorPrimaries.BT709)
            cc.color_trc = int(ColorTrc.BT709)
            cc.color_range = int(ColorRange.MPEG)
            if audio is not None:
                self.audio = _AudioFeeder(self.container, audio, audio_rate)

    def add_frame(self, frame: np.ndarray) -> None:
        with self._media_errors():
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            shrink = frame.shape[1] > self.width or frame.shape[0] > self.height
            vf = vf.reformat(
                self.width,
                self.height,
                "yuv420p",
                dst_colorspace="itu709",
                dst_color_range=ColorRange.MPEG,
                interpolation=Interpolation.AREA if shrink else Interpolation.BICUBIC,
            )
            vf.pts = self.n_frames
            for packet in self.video.encode(vf):
                self.container.mux(packet)
            self.n_frames += 1
            if self.audio is not None:
                self.audio.feed_until(self.n_frames / self.fps)

    def finish(self) -> None:
        with self._media_errors():
            for packet in self.video.encode(None):
                self.container.mux(packet)
            if self.audio is not None:
                self.audio.feed_until(math.inf)
                self.audio.flush()
            self.container.close()  # writes the index; faststart moves it to the front
            self.container = None
            os.replace(self.tmp, self.out)

    def abort(self) -> None:
        """Drop the partial file; never raises, so the original error is the one the caller sees."""
        if self.container is not None:
            # A half-written file may not close cleanly; it is deleted anyway.
            with suppress(Exception):
                self.container.close()
            self.container = None
        self.tmp.unlink(missing_ok=True)

    @contextmanager
    def _media_errors(self) -> Iterator[None]:
        """Turns FFmpeg and file-system failures while writing into one MediaError sentence."""
        try:
            yield
        except (OSError, av.error.FFmpegError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise MediaError(
                f"Cannot write the video '{self.out}': {reason}. Check that the folder exists and is "
                "writable and that the disk has free space, or choose another output path."
            ) from error


class _AudioFeeder:
    """Encodes the audio in step with the video, in AAC frames of the encoder's frame size.

    Input samples at `audio_rate` are resampled (soxr, delay-compensated, streaming) to the
    encoder's rate when it differs; pts counts output samples from 0, and FFmpeg shifts its
    1024 priming samples before that (pts -1024) with an edit list that players honour.
    """

    def __init__(self, container: av.container.OutputContainer, audio: np.ndarray, audio_rate: int) -> None:
        self.samples = audio
        self.in_rate = audio_rate
        self.rate = audio_rate if audio_rate in AAC_RATES else AAC_RATE
        self.stream = container.add_stream("aac", rate=self.rate, layout="mono")
        self.stream.bit_rate = AAC_BITRATE
        self.container = container
        self.resampler = (
            soxr.ResampleStream(audio_rate, self.rate, 1, dtype="float32") if self.rate != audio_rate else None
        )
        self.read = 0  # input samples consumed
        self.pending = np.zeros(0, np.float32)  # encoder-rate samples not yet in a whole AAC frame
        self.pts = 0  # encoder-rate samples sent to the encoder

    def feed_until(self, t: float) -> None:
        """Encode the input samples before `t` seconds (whole AAC frames only; `flush` sends the rest)."""
        end = min(self.samples.shape[0], math.ceil(t * self.in_rate)) if math.isfinite(t) else self.samples.shape[0]
        if end > self.read:
            chunk = self.samples[self.read : end]
            last = end == self.samples.shape[0]
            if self.resampler is not None:
                chunk = self.resampler.resample_chunk(chunk, last=last)
            self.read = end
            self.pending = np.concatenate([self.pending, chunk])
        size = self.stream.codec_context.frame_size or 1024
        whole = self.pending.shape[0] // size * size
        for start in range(0, whole, size):
            self._encode(self.pending[start : start + size])
        self.pending = self.pending[whole:]

    def flush(self) -> None:
        if self.pending.shape[0]:
            self._encode(self.pending)  # aac takes a short last frame; the edit list trims the padding
            self.pending = self.pending[:0]
        for packet in self.stream.encode(None):
            self.container.mux(packet)

    def _encode(self, block: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.pts
        self.pts += block.shape[0]
        for packet in self.stream.encode(frame):
            self.container.mux(packet)


def _check_path(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    if out.suffix.lower() not in SUFFIXES:
        raise MediaError(f"The video path '{out}' must end in .mp4 (or .m4v); choose an .mp4 file name.")
    parent = out.parent
    if not parent.is_dir():
        raise MediaError(f"The folder '{parent}' does not exist; create it first or choose another output path.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MediaError(f"The folder '{parent}' is not writable; choose another output path.")
    if out.is_dir():
        raise MediaError(f"'{out}' is a folder; give a file name ending in .mp4.")
    return out


def _check_fps(fps: float) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = math.nan
    if not MIN_FPS <= value <= MAX_FPS:  # also rejects NaN
        raise MediaError(
            f"The frame rate {fps!r} is outside {MIN_FPS:g}..{MAX_FPS:g} fps; use one of {FPS_CHOICES}."
        )
    return value


def _check_options(crf: int, preset: str) -> None:
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise MediaError(f"crf must be a whole number in 0..51 (18 is visually lossless), not {crf!r}.")
    if preset not in X264_PRESETS:
        raise MediaError(f"Unknown x264 preset {preset!r}; use one of {', '.join(X264_PRESETS)}.")


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    tags = dict(metadata or {})
    for key, value in tags.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise MediaError(f"Metadata must map non-empty text keys to text values; got {key!r}: {value!r}.")
        if key.lower() in RESERVED_METADATA:
            raise MediaError(
                f"The metadata key {key!r} is reserved (FFmpeg writes its own version there); use 'comment' "
                "or another key."
            )
    return tags


def _check_audio(audio: np.ndarray, audio_rate: int) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise MediaError(
            f"The audio must be mono, shape (n_samples,), not {audio.shape}; average the channels first."
        )
    if audio.shape[0] == 0:
        raise MediaError("The audio has no samples; pass audio=None for a video without sound.")
    if not np.issubdtype(audio.dtype, np.floating):
        raise MediaError(f"The audio must be float samples in -1..1, not {audio.dtype}; divide integer PCM by 32768.")
    if isinstance(audio_rate, bool) or not isinstance(audio_rate, (int, np.integer)):
        raise MediaError(f"The audio rate must be a whole number of Hz, not {audio_rate!r}.")
    if not MIN_AUDIO_RATE <= audio_rate <= MAX_AUDIO_RATE:
        raise MediaError(
            f"The audio rate {audio_rate} Hz is outside {MIN_AUDIO_RATE}..{MAX_AUDIO_RATE}; "
            "pass the samples' real rate."
        )
    if not np.isfinite(audio).all():
        raise MediaError("The audio holds NaN or infinite samples; fix the samples before writing the video.")
    # Clip: AAC would otherwise wrap or distort peaks beyond full scale.
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


def _check_size(size: tuple[int, int], what: str, fix: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
        ok = (width, height) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise MediaError(f"{what} {size!r} is not a (width, height) pair of whole numbers; {fix}.")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise MediaError(f"{what} {width}x{height} is outside {MIN_SIDE}..{MAX_SIDE} pixels per side; {fix}.")
    if width % 2 or height % 2:
        raise MediaError(f"{what} {width}x{height} has an odd side, which H.264 (4:2:0) cannot encode; {fix}.")
    return width, height


def _check_frame(frame: np.ndarray, index: int, shape: tuple[int, ...] | None) -> None:
    if not isinstance(frame, np.ndarray):
        raise MediaError(f"Frame {index} is a {type(frame).__name__}, not a numpy array; pass RGB uint8 arrays.")
    if frame.dtype != np.uint8:
        raise MediaError(
            f"Frame {index} has dtype {frame.dtype}, not uint8; convert it (e.g. (x * 255).round().astype(np.uint8))."
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise MediaError(f"Frame {index} has shape {frame.shape}, not (height, width, 3); pass RGB frames.")
    if shape is not None and frame.shape != shape:
        raise MediaError(
            f"Frame {index} has shape {frame.shape} but the first frame had {shape}; render every frame at one size."
        )

