"""Live Link Face (Epic's iOS app) CSV takes, for MetaHuman / Unreal importers and community tools.

Layout (one header line, then one line per frame)::

    Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,
    LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll
    00:00:00:00.000,61,0.0123450000,...
    00:00:00:02.000,61,...                 (a 30 fps take: frame numbers at 60, two per row)

Sources (checked against real files and Epic's own importer, not guessed):

* Column names, capitalisation and order: the header of real takes recorded by the app, e.g.
  github.com/alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder `anim/alex_rom_3.csv`,
  `anim/S07-001.csv`, `csv/facial.csv`; the same header is hard-coded by
  github.com/nmfisher/blender_livelinkface `bpylivelinkface.py` (LIVE_LINK_FACE_HEADER) and
  github.com/Qaanaaq/Face_Landmark_Link `Face_Landmarker/Face_Landmarker_Link.py`.
  The app's order is ARKit's except JawRight before JawLeft and MouthRight before MouthLeft.
  BlendShapeCount is 61 on every line (52 curves + 9 head/eye rotations).
* Timecode: Epic's importer (Unreal `LiveLinkFaceImporterFactory.cpp`, Live Link Face Importer
  plugin) reads `hh:mm:ss:frame.zzz`, where `frame.zzz` is a *fractional frame number* parsed with
  Atof, and seconds = h*3600 + m*60 + s + frame / rate. It infers rate = 60 if any frame number
  exceeds 30, else 30 (the file carries no frame rate). Older importers (and community tools)
  always divide by 60. The app itself always writes frame numbers at 60, whatever the take's fps:
  the real 30 fps take in tests/data/livelink/ goes `13:13:04:31.652`, `13:13:04:33.651`, ...
  (two frames at 60 per row, a fraction of a frame after the dot, not milliseconds). So we write
  frame numbers at 60 for every fps, fractional where a row falls between frames (24 fps:
  `00:00:00:02.500`), and both rules give the same seconds. The one case they cannot agree on is
  a take shorter than 31/60 s, whose frame numbers never pass 30: Epic's rule reads it at 30.
* Values: 10 decimals, as the app writes them.
* Units of the rotation columns: radians. Unreal's 2019 ARKit face code
  (`AppleARKitFaceSupport` `ToBlendShapeMap`) divided Unreal's degrees by 180 ("map -180..180 to
  -1..1"), but real app takes are only consistent with radians: in every file above, eye angle
  ~= 0.61 x the matching eyeLook* weight (e.g. EyeLookInRight 0.44 with LeftEyeYaw -0.267, and
  EyeLookDown 0.44 with eye pitch +0.267). At 0.61 rad per unit of weight a full look is ~35 deg,
  a human eye range; read as degrees/180 it would be ~110 deg, which no eye can do. Independent
  LLF emitters also send radians (a MediaPipe-to-LiveLink bridge writes `yaw / 180 * pi`).
* Signs and sides: the same files fix the relation between the rotation columns and the
  blendshape columns. Eye pitch is + when the eye looks DOWN (EyeLookDown* high <-> pitch > 0,
  EyeLookUp* high <-> pitch < 0). Eye yaw is - when the eyes move the way EyeLookOutLeft /
  EyeLookInRight move them. And LeftEyeYaw/LeftEyePitch follow the eye whose blendshapes are named
  *Right* (and vice versa): with EyeLookInLeft 0.087 / EyeLookInRight 0.023, RightEyeYaw is
  +0.053 and LeftEyeYaw -0.014 (again 0.61 x the weight of the *other* side). That is what
  Unreal's ARKit code above does when not mirrored: it swaps ARKit's left/right blendshape names,
  keeps ARKit's left/right eye transforms, and negates yaw and roll. Head rotation goes through
  the same code, so HeadYaw/HeadRoll carry the same mirroring as the eye yaw and HeadPitch is +
  for chin-down like the eye pitch.

We write our blendshapes under the same names (our eyeBlinkLeft -> EyeBlinkLeft, which is what
MetaHuman's ARKit pose mapping and every community importer expect) and write the rotations so
that they relate to those names exactly as in a real take. In our degrees (`talkinghead.track`:
+yaw = toward the subject's left, +pitch = up, +roll = toward the left shoulder):

    HeadYaw   = -rad(head yaw)      HeadPitch   = -rad(head pitch)     HeadRoll = +rad(head roll)
    LeftEyeYaw  = -rad(right-eye yaw)   LeftEyePitch  = -rad(right-eye pitch)   LeftEyeRoll  = 0
    RightEyeYaw = -rad(left-eye yaw)    RightEyePitch = -rad(left-eye pitch)    RightEyeRoll = 0

So our head yaw +10 deg is written as HeadYaw = -0.174533. Head x/y/z (millimetres) and visemes
have no column in this format: they are dropped on write and read back as 0 / "sil".
"""

