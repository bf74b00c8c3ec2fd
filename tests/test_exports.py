"""Exports: JSON track and Live Link Face CSV round trips, layout, signs and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES
from talkinghead.errors import ExportError
from talkinghead.exports import read_json, read_livelink_csv, track_to_dict, write_json, write_track
from talkinghead.exports import livelink_csv as llf
from talkinghead.track import MotionTrack

# The header of a real Live Link Face take (see livelink_csv's docstring for where it comes from).
REAL_LLF_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)


def make_track(n: int = 47, fps: float = 30.0, seed: int = 7) -> MotionTrack:
    rng = np.random.default_rng(seed)
    head = np.concatenate(
        [rng.uniform(-25, 25, (n, 3)), rng.uniform(-15, 15, (n, 3))], axis=1
    ).astype(np.float32)
    return MotionTrack(
        fps=fps,
        duration=(n - 0.5) / fps,
        blendshapes=rng.uniform(0, 1, (n, len(BLENDSHAPE_NAMES))).astype(np.float32),
        head=head,
        gaze=rng.uniform(-20, 20, (n, 4)).astype(np.float32),
        visemes=[VISEMES[i] for i in rng.integers(0, len(VISEMES), n)],
    )


def still_track(n: int = 3, fps: float = 30.0, head=(0, 0, 0, 0, 0, 0), gaze=(0, 0, 0, 0)) -> MotionTrack:
    return MotionTrack(
        fps=fps,
        duration=n / fps,
        blendshapes=np.zeros((n, 52), np.float32),
        head=np.tile(np.asarray(head, np.float32), (n, 1)),
        gaze=np.tile(np.asarray(gaze, np.float32), (n, 1)),
        visemes=["sil"] * n,
    )


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


# ------------------------------------------------------------------------------------ JSON


def test_json_round_trip(tmp_path):
    track = make_track()
    path = tmp_path / "t.json"
    write_json(track, path)
    back = read_json(path)
    assert back.fps == track.fps
    assert back.n_frames == track.n_frames
    assert back.duration == pytest.approx(track.duration, abs=1e-6)
    np.testing.assert_allclose(back.blendshapes, track.blendshapes, atol=5.1e-5)
    np.testing.assert_allclose(back.head, track.head, atol=5.1e-4)
    np.testing.assert_allclose(back.gaze, track.gaze, atol=5.1e-4)
    assert back.visemes == track.visemes


def test_json_exact_structure(tmp_path):
    track = make_track(n=4)
    path = tmp_path / "t.json"
    write_json(track, path)
    data = json.loads(path.read_text())
    assert list(data) == ["fps", "duration", "blendshape_names", "frames"]
    assert data["fps"] == 30 and isinstance(data["fps"], int)
    assert data["blendshape_names"] == list(BLENDSHAPE_NAMES)
    assert len(data["frames"]) == 4
    f1 = data["frames"][1]
    assert list(f1) == ["t", "blendshapes", "head", "gaze", "viseme"]
    assert f1["t"] == pytest.approx(1 / 30, abs=1e-4)
    assert len(f1["blendshapes"]) == 52
    assert list(f1["head"]) == ["yaw", "pitch", "roll", "x", "y", "z"]
    assert list(f1["gaze"]) == ["left", "right"]
    assert list(f1["gaze"]["left"]) == ["yaw", "pitch"] and list(f1["gaze"]["right"]) == ["yaw", "pitch"]
    assert f1["viseme"] == track.visemes[1]
    # values land in the right slots, rounded as documented
    assert f1["head"]["roll"] == round(float(track.head[1, 2]), 3)
    assert f1["head"]["z"] == round(float(track.head[1, 5]), 3)
    assert f1["gaze"]["right"]["pitch"] == round(float(track.gaze[1, 3]), 3)
    k = BLENDSHAPE_NAMES.index("jawOpen")
    assert f1["blendshapes"][k] == round(float(track.blendshapes[1, k]), 4)
    assert track_to_dict(track) == data


def _write_dict(tmp_path, data) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def test_json_rejects_reordered_names(tmp_path):
    data = track_to_dict(make_track(n=3))
    names = data["blendshape_names"]
    names[15], names[16] = names[16], names[15]  # jawLeft <-> jawRight
    with pytest.raises(ExportError, match="entry 15 is 'jawRight', expected 'jawLeft'"):
        read_json(_write_dict(tmp_path, data))


def test_json_rejects_wrong_lengths(tmp_path):
    data = track_to_dict(make_track(n=3))
    data["frames"][2]["blendshapes"].pop()
    with pytest.raises(ExportError, match="frame 2 'blendshapes' should have 52 values, found 51"):
        read_json(_write_dict(tmp_path, data))
    data = track_to_dict(make_track(n=3))
    data["blendshape_names"].append("extra")
    with pytest.raises(ExportError, match="52 ARKit names, found 53"):
        read_json(_write_dict(tmp_path, data))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("fps"), "missing 'fps'"),
        (lambda d: d["frames"][0]["head"].pop("roll"), "frame 0 'head' is missing 'roll'"),
        (lambda d: d["frames"][1].update(viseme="XX"), "frame 1 viseme 'XX'"),
        (lambda d: d["frames"][1]["gaze"]["left"].update(yaw="a"), "gaze left 'yaw'"),
        (lambda d: d["frames"][2].update(t=5.0), "frame 2 has t=5.0"),
    ],
)
def test_json_validation_messages(tmp_path, mutate, message):
    data = track_to_dict(make_track(n=3))
    mutate(data)
    with pytest.raises(ExportError, match=message):
        read_json(_write_dict(tmp_path, data))


def test_json_not_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("Timecode,BlendShapeCount\n")
    with pytest.raises(ExportError, match="not valid JSON"):
        read_json(path)


# ------------------------------------------------------------------------------ LLF CSV


def test_llf_header_is_the_apps(tmp_path):
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(make_track(n=3), path)
    first_line = path.read_text().splitlines()[0]
    assert first_line == REAL_LLF_HEADER
    header, rows = read_rows(path)
    curves = header[2:]
    assert len(curves) == 61
    # the app's order differs from ARKit's for the jaw and mouth sideways pairs
    assert curves.index("JawRight") < curves.index("JawLeft")
    assert curves.index("MouthRight") < curves.index("MouthLeft")
    assert all(r["BlendShapeCount"] == "61" for r in rows)
    assert all(len(r) == 63 for r in rows)


def test_llf_columns_are_mapped_by_name(tmp_path):
    track = make_track(n=5)
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(track, path)
    _, rows = read_rows(path)
    for name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight", "eyeBlinkLeft", "tongueOut"):
        column = name[0].upper() + name[1:]
        k = BLENDSHAPE_NAMES.index(name)
        for i, row in enumerate(rows):
            assert float(row[column]) == pytest.approx(float(track.blendshapes[i, k]), abs=1e-6)


def test_llf_timecode_counts_frames_at_60_at_every_fps(tmp_path):
    track = make_track(n=75, fps=30.0)  # 2.5 s: crosses two second boundaries
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(track, path)
    _, rows = read_rows(path)
    codes = [r["Timecode"] for r in rows]
    assert codes[:3] == ["00:00:00:00.000", "00:00:00:02.000", "00:00:00:04.000"]   # as the app: 2 per row
    assert codes[29:32] == ["00:00:00:58.000", "00:00:01:00.000", "00:00:01:02.000"]
    for i, code in enumerate(codes):
        h, m, s, frame = llf.parse_timecode(code)
        assert frame == int(frame) and frame < 60
        assert (h * 3600 + m * 60 + s) * 60 + int(frame) == 2 * i


def test_llf_timecode_fractional_frames_and_rounding():
    assert llf.format_timecode(61 / 60) == "00:00:01:01.000"
    assert llf.format_timecode(3723.5) == "01:02:03:30.000"
    assert llf.format_timecode(1 / 25) == "00:00:00:02.400"      # 25 fps: between frames at 60
    assert llf.format_timecode(1 / 24) == "00:00:00:02.500"
    assert llf.format_timecode(3723.5, 30) == "01:02:03:15.000"   # a 30-rate timecode, for reading tests
    # rounding never yields frame == rate
    assert llf.format_timecode(0.99999999) == "00:00:01:00.000"


@pytest.mark.parametrize("fps", [30.0, 60.0, 25.0, 24.0, 50.0])
def test_llf_round_trip(tmp_path, fps):
    track = make_track(n=40, fps=fps)
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(track, path)
    back = read_livelink_csv(path)  # fps inferred from the timecodes
    assert back.fps == fps
    assert back.n_frames == track.n_frames
    assert back.duration == pytest.approx(track.duration, abs=1 / fps)
    np.testing.assert_allclose(back.blendshapes, track.blendshapes, atol=1e-9)
    np.testing.assert_allclose(back.head[:, :3], track.head[:, :3], atol=1e-6)
    np.testing.assert_allclose(back.gaze, track.gaze, atol=1e-6)
    assert np.all(back.head[:, 3:] == 0)  # no translation columns in this format
    assert back.visemes == ["sil"] * track.n_frames


@pytest.mark.parametrize("fps", [60.0, 30.0, 24.0])
def test_llf_short_clip_reads_right_with_its_fps(tmp_path, fps):
    track = make_track(n=7, fps=fps)  # frame numbers never exceed 30: Epic's rule alone would say 30
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(track, path)
    for hint in (fps, None):          # within one second, without a hint: 60, the app's rate
        back = read_livelink_csv(path, fps=hint)
        assert back.n_frames == 7 and back.fps == fps
        np.testing.assert_allclose(back.gaze, track.gaze, atol=1e-6)


def test_llf_still_reads_30_rate_timecodes(tmp_path):
    """Takes written with frame numbers at 30 (ours before, some tools still) read at their seconds."""
    track = make_track(n=75, fps=30.0)
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(track, path)
    header, rows = read_rows(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i, r in enumerate(rows):
            w.writerow([llf.format_timecode(i / 30, 30)] + [r[c] for c in header[1:]])
    assert read_rows(path)[1][31]["Timecode"] == "00:00:01:01.000"
    for fps in (None, 30):
        back = read_livelink_csv(path, fps=fps)
        assert back.fps == 30 and back.n_frames == 75
        np.testing.assert_allclose(back.gaze, track.gaze, atol=1e-6)


def test_llf_head_and_eye_signs(tmp_path):
    # head: yaw +10 (toward the subject's left), pitch +10 (chin up), roll +10 (left shoulder)
    # eyes: left eye yaw +10 / pitch +5, right eye yaw -4 / pitch -2
    track = still_track(head=(10, 10, 10, 0, 0, 0), gaze=(10, 5, -4, -2))
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(track, path)
    _, rows = read_rows(path)
    r = rows[0]
    rad10 = np.deg2rad(10.0)
    assert float(r["HeadYaw"]) == pytest.approx(-rad10, abs=1e-6)  # documented: -0.174533
    assert r["HeadYaw"] == "-0.1745329252"
    assert float(r["HeadPitch"]) == pytest.approx(-rad10, abs=1e-6)  # the app: + = chin down
    assert float(r["HeadRoll"]) == pytest.approx(rad10, abs=1e-6)
    # the app pairs LeftEye* with the eye whose blendshapes are named *Right* (and vice versa)
    assert float(r["RightEyeYaw"]) == pytest.approx(-rad10, abs=1e-6)
    assert float(r["RightEyePitch"]) == pytest.approx(-np.deg2rad(5), abs=1e-6)
    assert float(r["LeftEyeYaw"]) == pytest.approx(np.deg2rad(4), abs=1e-6)
    assert float(r["LeftEyePitch"]) == pytest.approx(np.deg2rad(2), abs=1e-6)
    assert float(r["LeftEyeRoll"]) == 0 and float(r["RightEyeRoll"]) == 0


def _real_style_take(tmp_path, curves: dict[str, float], n: int = 4) -> Path:
    """A file shaped like an app recording: wall-clock timecode at 60, one row every 2 frames."""
    header = REAL_LLF_HEADER.split(",")
    lines = [REAL_LLF_HEADER]
    for i in range(n):
        frame = 56 + 2 * i
        sec, frame = 4 + frame // 60, frame % 60
        values = [f"{curves.get(c, 0.0):.10f}" for c in header[2:]]
        lines.append(",".join([f"13:13:{sec:02d}:{frame:02d}.{652 - i:03d}", "61", *values]))
    path = tmp_path / "MySlate_1_iPhone.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_llf_reads_an_app_style_take(tmp_path):
    # Relations seen in real takes: EyeLookIn/Out weights ~ 1/0.61 x the yaw of the *other* side's
    # rotation column, looking down <-> positive pitch.
    path = _real_style_take(
        tmp_path,
        {
            "EyeLookOutLeft": 0.34, "EyeLookInRight": 0.44, "EyeLookDownLeft": 0.44,
            "EyeLookDownRight": 0.44, "JawOpen": 0.5, "MouthLeft": 0.25,
            "LeftEyeYaw": -0.267, "RightEyeYaw": -0.206, "LeftEyePitch": 0.267, "RightEyePitch": 0.267,
        },
    )
    track = read_livelink_csv(path)
    assert track.fps == 30.0 and track.n_frames == 4
    assert track.channel("jawOpen")[0] == pytest.approx(0.5)
    assert track.channel("mouthLeft")[0] == pytest.approx(0.25)
    assert track.channel("mouthRight")[0] == 0
    left_yaw, left_pitch, right_yaw, right_pitch = track.gaze[0]
    # eyeLookOutLeft / eyeLookInRight = both eyes toward the subject's left = our + yaw
    assert left_yaw > 0 and right_yaw > 0
    # the eye with the larger weight (right: 0.44) gets the larger angle
    assert right_yaw == pytest.approx(np.rad2deg(0.267), abs=1e-4)
    assert left_yaw == pytest.approx(np.rad2deg(0.206), abs=1e-4)
    # looking down = our negative pitch
    assert left_pitch < 0 and right_pitch < 0


def test_llf_reads_columns_by_name_not_position(tmp_path):
    track = make_track(n=6)
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(track, path)
    header, rows = read_rows(path)
    shuffled = [header[0], header[1]] + list(reversed(header[2:]))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(shuffled)
        for r in rows:
            w.writerow([r[c] for c in shuffled])
    back = read_livelink_csv(path, fps=30)
    np.testing.assert_allclose(back.blendshapes, track.blendshapes, atol=2e-6)
    np.testing.assert_allclose(back.gaze, track.gaze, atol=1e-4)


def test_llf_rejects_bad_files(tmp_path):
    path = tmp_path / "t.csv"
    llf.write_livelink_csv(make_track(n=3), path)
    text = path.read_text()
    (tmp_path / "missing.csv").write_text(text.replace("TongueOut,", "Tongue,", 1))
    with pytest.raises(ExportError, match="missing blendshape column.*TongueOut"):
        read_livelink_csv(tmp_path / "missing.csv")
    lines = text.splitlines()
    (tmp_path / "short.csv").write_text("\n".join(lines[:2] + [lines[2].rsplit(",", 1)[0]]) + "\n")
    with pytest.raises(ExportError, match="line 3 has 62 values"):
        read_livelink_csv(tmp_path / "short.csv")
    (tmp_path / "tc.csv").write_text("\n".join([lines[0], "00:00:01," + lines[1].split(",", 1)[1]]) + "\n")
    with pytest.raises(ExportError, match="line 2: timecode"):
        read_livelink_csv(tmp_path / "tc.csv")


# ------------------------------------------------------------------------------ write_track


@pytest.mark.parametrize("suffix", [".json", ".csv", ".JSON"])
def test_write_track_picks_format(tmp_path, suffix):
    track = make_track(n=5)
    out = write_track(track, tmp_path / f"t{suffix}")
    text = out.read_text()
    if suffix.lower() == ".json":
        assert json.loads(text)["blendshape_names"] == list(BLENDSHAPE_NAMES)
    else:
        assert text.startswith("Timecode,BlendShapeCount,EyeBlinkLeft,")


def test_write_track_bad_suffix(tmp_path):
    with pytest.raises(ExportError) as err:
        write_track(make_track(n=2), tmp_path / "t.xyz")
    assert str(err.value) == "unknown output format '.xyz': use .json or .csv"
    assert not (tmp_path / "t.xyz").exists()
    with pytest.raises(ExportError, match="no suffix"):
        write_track(make_track(n=2), tmp_path / "track")


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_write_track_unwritable_path(tmp_path, suffix):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")  # a file where a folder should be: fails even when running as root
    target = blocker / f"out{suffix}"
    with pytest.raises(ExportError) as err:
        write_track(make_track(n=2), target)
    message = str(err.value)
    assert str(target) in message
    assert "choose another output path" in message
    assert isinstance(err.value.__cause__, OSError)
    with pytest.raises(ExportError, match="cannot write"):
        write_track(make_track(n=2), tmp_path / "no" / "such" / f"dir{suffix}")
