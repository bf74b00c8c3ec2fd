"""The `talkinghead params` command end to end: real files in every format, real subprocess."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import soundfile as sf

from cli_run import talkinghead
from speech import espeak_say
from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES

LINE = "Maybe we should move the boat before the storm."


@pytest.fixture(scope="module")
def line_wav(tmp_path_factory, espeak):
    wav = tmp_path_factory.mktemp("cli") / "line.wav"
    espeak_say(LINE, "en-us", wav)
    return wav


def _encode(src, dst, fmt: str) -> None:
    x, rate = sf.read(src, dtype="float32")
    stereo = np.stack([x, 0.5 * x], axis=1)
    if fmt == "m4a":
        with av.open(str(dst), "w", format="mp4") as out:
            stream = out.add_stream("aac", rate=44100)
            frame = av.AudioFrame.from_ndarray(
                np.interp(np.arange(0, len(x), rate / 44100), np.arange(len(x)), x)[None, :].astype(np.float32),
                format="flt", layout="mono")
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    else:
        sf.write(dst, stereo, rate, format={"flac": "FLAC", "ogg": "OGG", "mp3": "MP3", "wav": "WAV"}[fmt])


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
@pytest.mark.slow
def test_params_json_from_every_format(line_wav, tmp_path, fmt):
    audio = tmp_path / f"line.{fmt}"
    _encode(line_wav, audio, fmt)
    out = tmp_path / "take.json"
    proc = talkinghead("params", "--audio", str(audio), "--text", LINE, "--fps", "25", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    take = json.loads(out.read_text())
    assert list(take) == ["fps", "duration", "blendshape_names", "frames"]
    assert take["fps"] == 25 and take["blendshape_names"] == list(BLENDSHAPE_NAMES)
    assert abs(take["duration"] - sf.info(line_wav).duration) < 0.1
    frame = take["frames"][10]
    assert list(frame) == ["t", "blendshapes", "head", "gaze", "viseme"]
    assert frame["t"] == pytest.approx(10 / 25)
    assert list(frame["head"]) == ["yaw", "pitch", "roll", "x", "y", "z"]
    assert set(frame["gaze"]) == {"left", "right"} and set(frame["gaze"]["left"]) == {"yaw", "pitch"}
    visemes = [f["viseme"] for f in take["frames"]]
    assert set(visemes) <= set(VISEMES) and "PP" in visemes  # "Maybe ... move ... boat ... before"
    jaw = np.array([f["blendshapes"][BLENDSHAPE_NAMES.index("jawOpen")] for f in take["frames"]])
    assert jaw.max() > 0.3


@pytest.mark.slow
def test_params_csv_is_a_live_link_face_take(line_wav, tmp_path):
    out = tmp_path / "take.csv"
    proc = talkinghead("params", "--audio", str(line_wav), "-o", str(out), "--emotion", "happy", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    rows = out.read_text().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and len(header) == 2 + 61
    assert header[-9:] == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                           "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    first = rows[1].split(",")
    assert first[0] == "00:00:00:00.000" and first[1] == "61"
    smile = float(first[header.index("MouthSmileLeft")])
    assert smile > 0.1  # --emotion happy reached the file


@pytest.mark.parametrize("content, expect", [
    (b"", "empty"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "Cannot decode"),
    (bytes(range(256)) * 40, "Cannot decode"),
])
@pytest.mark.slow
def test_bad_audio_gives_one_clear_line_not_a_traceback(tmp_path, content, expect):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    proc = talkinghead("params", "--audio", str(bad), "-o", str(tmp_path / "x.json"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert expect.lower() in proc.stderr.lower(), proc.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_bad_arguments_are_explained(line_wav, tmp_path):
    proc = talkinghead("params", "--audio", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "no such file" in proc.stderr.lower()
    proc = talkinghead("params", "--audio", str(line_wav), "-o", str(tmp_path / "x.mp4"))
    assert proc.returncode == 2 and "use .json or .csv" in proc.stderr
    proc = talkinghead("params", "--audio", str(line_wav), "-o", str(tmp_path / "x.json"), "--head-motion", "9")
    assert proc.returncode == 2 and "head-motion must be between 0 and 2" in proc.stderr
    proc = talkinghead("params", "--audio", str(line_wav), "-o", str(tmp_path / "x.json"), "--emotion", "bored")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


@pytest.mark.slow
def test_log_json_emits_one_event_per_line(line_wav, tmp_path):
    proc = talkinghead("--log-level", "info", "--log-json", "params", "--audio", str(line_wav),
                       "-o", str(tmp_path / "x.json"))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert {"audio.loaded", "motion.done"} <= {e["event"] for e in events}