from __future__ import annotations

import csv
import math
import os
from typing import Iterable

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.errors import ExportError
from talkinghead.track import MotionTrack

# The app lists ARKit's curves in ARKit's order, capitalised, except that it puts the Right of
# jaw and mouth before the Left (see module docstring); derived from the one name constant.
_APP_ORDER_SWAPS = {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}


def _app_name(arkit_name: str) -> str:
    return arkit_name[0].upper() + arkit_name[1:]


#: The app's 52 curve columns, in the app's order and capitalisation.
LLF_BLENDSHAPE_COLUMNS: tuple[str, ...] = tuple(_app_name(_APP_ORDER_SWAPS.get(n, n)) for n in BLENDSHAPE_NAMES)
LLF_ROTATION_COLUMNS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
LLF_CURVE_COLUMNS: tuple[str, ...] = LLF_BLENDSHAPE_COLUMNS + LLF_ROTATION_COLUMNS
LLF_HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount") + LLF_CURVE_COLUMNS
BLENDSHAPE_COUNT = len(LLF_CURVE_COLUMNS)  # 61, as the app writes it
assert len(LLF_BLENDSHAPE_COLUMNS) == 52 and BLENDSHAPE_COUNT == 61

#: our ARKit name -> the app's column name (same shape, capitalised first letter)
ARKIT_TO_LLF: dict[str, str] = {name: _app_name(name) for name in BLENDSHAPE_NAMES}
assert set(ARKIT_TO_LLF.values()) == set(LLF_BLENDSHAPE_COLUMNS)

VALUE_DECIMALS = 10     # as the app writes them
#: The frame rate of the frame numbers we write, at every fps: the app's (see the module docstring).
TIMECODE_RATE = 60


