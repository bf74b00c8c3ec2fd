"""media/: real x264/AAC encodes decoded back through PyAV; JPEG/PNG/raw frames; contact sheets.

The sync test writes a clip whose frames flash white at known indices while the audio carries a
1 kHz tone burst starting at exactly the same instants, then measures on the decoded file where
the flashes and the burst onsets land. Frame 0 flashes too, so AAC's priming samples (the
encoder delay FFmpeg hides with an edit list) would show up as an offset at t = 0.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs
from talkinghead.errors import MediaError
from talkinghead.media import (
    FPS_CHOICES,
    IMAGE_ENCODINGS,
    VideoInfo,
    decode_frame,
    encode_frame,
    write_contact_sheet,
    write_mp4,
)

SECONDS = 3.0
FLASH_TIMES = (0.0, 1.3, 2.2)  # seconds; each lands on a whole frame at 25, 30 and 60 fps
BURST_S = 0.03
DARK, BRIGHT = 40, 255


def _clip(fps: int, side: int, rate: int):
    """(frame generator, audio, flash frame indices): ceil(SECONDS * fps) frames of side x side."""
    n = math.ceil(SECONDS * fps)
    flashes = [round(t * fps) for t in FLASH_TIMES]

    def frames():
        for k in range(n):
            yield np.full((side, side, 3), BRIGHT if k in flashes else DARK, np.uint8)

    audio = np.zeros(round(SECONDS * rate), np.float32)
    t = np.arange(round(BURST_S * rate)) / rate
    for k in flashes:
        start = round(k / fps * rate)
        audio[start : start + t.size] = 0.8 * np.sin(2 * np.pi * 1000 * t)
    return frames(), audio, flashes


def _decode(path: Path):
    """Decoded video frame times (s) and mean brightness, audio samples, audio rate and its first time (s)."""
    with av.open(str(path)) as c:
        times, levels = [], []
        for f in c.decode(video=0):
            times.append(float(f.pts * f.time_base))
            levels.append(f.to_ndarray(format="rgb24").mean())
    with av.open(str(path)) as c:
        chunks, first_t = [], None
        for f in c.decode(audio=0):
            if first_t is None:
                first_t = float(f.pts * f.time_base)
            chunks.append(f.to_ndarray()[0])
            rate = f.sample_rate
    return np.array(times), np.array(levels), np.concatenate(chunks), rate, first_t


def _onsets(samples: np.ndarray, rate: int, t0: float) -> list[float]:
    """Start times (s) of the tone bursts: first sample above 40 % of the peak after a quiet gap.

    40 % stays above AAC's low-level pre-echo yet within a fraction of a 1 kHz cycle of the start.
    """
    loud = np.flatnonzero(np.abs(samples) > 0.4 * np.abs(samples).max())
    gaps = np.diff(loud, prepend=-rate) > 0.1 * rate
    return [t0 + i / rate for i in loud[gaps]]


def _top_level_boxes(path: Path) -> list[str]:
    data, boxes, pos = path.read_bytes(), [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        boxes.append(kind.decode("latin-1"))
        pos += size if size else len(data)
    return boxes


@pytest.mark.parametrize(
    ("fps", "side", "rate"),
    [(25, 256, 16000), (25, 512, 48000), (30, 256, 48000), (30, 512, 16000), (60, 256, 44100), (60, 512, 22050)],
)
@pytest.mark.slow
def test_mp4_streams_sizes_and_sync(tmp_path, fps, side, rate):
    frames, audio, flashes = _clip(fps, side, rate)
    path = tmp_path / "clip.mp4"
    seen = []
    info = write_mp4(path, frames, fps, audio, rate, progress=seen.append)

    n = math.ceil(SECONDS * fps)
    frame_s = 1 / fps
    assert info == VideoInfo(path=path, n_frames=n, fps=float(fps), width=side, height=side, duration_s=n / fps)
    assert seen == list(range(1, n + 1))

    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, a.codec_context.name) == ("h264", "aac")
        assert (v.codec_context.width, v.codec_context.height) == (side, side)
        assert v.average_rate == Fraction(fps)
        assert v.frames == n
        assert a.codec_context.channels == 1
        video_s = float(v.duration * v.time_base)
        audio_s = float(a.duration * a.time_base)
        assert abs(video_s - n / fps) < 1e-6
        assert abs(video_s - audio_s) <= frame_s  # the edit list trims AAC's padding at the end
        assert abs(float(a.start_time * a.time_base)) <= frame_s
        assert v.start_time == 0

    times, levels, samples, out_rate, audio_t0 = _decode(path)
    assert times.size == n
    assert times[0] == 0.0
    np.testing.assert_allclose(np.diff(times), frame_s, atol=1e-4)
    assert abs(audio_t0) <= frame_s  # the priming samples are hidden, not played before t = 0
    # Padding to whole AAC frames may add < 1024 samples at the end, never lose any.
    assert SECONDS * out_rate <= samples.size < SECONDS * out_rate + 1024 + 64

    flash_t = times[levels > (DARK + BRIGHT) / 2]
    np.testing.assert_allclose(flash_t, [k / fps for k in flashes], atol=1e-6)
    onsets = _onsets(samples, out_rate, audio_t0)
    assert len(onsets) == len(flash_t)
    offsets = np.array(onsets) - flash_t
    assert np.all(np.abs(offsets) <= frame_s), f"audio-video offsets {offsets * 1000} ms"
    assert np.ptp(offsets) < 0.002  # no drift along the clip (measured: all ~0.08 ms)


def test_mp4_faststart_metadata_scaling_and_log(tmp_path):
    frames, audio, _ = _clip(30, 256, 16000)
    path = tmp_path / "meta.mp4"
    tags = {"comment": "made by talkinghead", "title": "Line 12", "talkinghead_version": "0.1.0"}
    with capture_logs() as logs:
        info = write_mp4(path, frames, 30, audio, 16000, size=(128, 96), metadata=tags)
    assert (info.width, info.height) == (128, 96)

    boxes = _top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat")  # +faststart: the index comes first
    with av.open(str(path)) as c:
        for key, value in tags.items():
            assert c.metadata[key] == value
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (128, 96)
        frame = next(c.decode(video=0))
        assert frame.to_ndarray(format="rgb24").mean() == pytest.approx(BRIGHT, abs=2)  # BT.709 tagged and read back

    event = next(e for e in logs if e["event"] == "media.mp4_written")
    assert event["frames"] == 90 and event["fps"] == 30.0 and event["size"] == "128x96"
    assert event["seconds"] >= 0
    assert list(tmp_path.iterdir()) == [path]  # no temp file left beside it
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not a temp file's 0600


def test_mp4_pulls_frames_one_at_a_time(tmp_path):
    written = []

    def frames():
        for k in range(40):
            # each frame is asked for only after the previous one went to the encoder
            assert written[-1:] == ([k] if k else [])
            yield np.full((32, 32, 3), k, np.uint8)

    write_mp4(tmp_path / "lazy.mp4", frames(), 25, None, 0, progress=written.append)
    assert written == list(range(1, 41))


def test_mp4_without_audio_and_any_fps(tmp_path):
    for fps, rate in ((30000 / 1001, Fraction(30000, 1001)), (29.97, Fraction(2997, 100)), (1, Fraction(1))):
        frames = (np.full((64, 80, 3), k, np.uint8) for k in range(12))
        info = write_mp4(tmp_path / "silent.mp4", frames, fps, None, 0)
        assert info.n_frames == 12 and info.fps == fps and info.duration_s == pytest.approx(12 / fps)
        with av.open(str(info.path)) as c:
            assert len(c.streams.audio) == 0
            assert c.streams.video[0].average_rate == rate
            assert c.streams.video[0].frames == 12
    assert set(FPS_CHOICES) == {25, 30, 60}


def _frames(n=4, shape=(64, 64, 3), dtype=np.uint8):
    return (np.zeros(shape, dtype) for _ in range(n))


def _mismatched():
    yield from _frames(3)
    yield np.zeros((64, 66, 3), np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frames": iter(())}, "no frames"),
        ({"frames": _frames(shape=(63, 64, 3))}, "odd side"),
        ({"frames": _frames(shape=(8, 8, 3))}, "outside 16..8192"),
        ({"size": (101, 64)}, "odd side"),
        ({"frames": _frames(dtype=np.float32)}, "not uint8"),
        ({"frames": _frames(shape=(64, 64))}, "(height, width, 3)"),
        ({"frames": _mismatched()}, "Frame 3 has shape (64, 66, 3) but the first frame had (64, 64, 3)"),
        ({"fps": 0}, "outside 1..120"),
        ({"fps": 121}, "outside 1..120"),
        ({"fps": float("nan")}, "outside 1..120"),
        ({"crf": 60}, "crf must be"),
        ({"preset": "turbo"}, "Unknown x264 preset"),
        ({"audio": np.zeros((10, 2), np.float32)}, "mono"),
        ({"audio": np.zeros(0, np.float32)}, "audio=None"),
        ({"audio": np.array([0.0, np.nan], np.float32)}, "NaN"),
        ({"audio_rate": 1000}, "outside 8000..192000"),
        ({"metadata": {"encoder": "me"}}, "reserved"),
        ({"name": "clip.avi"}, "must end in .mp4"),
        ({"name": "missing/clip.mp4"}, "does not exist"),
    ],
)
def test_mp4_errors_leave_no_file(tmp_path, kwargs, message):
    old = tmp_path / "clip.mp4"
    old.write_bytes(b"previous take")  # a failed write must not clobber what was there
    args = {"frames": _frames(), "fps": 25, "audio": np.zeros(4000, np.float32), "audio_rate": 16000} | kwargs
    target = tmp_path / args.pop("name", "clip.mp4")
    with pytest.raises(MediaError, match=re.escape(message)) as err:
        write_mp4(target, args.pop("frames"), args.pop("fps"), args.pop("audio"), args.pop("audio_rate"), **args)
    assert str(err.value).endswith(".")
    assert old.read_bytes() == b"previous take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_mp4_target_is_a_folder_or_unwritable(tmp_path):
    (tmp_path / "take.mp4").mkdir()
    with pytest.raises(MediaError, match="is a folder"):
        write_mp4(tmp_path / "take.mp4", _frames(), 25, None, 0)
    if os.geteuid() == 0:
        return  # root writes anywhere; the permission case cannot be staged
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(MediaError, match="not writable"):
        write_mp4(locked / "take.mp4", _frames(), 25, None, 0)


def test_mp4_caller_errors_pass_through_and_leave_no_file(tmp_path):
    def broken():
        yield np.zeros((64, 64, 3), np.uint8)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_mp4(tmp_path / "clip.mp4", broken(), 25, None, 0)
    assert list(tmp_path.iterdir()) == []


def test_mp4_write_failure_midway_is_a_media_error(tmp_path):
    folder = tmp_path / "takes"
    folder.mkdir()

    def frames():
        for k in range(10):
            if k == 5:
                shutil.rmtree(folder)  # the output folder vanishes while FFmpeg is writing into it
            yield np.zeros((32, 32, 3), np.uint8)

    with pytest.raises(MediaError, match=r"Cannot write the video .* Check that the folder exists"):
        write_mp4(folder / "clip.mp4", frames(), 25, np.zeros(8000, np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


def _test_image(h=48, w=64) -> np.ndarray:
    """Smooth gradients with a red left half and a blue right half (a BGR swap would show)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.where(x < w // 2, 220, 30)
    img[..., 1] = (y * 255 // (h - 1)).astype(np.uint8)
    img[..., 2] = np.where(x < w // 2, 30, 220)
    return img


@pytest.mark.parametrize("encoding", IMAGE_ENCODINGS)
def test_encode_decode_round_trip(encoding):
    img = _test_image()
    data = encode_frame(img, encoding, quality=95)
    back = decode_frame(data, encoding, width=64, height=48)
    assert back.shape == img.shape and back.dtype == np.uint8
    if encoding == "jpeg":
        assert data[:2] == b"\xff\xd8"
        assert np.abs(back.astype(int) - img).mean() < 3
        assert back[:, :20, 0].mean() > 180 and back[:, -20:, 2].mean() > 180  # red left, blue right: RGB kept
    else:
        np.testing.assert_array_equal(back, img)
    if encoding == "png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    if encoding == "raw":
        assert data == img.tobytes()


def test_jpeg_quality_changes_size():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_frame(img, "jpeg", quality=20)) < len(encode_frame(img, "jpeg", quality=95))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode_frame(_test_image(), "webp"), "Unknown frame encoding"),
        (lambda: encode_frame(_test_image(), "jpeg", quality=0), "1..100"),
        (lambda: encode_frame(_test_image().astype(np.float32), "png"), "RGB uint8"),
        (lambda: encode_frame(np.zeros((4, 4), np.uint8), "raw"), "RGB uint8"),
        (lambda: decode_frame(b"not an image", "png"), "not a readable png"),
        (lambda: decode_frame(b"", "jpeg"), "not a readable jpeg"),
        (lambda: decode_frame(b"\0" * 10, "raw", 2, 2), "needs 12"),
        (lambda: decode_frame(b"\0" * 12, "raw"), "pass width= and height="),
        (lambda: decode_frame(encode_frame(_test_image(), "png"), "png", width=10), "not the expected"),
    ],
)
def test_image_errors(call, message):
    with pytest.raises(MediaError, match=re.escape(message)):
        call()


