"""The Unreal take importer (clients/unreal): its pure half with plain pytest, its editor half with a
stand-in `unreal` module (no Unreal editor here), and both on takes written by talkinghead itself."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES
from talkinghead.exports import write_track
from talkinghead.exports.livelink_udp import UDP_CURVE_NAMES
from talkinghead.track import MotionTrack

CLIENT = Path(__file__).resolve().parents[1] / "clients" / "unreal"
PURE = CLIENT / "talkinghead_take.py"
EDITOR = CLIENT / "import_take.py"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.fixture(scope="module")
def tt():
    return load(PURE, "talkinghead_take_under_test")


def make_track(n: int = 50, fps: float = 30.0, seed: int = 5) -> MotionTrack:
    rng = np.random.default_rng(seed)
    return MotionTrack(fps=fps, duration=(n - 0.3) / fps, blendshapes=rng.uniform(0, 1, (n, 52)).astype(np.float32),
                       head=rng.uniform(-20, 20, (n, 6)).astype(np.float32),
                       gaze=rng.uniform(-15, 15, (n, 4)).astype(np.float32),
                       visemes=[VISEMES[i] for i in rng.integers(0, len(VISEMES), n)])


def expected_curves(track: MotionTrack) -> dict[str, np.ndarray]:
    """Live Link curve name -> values, from the documented units and signs (written out here)."""
    out = {name[0].upper() + name[1:]: track.blendshapes[:, k].astype(np.float64)
           for k, name in enumerate(BLENDSHAPE_NAMES)}
    r = np.deg2rad(track.head.astype(np.float64))
    g = np.deg2rad(track.gaze.astype(np.float64))
    out.update(HeadYaw=-r[:, 0], HeadPitch=-r[:, 1], HeadRoll=r[:, 2],
               LeftEyeYaw=-g[:, 2], LeftEyePitch=-g[:, 3], LeftEyeRoll=np.zeros(track.n_frames),
               RightEyeYaw=-g[:, 0], RightEyePitch=-g[:, 1], RightEyeRoll=np.zeros(track.n_frames))
    return out


# ------------------------------------------------------------------------------ the pure half


def test_pure_half_runs_without_talkinghead_or_numpy(tmp_path):
    """The editor's Python has neither: block both and read real takes."""
    track = make_track(12)
    write_track(track, tmp_path / "t.csv")
    write_track(track, tmp_path / "t.json")
    script = (
        "import sys, importlib.util\n"
        "sys.modules['talkinghead'] = None; sys.modules['numpy'] = None\n"
        f"spec = importlib.util.spec_from_file_location('talkinghead_take', {str(PURE)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['talkinghead_take'] = m; spec.loader.exec_module(m)\n"
        f"a = m.read_take({str(tmp_path / 't.csv')!r}); b = m.read_take({str(tmp_path / 't.json')!r})\n"
        "print(a.n_frames, b.n_frames, len(m.resample(a, 60).times))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["12", "12", "24"]


def test_names_match_the_project_constants(tt):
    assert tt.ARKIT_NAMES == BLENDSHAPE_NAMES
    assert tt.LIVELINK_CURVES == UDP_CURVE_NAMES  # the stream and the asset name curves alike


@pytest.mark.parametrize("fps", [30.0, 60.0, 25.0, 24.0])
def test_csv_take_round_trips_through_the_pure_reader(tt, tmp_path, fps):
    track = make_track(47, fps=fps)
    path = tmp_path / "take.csv"
    write_track(track, path)
    assert path.read_text().splitlines()[2].startswith(f"00:00:00:{60 / fps:06.3f},")   # frame numbers at 60
    take = tt.read_take(path)
    assert take.fps == fps and take.n_frames == 47
    np.testing.assert_allclose(take.times, np.arange(47) / fps, atol=2e-5)  # timecodes keep 1/1000 frame
    assert take.duration == pytest.approx(47 / fps)
    assert list(take.curves) == list(tt.LIVELINK_CURVES)
    for name, want in expected_curves(track).items():
        np.testing.assert_allclose(take.curves[name], want, atol=6e-7, err_msg=name)


def test_json_and_csv_of_one_track_give_the_same_curves(tt, tmp_path):
    track = make_track(40, fps=60.0)
    write_track(track, tmp_path / "take.json")
    write_track(track, tmp_path / "take.csv")
    a, b = tt.read_take(tmp_path / "take.json"), tt.read_take(tmp_path / "take.csv")
    assert a.fps == b.fps == 60 and a.n_frames == b.n_frames == 40
    assert a.duration == pytest.approx(track.duration, abs=1e-6)  # JSON keeps the audio's length
    np.testing.assert_allclose(a.times, b.times, atol=2e-5)
    for name in tt.LIVELINK_CURVES:
        # JSON rounds blendshapes to 4 decimals and degrees to 3 (1.7e-5 rad)
        np.testing.assert_allclose(a.curves[name], b.curves[name], atol=6e-5, err_msg=name)


def test_take_recorded_by_the_app_time_of_day_60_fps_app_column_order(tt, tmp_path):
    """The app's takes start at the time of day and count frames 0..59 (see livelink_csv)."""
    header = ["Timecode", "BlendShapeCount"] + [n[0].upper() + n[1:] for n in BLENDSHAPE_NAMES]
    left, right = header.index("JawLeft"), header.index("JawRight")
    header[left], header[right] = "JawRight", "JawLeft"  # the app's order
    header += list(tt.ROTATION_CURVES)
    lines = [",".join(header)]
    for i in range(40):
        frame = 31 + i  # 13:13:04:31 onwards at 60 fps, wrapping into the next second
        s, fr = 4 + frame // 60, frame % 60
        values = ["0"] * 52 + ["0.1", "0", "0", "0", "0", "0", "0", "0", "0"]
        values[BLENDSHAPE_NAMES.index("jawLeft")] = "0.5"  # in the app's JawRight column
        values[BLENDSHAPE_NAMES.index("jawRight")] = f"{i / 100:.2f}"  # the app's JawLeft column
        lines.append(f"13:13:{s:02d}:{fr:02d}.652,61," + ",".join(values))
    path = tmp_path / "app.csv"
    path.write_text("\n".join(lines) + "\n")
    take = tt.read_take(path)
    assert take.fps == 60 and take.n_frames == 40
    np.testing.assert_allclose(take.times, np.arange(40) / 60, atol=1e-9)
    assert set(take.curves["JawRight"]) == {0.5}  # found by name, not position
    np.testing.assert_allclose(take.curves["JawLeft"], np.arange(40) / 100)
    assert set(take.curves["HeadYaw"]) == {0.1}


def test_resample_puts_keys_on_the_new_frame_grid(tt):
    n = 25
    ramp = tuple(i / 24 for i in range(n))  # linear in time: interpolation must keep it exact
    take = tt.Take(fps=25.0, times=tuple(i / 25 for i in range(n)), curves={"JawOpen": ramp}, duration=1.0)
    out = tt.resample(take, 30)
    assert out.fps == 30 and out.n_frames == 30
    np.testing.assert_allclose(out.times, np.arange(30) / 30)
    t = np.arange(30) / 30
    np.testing.assert_allclose(out.curves["JawOpen"], np.minimum(t * 25 / 24, 1.0), atol=1e-12)
    assert out.curves["JawOpen"][-1] == 1.0  # held after the last sample
    same = tt.resample(take, 25)
    assert same.curves["JawOpen"] == ramp


def test_curve_naming(tt):
    assert tt.curve_name("EyeBlinkLeft") == "EyeBlinkLeft"
    assert tt.curve_name("EyeBlinkLeft", "arkit") == "eyeBlinkLeft"
    assert tt.curve_name("HeadYaw", "arkit") == "HeadYaw"
    with pytest.raises(tt.TakeError, match="unknown curve naming 'maya'"):
        tt.curve_name("JawOpen", "maya")


def test_small_helpers(tt):
    assert tt.frame_rate_fraction(30.0) == (30, 1)
    assert tt.frame_rate_fraction(29.97) == (2997, 100)
    assert tt.frame_rate_fraction(30000 / 1001) == (30000, 1001)
    with pytest.raises(tt.TakeError, match="positive"):
        tt.frame_rate_fraction(0)
    assert tt.asset_name("/takes/npc 01-line#3.csv") == "npc_01_line_3"
    r = tt.rotations_from_degrees(10, 5, -3, 4, -2, 6, 1)
    assert r == pytest.approx((-math.radians(10), -math.radians(5), math.radians(-3),
                               -math.radians(6), -math.radians(1), 0.0, -math.radians(4), math.radians(2), 0.0))


@pytest.mark.parametrize("name, text, message", [
    ("t.txt", "x", "give a talkinghead .json or a Live Link Face .csv"),
    ("t.json", "{nope", "not valid JSON"),
    ("t.json", json.dumps({"fps": 30, "blendshape_names": ["a"], "frames": [{}]}), "ARKit's 52 names"),
    ("t.csv", "Timecode,EyeBlinkLeft\n00:00:00:00.000,0\n", "missing blendshape column(s) EyeLookDownLeft"),
    ("t.csv", "Frame,x\n1,2\n", "first column should be 'Timecode'"),
])
def test_bad_takes_say_what_is_wrong(tt, tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(tt.TakeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tt.read_take(path)


def test_csv_take_with_time_running_backwards(tt, tmp_path):
    path = tmp_path / "t.csv"
    write_track(make_track(3), path)
    lines = path.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(tt.TakeError, match="timecodes must increase"):
        tt.read_take(path)


def test_missing_take_file(tt, tmp_path):
    with pytest.raises(tt.TakeError, match="cannot read .*check the path"):
        tt.read_take(tmp_path / "nope.csv")


# --------------------------------------------------------------------- the editor half (stand-in)


def stand_in_unreal() -> types.ModuleType:
    """A stand-in for Unreal's `unreal` module: the calls the importer makes, recorded.

    It only mirrors the API names the script uses (taken from Epic's Python API reference); it
    proves the script's own logic (which asset, which curves, which keys), not Unreal's behaviour.
    """
    u = types.ModuleType("unreal")
    u.calls = []
    u.assets = {}
    u.errors = []

    class Props:
        def __init__(self):
            self.props = {}

        def set_editor_property(self, name, value):
            self.props[name] = value

        def get_editor_property(self, name):
            return self.props.get(name)

    class Skeleton:
        pass

    class AnimSequence(Props):
        def __init__(self, path):
            super().__init__()
            self.path, self.curves, self.keys = path, [], {}
            self.props["controller"] = Controller()

        def get_path_name(self):
            return self.path

    class SoundWave:
        def __init__(self, path):
            self.path = path

        def get_path_name(self):
            return self.path

    class Controller:
        def __init__(self):
            self.depth, self.frame_rate, self.frames = 0, None, None

        def open_bracket(self, title, should_transact=True):
            self.depth += 1

        def close_bracket(self, should_transact=True):
            self.depth -= 1

        def set_frame_rate(self, rate, should_transact=True):
            self.frame_rate = (rate.numerator, rate.denominator)

        def set_number_of_frames(self, frames, should_transact=True):
            self.frames = frames.value

    class AnimSequenceFactory(Props):
        pass

    class AssetImportTask(Props):
        pass

    class AssetTools:
        def create_asset(self, name, folder, cls, factory):
            assert cls is AnimSequence and isinstance(factory, AnimSequenceFactory)
            assert isinstance(factory.get_editor_property("target_skeleton"), Skeleton)
            anim = AnimSequence(f"{folder}/{name}")
            u.assets[anim.path] = anim
            return anim

        def import_asset_tasks(self, tasks):
            for task in tasks:
                path = f"{task.get_editor_property('destination_path')}/{task.get_editor_property('destination_name')}"
                u.assets[path] = SoundWave(path)
                task.set_editor_property("imported_object_paths", [path])
                u.calls.append(("import", dict(task.props)))

    class AssetToolsHelpers:
        @staticmethod
        def get_asset_tools():
            return AssetTools()

    class EditorAssetLibrary:
        @staticmethod
        def load_asset(path):
            return Skeleton() if path.endswith("_Skeleton") else u.assets.get(path)

        @staticmethod
        def does_asset_exist(path):
            return path in u.assets

        @staticmethod
        def delete_asset(path):
            u.calls.append(("delete", path))
            return u.assets.pop(path, None) is not None

        @staticmethod
        def save_loaded_asset(asset):
            u.calls.append(("save", asset.get_path_name()))
            return True

    class AnimationLibrary:
        @staticmethod
        def add_curve(anim, name, curve_type, metadata):
            assert curve_type == "RCT_FLOAT" and metadata is False
            assert anim.get_editor_property("controller").depth == 1  # inside the bracket
            anim.curves.append(name)

        @staticmethod
        def add_float_curve_keys(anim, name, times, values):
            assert name in anim.curves and isinstance(times, list) and isinstance(values, list)
            anim.keys[name] = (times, values)

    class FrameRate:
        def __init__(self, numerator, denominator):
            self.numerator, self.denominator = numerator, denominator

    class FrameNumber:
        def __init__(self, value):
            self.value = value

    u.Skeleton, u.AnimSequence, u.AnimSequenceFactory, u.AssetImportTask = (
        Skeleton, AnimSequence, AnimSequenceFactory, AssetImportTask)
    u.AssetToolsHelpers, u.EditorAssetLibrary = AssetToolsHelpers, EditorAssetLibrary
    u.AnimationLibrary = AnimationLibrary
    u.FrameRate, u.FrameNumber = FrameRate, FrameNumber
    u.RawCurveTrackTypes = types.SimpleNamespace(RCT_FLOAT="RCT_FLOAT")
    u.log = lambda msg: u.calls.append(("log", msg))
    u.log_error = lambda msg: u.errors.append(msg)
    return u


@pytest.fixture
def editor(monkeypatch):
    unreal = stand_in_unreal()
    monkeypatch.setitem(sys.modules, "unreal", unreal)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script adds its own folder
    module = load(EDITOR, "import_take_under_test")
    sys.modules.pop("talkinghead_take", None)
    return module, unreal


def test_import_script_with_stand_in_unreal_module_creates_every_curve_and_the_sound(editor, tmp_path, tt):
    script, unreal = editor
    track = make_track(45, fps=25.0)
    write_track(track, tmp_path / "line.csv")
    sf.write(tmp_path / "line.wav", np.zeros(16000, np.float32), 16000)
    status = script.main(["--take", str(tmp_path / "line.csv"), "--audio", str(tmp_path / "line.wav"),
                          "--skeleton", "/Game/MetaHumans/Common/Face/Face_Archetype_Skeleton",
                          "--destination", "/Game/Dialogue", "--name", "Line01", "--fps", "30"])
    assert status == 0, unreal.errors
    anim = unreal.assets["/Game/Dialogue/AS_Line01"]
    controller = anim.get_editor_property("controller")
    assert controller.depth == 0 and controller.frame_rate == (30, 1)
    grid = tt.resample(tt.read_take(tmp_path / "line.csv"), 30)
    assert controller.frames == grid.n_frames == math.ceil(45 / 25 * 30)
    assert anim.curves == list(tt.LIVELINK_CURVES)  # all 61, Live Link names
    for name in tt.LIVELINK_CURVES:
        times, values = anim.keys[name]
        assert times == list(grid.times) and values == list(grid.curves[name])
    np.testing.assert_allclose(anim.keys["JawOpen"][1][::6], track.channel("jawOpen")[::5], atol=1e-6)  # t = 0.2 k
    (_, task), = [c for c in unreal.calls if c[0] == "import"]
    assert task["filename"] == str((tmp_path / "line.wav").resolve())
    assert (task["destination_path"], task["destination_name"]) == ("/Game/Dialogue", "SW_Line01")
    assert task["automated"] is True and task["save"] is True and task["replace_existing"] is False
    assert ("save", "/Game/Dialogue/AS_Line01") in unreal.calls
    assert unreal.assets["/Game/Dialogue/SW_Line01"].get_path_name() == "/Game/Dialogue/SW_Line01"


def test_import_script_with_stand_in_unreal_module_arkit_naming_and_take_fps(editor, tmp_path):
    script, unreal = editor
    write_track(make_track(10, fps=60.0), tmp_path / "t.json")
    assert script.main(["--take", str(tmp_path / "t.json"), "--skeleton", "/Game/Rig/Head_Skeleton",
                        "--naming", "arkit"]) == 0
    anim = unreal.assets["/Game/TalkingHead/AS_t"]
    assert anim.get_editor_property("controller").frame_rate == (60, 1)
    assert anim.curves[:2] == ["eyeBlinkLeft", "eyeLookDownLeft"] and anim.curves[-1] == "RightEyeRoll"
    assert not [c for c in unreal.calls if c[0] == "import"]  # no --audio, no sound


def test_import_script_with_stand_in_unreal_module_refuses_to_overwrite(editor, tmp_path):
    script, unreal = editor
    write_track(make_track(5), tmp_path / "t.csv")
    args = ["--take", str(tmp_path / "t.csv"), "--skeleton", "/Game/Rig/Head_Skeleton"]
    assert script.main(args) == 0
    assert script.main(args) == 2
    assert "already exists: pass --replace" in unreal.errors[-1]
    assert script.main(args + ["--replace"]) == 0
    assert ("delete", "/Game/TalkingHead/AS_t") in unreal.calls


def test_import_script_with_stand_in_unreal_module_reports_a_missing_skeleton(editor, tmp_path):
    script, unreal = editor
    write_track(make_track(5), tmp_path / "t.csv")
    assert script.main(["--take", str(tmp_path / "t.csv"), "--skeleton", "/Game/Nothing/Here"]) == 2
    assert "no Skeleton at /Game/Nothing/Here" in unreal.errors[-1]


def test_folder_takes_pairs_each_take_with_its_audio(tt, tmp_path):
    takes, voice = tmp_path / "takes", tmp_path / "voice"
    takes.mkdir(), voice.mkdir()
    for name in ("a", "b", "c"):
        write_track(make_track(8), takes / f"{name}.json")
    write_track(make_track(8), takes / "a.csv")
    sf.write(voice / "a_line.wav", np.zeros(800, np.float32), 16000)
    sf.write(voice / "b.wav", np.zeros(800, np.float32), 16000)
    (takes / "batch_report.jsonl").write_text(
        json.dumps({"id": "a", "status": "ok", "audio": str(voice / "a_line.wav")}) + "\n"
        + json.dumps({"id": "c", "status": "skipped", "audio": str(tmp_path / "elsewhere" / "c.wav")}) + "\n")
    found = tt.folder_takes(takes, audio_folder=voice)
    assert [(t.name, Path(t.take).name, t.audio and Path(t.audio).name) for t in found] == [
        ("a", "a.json", "a_line.wav"), ("b", "b.json", "b.wav"), ("c", "c.json", None)]
    assert Path(tt.folder_takes(takes, prefer="csv")[0].take).name == "a.csv"
    with pytest.raises(tt.TakeError, match="no .json or .csv takes"):
        tt.folder_takes(voice)


def test_import_script_with_stand_in_unreal_module_imports_a_whole_folder(editor, tmp_path):
    script, unreal = editor
    for name in ("line_01", "line_02"):
        write_track(make_track(12), tmp_path / f"{name}.json")
        sf.write(tmp_path / f"{name}.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "broken.csv").write_text("not,a,take\n1,2,3\n")
    status = script.main(["--folder", str(tmp_path), "--skeleton", "/Game/Rig/Head_Skeleton",
                          "--destination", "/Game/Dialogue"])
    assert status == 2  # one take failed; the others are imported
    assert {"/Game/Dialogue/AS_line_01", "/Game/Dialogue/SW_line_01", "/Game/Dialogue/AS_line_02",
            "/Game/Dialogue/SW_line_02"} <= set(unreal.assets)
    assert "/Game/Dialogue/AS_broken" not in unreal.assets
    assert len(unreal.errors) == 1 and "broken" in unreal.errors[0] and "Timecode" in unreal.errors[0]
    assert ("log", f"talkinghead: imported 2 takes from {tmp_path}, 1 failed") in unreal.calls