def format_timecode(t: float, rate: int = TIMECODE_RATE) -> str:
    """Seconds -> `HH:MM:SS:FF.fff` where FF.fff is a (fractional) frame number at `rate`."""
    # Work in integer thousandths of a frame so rounding can never print a frame number == rate.
    milli = int(round(t * rate * 1000))
    frames_total, frac = divmod(milli, 1000)
    seconds_total, frame = divmod(frames_total, rate)
    minutes_total, s = divmod(seconds_total, 60)
    h, m = divmod(minutes_total, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{frame:02d}.{frac:03d}"


def parse_timecode(text: str) -> tuple[int, int, int, float]:
    """`HH:MM:SS:FF[.fff]` -> (hours, minutes, seconds, fractional frame). ValueError if malformed."""
    parts = text.strip().split(":")
    if len(parts) != 4:
        raise ValueError(f"timecode {text!r} is not hh:mm:ss:frame.zzz")
    h, m, s = (int(p) for p in parts[:3])
    frame = float(parts[3])
    if min(h, m, s) < 0 or frame < 0 or not math.isfinite(frame):
        raise ValueError(f"timecode {text!r} has a negative or invalid field")
    return h, m, s, frame


def rotation_columns(head: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """Our degrees (n,6)/(n,4) -> the app's 9 rotation columns in radians, (n, 9)."""
    rad = np.deg2rad
    n = head.shape[0]
    out = np.zeros((n, len(LLF_ROTATION_COLUMNS)), dtype=np.float64)
    out[:, 0] = -rad(head[:, 0])  # HeadYaw
    out[:, 1] = -rad(head[:, 1])  # HeadPitch (+ = chin down in the app)
    out[:, 2] = rad(head[:, 2])  # HeadRoll
    out[:, 3] = -rad(gaze[:, 2])  # LeftEyeYaw    <- our right eye (see module docstring)
    out[:, 4] = -rad(gaze[:, 3])  # LeftEyePitch  <- our right eye
    out[:, 6] = -rad(gaze[:, 0])  # RightEyeYaw   <- our left eye
    out[:, 7] = -rad(gaze[:, 1])  # RightEyePitch <- our left eye
    return out  # eye roll columns stay 0: we do not model eye torsion


def from_rotation_columns(rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `rotation_columns`: (n, 9) radians -> head (n,6) and gaze (n,4) in degrees."""
    deg = np.rad2deg
    n = rot.shape[0]
    head = np.zeros((n, 6), dtype=np.float64)
    gaze = np.zeros((n, 4), dtype=np.float64)
    head[:, 0] = -deg(rot[:, 0])
    head[:, 1] = -deg(rot[:, 1])
    head[:, 2] = deg(rot[:, 2])
    gaze[:, 0] = -deg(rot[:, 6])  # our left eye  <- RightEyeYaw
    gaze[:, 1] = -deg(rot[:, 7])
    gaze[:, 2] = -deg(rot[:, 3])  # our right eye <- LeftEyeYaw
    gaze[:, 3] = -deg(rot[:, 4])
    return head, gaze


def _rows(track: MotionTrack) -> Iterable[list[str]]:
    order = [BLENDSHAPE_NAMES.index(_APP_ORDER_SWAPS.get(n, n)) for n in BLENDSHAPE_NAMES]  # ARKit -> app order
    bs = np.asarray(track.blendshapes, dtype=np.float64)[:, order]
    rot = rotation_columns(np.asarray(track.head, np.float64), np.asarray(track.gaze, np.float64))
    values = np.concatenate([bs, rot], axis=1)
    if not np.all(np.isfinite(values)):
        raise ExportError(
            "the track contains NaN or infinite values and cannot be written as CSV; "
            "this is a bug in the motion stage, please report it"
        )
    fmt = f"{{:.{VALUE_DECIMALS}f}}"
    for i in range(track.n_frames):
        yield [format_timecode(i / float(track.fps)), str(BLENDSHAPE_COUNT)] + [
            fmt.format(v) for v in values[i]
        ]


def write_livelink_csv(track: MotionTrack, path: str | os.PathLike[str]) -> None:
    """Write `track` as a Live Link Face CSV take. OSError propagates (see `exports.write_track`)."""
    rows = list(_rows(track))  # validate before touching the file
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(LLF_HEADER)
        writer.writerows(rows)


# ----------------------------------------------------------------------------------- reading


def _infer_timecode_rate(times: list[tuple[int, int, int, float]], fps: float | None = None) -> int:
    """The rate of the frame numbers: Epic's importer rule, 60 if any frame number exceeds 30,
    else 30. Frame numbers cannot tell in a clip within one second: a known `fps` settles it
    (the rate that puts its rows one frame of `fps` apart), else 60, the app's and our writer's."""
    if any(t[3] > 30.0 for t in times):
        return 60
    if len({t[:3] for t in times}) > 1:          # frame numbers that pass a second but never 30
        return 30
    if fps is None or len(times) < 2:
        return 60

    def misfit(rate: int) -> float:
        secs = np.array([h * 3600 + m * 60 + s + fr / rate for h, m, s, fr in times])
        return abs(float(np.median(np.diff(secs))) * fps - 1.0)

    return 60 if misfit(60) < misfit(30) else 30


def read_livelink_csv(path: str | os.PathLike[str], fps: float | None = None) -> MotionTrack:
    """Read a Live Link Face CSV (ours or one recorded by the app) into a MotionTrack.

    Columns are found by NAME (case-insensitively), not position. Rows are placed on a regular
    grid at `fps` by their timecode (a missing row repeats the previous frame; the first row is
    t = 0). With `fps=None` the rate is taken from the timecode spacing, the timecode's own frame
    rate (30 or 60) being inferred as Epic's importer does (a clip within one second, whose frame
    numbers cannot tell, at 60; pass `fps` to settle it).
    Visemes are not in the format and come back as "sil"; head x/y/z as 0.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            table = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except OSError as e:
        raise ExportError(f"cannot read '{path}': {e.strerror or e}; check the path") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise ExportError(f"'{path}' is not a readable CSV file ({e})") from e

    if fps is not None and not (float(fps) > 0 and math.isfinite(float(fps))):
        raise ExportError(f"fps must be a positive number, got {fps!r}")

    def fail(what: str) -> ExportError:
        return ExportError(f"'{path}' is not a Live Link Face CSV: {what}")

    if len(table) < 2:
        raise fail("it needs a header line and at least one frame")
    header = [cell.strip() for cell in table[0]]
    index = {name.lower(): i for i, name in enumerate(header)}
    if header[:1] != ["Timecode"]:
        raise fail(f"the first column should be 'Timecode', found {header[0]!r}")
    missing = [c for c in LLF_BLENDSHAPE_COLUMNS if c.lower() not in index]
    if missing:
        raise fail(f"missing blendshape column(s) {', '.join(missing)}")
    bs_cols = [index[ARKIT_TO_LLF[name].lower()] for name in BLENDSHAPE_NAMES]
    # Rotation columns are optional (a take recorded without head rotation still has them, as 0).
    rot_cols = [index.get(c.lower()) for c in LLF_ROTATION_COLUMNS]

    rows = table[1:]
    times: list[tuple[int, int, int, float]] = []
    values = np.zeros((len(rows), len(BLENDSHAPE_NAMES) + len(LLF_ROTATION_COLUMNS)), dtype=np.float64)
    for r, row in enumerate(rows):
        line = r + 2
        if len(row) != len(header):
            raise fail(f"line {line} has {len(row)} values but the header has {len(header)} columns")
        try:
            times.append(parse_timecode(row[0]))
        except ValueError as e:
            raise fail(f"line {line}: {e}") from None
        for k, col in enumerate(bs_cols + rot_cols):
            if col is None:
                continue
            cell = row[col].strip()
            try:
                v = float(cell) if cell else 0.0
            except ValueError:
                raise fail(f"line {line} column {header[col]!r} is not a number: {cell!r}") from None
            if not math.isfinite(v):
                raise fail(f"line {line} column {header[col]!r} is {cell!r}")
            values[r, k] = v

    rate = _infer_timecode_rate(times, fps)
    secs = np.array([h * 3600 + m * 60 + s + fr / rate for h, m, s, fr in times], dtype=np.float64)
    secs -= secs[0]
    if np.any(np.diff(secs) <= 0):
        bad = int(np.argmax(np.diff(secs) <= 0)) + 3
        raise fail(f"timecodes must increase from line to line (line {bad} does not)")

    if fps is None:
        if len(secs) > 1:
            step = float(np.median(np.diff(secs)))
            fps = 1.0 / step
            # Takes drift by a few thousandths of a frame per row: snap to a whole rate within 0.2%.
            if abs(fps - round(fps)) < 0.002 * fps:
                fps = float(round(fps))
        else:
            fps = float(rate)
    fps = float(fps)

    # Place rows on the i/fps grid; hold the previous frame over gaps (dropped frames in a take).
    slots = np.rint(secs * fps).astype(np.int64)
    n = int(slots[-1]) + 1
    source = np.full(n, -1, dtype=np.int64)
    source[slots] = np.arange(len(rows))  # later rows win if two land on one slot
    for i in range(1, n):
        if source[i] < 0:
            source[i] = source[i - 1]
    grid = values[source]

    head, gaze = from_rotation_columns(grid[:, len(BLENDSHAPE_NAMES):])
    return MotionTrack(
        fps=fps,
        duration=n / fps,
        blendshapes=np.clip(grid[:, : len(BLENDSHAPE_NAMES)], 0.0, 1.0).astype(np.float32),
        head=head.astype(np.float32),
        gaze=gaze.astype(np.float32),
        visemes=["sil"] * n,
    )
