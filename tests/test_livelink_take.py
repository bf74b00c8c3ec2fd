"""Our Live Link Face CSV against a real take recorded with Epic's iPhone app
(tests/data/livelink/, MIT, the first 600 rows of github.com/alexdjulin's `alex_rom_3.csv`): our
reader reads it, our writer writes its layout, values survive a round trip, our eye angles relate
to the eyeLook* curves as the app's do, and importers of either timecode rule read our takes at
the same seconds.

The take has no head rotation (HeadYaw/Pitch/Roll are 0 on every row: recorded with head tracking
off), so it cannot fix the head's signs; those follow the eyes' (see `livelink_csv`'s docstring).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from eye_takes import eye_motion
from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.exports import livelink_csv as llf
from talkinghead.exports import read_livelink_csv, write_track
from talkinghead.motion import eyes
from talkinghead.motion.options import MotionOptions
from talkinghead.track import MotionTrack

TAKE = Path(__file__).parent / "data" / "livelink" / "livelinkface_take_alex_rom_3_first600.csv"
pytestmark = pytest.mark.skipif(not TAKE.exists(), reason=f"the real Live Link Face take {TAKE} is missing")

TIMECODE = re.compile(r"^\d\d:\d\d:\d\d:\d\d\.\d{3}$")      # hh:mm:ss:ff.fff, as the app writes
VALUE = re.compile(r"^-?\d\.\d{10}$")                       # 10 decimals, as the app writes


def table(path: Path) -> tuple[str, list[str], list[dict[str, str]]]:
    """(the header line, its names, the rows by name)."""
    text = path.read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    return text.splitlines()[0], text.splitlines()[0].split(","), rows


def columns(rows: list[dict[str, str]], *names: str) -> np.ndarray:
    return np.array([[float(r[n]) for n in names] for r in rows]).T


def frame_numbers(rows) -> np.ndarray:
    """Each row's timecode as a frame count at 60 (what the app counts in)."""
    return np.array([llf.parse_timecode(r["Timecode"]) for r in rows]) @ np.array([216000, 3600, 60, 1])


def our_take(fps: float = 30.0, seconds: float = 20.0, seed: int = 1) -> MotionTrack:
    """Our own eye motion (the motion engine's gaze and eyeLook* weights), looking around."""
    n = int(seconds * fps)
    motion = eye_motion(np.ones(n, bool), fps, MotionOptions(fps=fps, gaze="wander"), np.random.default_rng(seed))
    return MotionTrack(fps=fps, duration=n / fps, blendshapes=motion.blendshapes,
                       head=np.zeros((n, 6), np.float32), gaze=motion.gaze, visemes=["sil"] * n)


# -- reading --------------------------------------------------------------------------------

def test_our_reader_reads_the_real_take():
    _, _, rows = table(TAKE)
    track = read_livelink_csv(TAKE)
    assert track.fps == 30.0                           # a row every 2 frames at 60 = 30 fps
    # The app dropped one frame (rows 597 -> 598 are 4 frames at 60 apart): it is held.
    gap = np.flatnonzero(np.diff(frame_numbers(rows)) > 3)
    assert gap.tolist() == [595] and len(rows) == 600 and track.n_frames == 601
    source = np.r_[np.arange(596), 595, np.arange(596, 600)]           # row shown on each frame
    for name in ("jawOpen", "eyeBlinkLeft", "mouthLeft", "jawRight", "tongueOut"):
        column = name[0].upper() + name[1:]
        np.testing.assert_allclose(track.channel(name), columns(rows, column)[0][source], atol=1e-9, err_msg=name)
    assert np.ptp(track.blendshapes, axis=0).max() > 0.5                  # a real range of motion
    # Eye angles: radians in the file, our degrees with our signs (the mapping is checked below).
    left_eye_yaw, right_eye_yaw = columns(rows, "LeftEyeYaw", "RightEyeYaw")
    np.testing.assert_allclose(track.gaze[:, 2], -np.rad2deg(left_eye_yaw[source]), atol=1e-4)
    np.testing.assert_allclose(track.gaze[:, 0], -np.rad2deg(right_eye_yaw[source]), atol=1e-4)


