"""The `talkinghead render` command end to end: a real subprocess, a real MP4 decoded back."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage import data

from cli_run import talkinghead
from speech import espeak_say

LINE = "Maybe we should move the boat before the storm."
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def line_wav(tmp_path_factory):
    wav = tmp_path_factory.mktemp("render") / "line.wav"
    espeak_say(LINE, "en-us", wav)
    return wav


@pytest.mark.slow
def test_render_writes_a_synced_mp4_and_a_contact_sheet(line_wav, tmp_path):
    out, sheet = tmp_path / "line.mp4", tmp_path / "sheet.png"
    r = talkinghead("render", "--portrait", str(EXAMPLES / "astronaut.jpg"), "--audio", str(line_wav),
                    "--text", LINE, "-o", str(out), "--size", "256", "--fps", "25", "--contact-sheet", str(sheet))
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        assert (v.codec_context.width, v.codec_context.height) == (256, 256)
        assert float(v.average_rate) == 25
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        audio_s = float(a.duration * a.time_base)
    assert abs(len(frames) / 25 - audio_s) <= 1 / 25 + 1e-6
    assert min(f.mean() for f in frames) > 40
    moving = np.mean([np.abs(frames[i].astype(int) - frames[i - 1]).mean() for i in range(1, len(frames))])
    assert moving > 0.2, "the face must move"
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[1] >= 5 * 256


@pytest.mark.parametrize("make, expect", [
    (lambda p: cv2.imwrite(str(p), np.full((400, 400, 3), 128, np.uint8)), "no face"),
    (lambda p: p.write_text("not a picture"), "not an image"),
    (lambda p: p.write_bytes(b""), "empty"),
])
@pytest.mark.slow
def test_bad_portraits_give_one_clear_line(line_wav, tmp_path, make, expect):
    portrait = tmp_path / "face.png"
    make(portrait)
    r = talkinghead("render", "--portrait", str(portrait), "--audio", str(line_wav), "-o", str(tmp_path / "o.mp4"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert expect in r.stderr.lower(), r.stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("args, expect", [
    (["--size", "2000"], "--size"), (["--fps", "24"], "--fps"), (["--framing", "wide"], "invalid choice"),
])
@pytest.mark.slow
def test_bad_render_options_are_explained(line_wav, tmp_path, args, expect):
    portrait = tmp_path / "a.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    r = talkinghead("render", "--portrait", str(portrait), "--audio", str(line_wav), "-o", str(tmp_path / "o.mp4"),
                    *args)
    assert r.returncode == 2 and expect in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