def test_contact_sheet(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (128, 128, 128)]
    frames = [np.full((80 + 10 * i, 60, 3), c, np.uint8) for i, c in enumerate(colours)]
    labels = [f"t={i * 0.5:.1f}s viseme aa" for i in range(len(frames))]
    path = write_contact_sheet(frames, labels, tmp_path / "sheet.png", columns=3, cell=64)

    sheet = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    pitch = 64 + 24
    assert sheet.shape == (3 * pitch, 3 * 64, 3)
    for i, colour in enumerate(colours):
        top, left = (i // 3) * pitch, (i % 3) * 64
        assert tuple(sheet[top + 32, left + 32]) == colour  # cell centre: the frame, in RGB order
        label = sheet[top + 64 : top + pitch, left : left + 64]
        assert label.max() > 150  # some caption pixels drawn
    assert list(tmp_path.iterdir()) == [path]

    with pytest.raises(MediaError, match="one label per frame"):
        write_contact_sheet(frames, labels[:2], tmp_path / "bad.png")
    with pytest.raises(MediaError, match=r"must end in \.png"):
        write_contact_sheet(frames, labels, tmp_path / "bad.jpg")
    with pytest.raises(MediaError, match="does not exist"):
        write_contact_sheet(frames, labels, tmp_path / "nope" / "sheet.png")