# -- writing --------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", [30.0, 24.0, 60.0])
def test_our_writer_writes_the_apps_header_columns_timecodes_and_values(tmp_path, fps):
    app_header, app_names, app_rows = table(TAKE)
    path = tmp_path / "ours.csv"
    write_track(our_take(fps, seconds=2.0), path)
    header, names, rows = table(path)
    assert header == app_header and names == app_names        # the same names in the same order
    assert path.read_bytes().count(b"\r") == TAKE.read_bytes().count(b"\r") == 0
    for ours, app in ((rows, app_rows),):
        assert all(TIMECODE.match(r["Timecode"]) for r in ours) and all(TIMECODE.match(r["Timecode"]) for r in app)
        assert {r["BlendShapeCount"] for r in ours} == {r["BlendShapeCount"] for r in app} == {"61"}
        assert all(VALUE.match(r[n]) for r in ours[:5] for n in names[2:])
        assert all(VALUE.match(r[n]) for r in app[:5] for n in names[2:])
    # Frame numbers counted at 60 whatever the fps, as the app does: its 30 fps rows are 2 apart.
    app_step = np.median(np.diff(frame_numbers(app_rows)))
    assert app_step == pytest.approx(2.0, abs=0.002)
    np.testing.assert_allclose(np.diff(frame_numbers(rows)), 60 / fps, atol=0.0015)


def test_the_real_take_survives_a_round_trip_through_our_writer(tmp_path):
    first = read_livelink_csv(TAKE)
    path = tmp_path / "again.csv"
    write_track(first, path)
    again = read_livelink_csv(path)
    assert (again.fps, again.n_frames) == (first.fps, first.n_frames)
    np.testing.assert_allclose(again.blendshapes, first.blendshapes, atol=1e-9)
    np.testing.assert_allclose(again.gaze, first.gaze, atol=1e-6)
    np.testing.assert_allclose(again.head, first.head, atol=1e-6)
    # And our file holds the app's own numbers (to its 10 decimals; the dropped frame held). Only
    # eye roll, which we do not model, is written as 0, and the app's few weights just over 1
    # (EyeLookInRight reaches 1.0033) are read as 1.
    _, names, app_rows = table(TAKE)
    _, _, rows = table(path)
    kept = [n for n in names[2:] if not n.endswith("EyeRoll")]
    held = np.r_[np.arange(596), 595, np.arange(596, 600)]
    app = columns(app_rows, *kept)[:, held]
    app[:52] = np.clip(app[:52], 0.0, 1.0)
    np.testing.assert_allclose(columns(rows, *kept), app, atol=1e-9)
    assert {r["LeftEyeRoll"] for r in rows} == {"0.0000000000"}


# -- signs and units --------------------------------------------------------------------------

def slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares y = k x + b: (k, b, the residual's standard deviation)."""
    (k, b), *_ = np.linalg.lstsq(np.c_[x, np.ones_like(x)], y, rcond=None)
    return float(k), float(b), float(np.std(y - (k * x + b)))


def eye_relations(rows) -> dict[str, tuple[float, float, float]]:
    """How each eye-angle column follows the eyeLook* curves, as slopes: radians per unit weight.
    Sideways: In - Out of one side's curves; vertical: Up - Down."""
    c = {n: columns(rows, n)[0] for n in rows[0] if n != "Timecode"}
    out = {}
    for column in ("LeftEyeYaw", "RightEyeYaw"):
        for side in ("Left", "Right"):
            out[f"{column}~{side}"] = slope(c[f"EyeLookIn{side}"] - c[f"EyeLookOut{side}"], c[column])
    for column in ("LeftEyePitch", "RightEyePitch"):
        side = column.removesuffix("EyePitch")
        out[column] = slope(c[f"EyeLookUp{side}"] - c[f"EyeLookDown{side}"], c[column])
    return out


def test_our_eye_angles_follow_the_eyelook_curves_as_the_apps_do(tmp_path):
    """In the app's take the eyes' yaw is -0.6 rad per unit of EyeLookIn*Right* - Out*Right* (and
    +0.6 per unit of the Left In - Out, the eyes moving together), pitch -0.53 rad per unit of Up -
    Down: radians, + yaw toward the subject's right, + pitch down. Our takes must relate the same
    columns with the same signs and about the same gains (our motion engine's full look is 30 deg
    sideways, 25 deg vertically: 0.52 and 0.44 rad)."""
    _, _, app_rows = table(TAKE)
    app = eye_relations(app_rows)
    path = tmp_path / "ours.csv"
    write_track(our_take(), path)
    ours = eye_relations(table(path)[2])
    for key, (k_app, _, _) in app.items():
        k_ours = ours[key][0]
        assert abs(k_app) > 0.4, (key, k_app)                             # radians, not degrees/180
        assert np.sign(k_ours) == np.sign(k_app) and 0.6 < k_ours / k_app < 1.5, (key, k_ours, k_app)
    # Which eye each column belongs to: the app's LeftEyeYaw follows the curves named *Right*
    # more closely than those named Left (the eyes do not move exactly together), and RightEyeYaw
    # the Left ones. Ours exactly so: our eyes converge by a fixed angle, so each column is its own
    # eye's curves with no offset, and the other eye's with the vergence as an offset.
    for column, own, other in (("LeftEyeYaw", "Right", "Left"), ("RightEyeYaw", "Left", "Right")):
        assert app[f"{column}~{own}"][2] < app[f"{column}~{other}"][2], (column, app)
        assert abs(ours[f"{column}~{own}"][1]) < 1e-6, (column, ours)
        assert abs(ours[f"{column}~{other}"][1]) == pytest.approx(np.deg2rad(2 * eyes.VERGENCE_DEG), rel=1e-3)


def test_the_real_takes_eyes_read_with_our_signs_and_units():
    """Read into our convention (degrees; + yaw toward the subject's left, + pitch up), the app's
    eyes relate to their eyeLook* weights as our motion engine's do."""
    track = read_livelink_csv(TAKE)
    w = {name: track.channel(name) for name in BLENDSHAPE_NAMES if name.startswith("eyeLook")}
    cases = (("left yaw", track.gaze[:, 0], w["eyeLookOutLeft"] - w["eyeLookInLeft"], eyes.LOOK_HORIZONTAL_FULL_DEG),
             ("right yaw", track.gaze[:, 2], w["eyeLookInRight"] - w["eyeLookOutRight"], eyes.LOOK_HORIZONTAL_FULL_DEG),
             ("left pitch", track.gaze[:, 1], w["eyeLookUpLeft"] - w["eyeLookDownLeft"], eyes.LOOK_VERTICAL_FULL_DEG),
             ("right pitch", track.gaze[:, 3], w["eyeLookUpRight"] - w["eyeLookDownRight"], eyes.LOOK_VERTICAL_FULL_DEG))
    for what, angle, weight, full_deg in cases:
        k, _, _ = slope(weight, angle)                                       # degrees per unit of weight
        assert np.corrcoef(weight, angle)[0, 1] > 0.95, what
        assert 0.7 < k / full_deg < 1.5, (what, k, full_deg)


# -- importers: infer the rate from the frame numbers, or divide by 60 ------------------------

def seconds_inferring_the_rate(rows) -> np.ndarray:
    """Epic's Live Link Face Importer: the rate is 60 if any frame number exceeds 30, else 30."""
    parts = np.array([llf.parse_timecode(r["Timecode"]) for r in rows])
    rate = 60 if (parts[:, 3] > 30).any() else 30
    secs = parts[:, :3] @ np.array([3600, 60, 1]) + parts[:, 3] / rate
    return secs - secs[0]


def seconds_dividing_by_60(rows) -> np.ndarray:
    """Older importers: the frame number is always at 60."""
    parts = np.array([llf.parse_timecode(r["Timecode"]) for r in rows])
    secs = parts[:, :3] @ np.array([3600, 60, 1]) + parts[:, 3] / 60
    return secs - secs[0]


@pytest.mark.parametrize("fps", [30.0, 25.0, 24.0, 60.0])
def test_both_importer_rules_read_our_take_at_the_same_seconds(tmp_path, fps):
    path = tmp_path / "take.csv"
    write_track(our_take(fps, seconds=3.0), path)
    rows = table(path)[2]
    want = np.arange(len(rows)) / fps
    np.testing.assert_allclose(seconds_inferring_the_rate(rows), want, atol=1e-4)
    np.testing.assert_allclose(seconds_dividing_by_60(rows), want, atol=1e-4)
    # The app's take reads alike under both rules too.
    app_rows = table(TAKE)[2]
    np.testing.assert_allclose(seconds_inferring_the_rate(app_rows), seconds_dividing_by_60(app_rows), atol=1e-9)


def test_30_rate_timecodes_are_what_the_two_rules_disagree_on():
    """Why the writer counts at 60: a 30 fps take with frame numbers at 30 plays at half speed
    within every second under the divide-by-60 rule (and jumps at each second)."""
    rows = [{"Timecode": llf.format_timecode(i / 30, 30)} for i in range(90)]
    np.testing.assert_allclose(seconds_inferring_the_rate(rows), np.arange(90) / 30, atol=1e-9)
    old = seconds_dividing_by_60(rows)
    assert old[15] == pytest.approx(0.25) and old[30] == pytest.approx(1.0) and old[45] == pytest.approx(1.25)
