"""Takes -> ARKit animation curves, for the Unreal editor importer (`import_take.py`).

Pure standard-library Python: no `unreal`, no numpy, no `talkinghead` (the editor's embedded
Python has none of them), so plain pytest tests all of it. `import_take.py` holds the few lines
that call the `unreal` API.

Reads the two take formats `talkinghead params` writes:

* talkinghead JSON (`-o take.json`): fps, duration, 52 blendshapes in ARKit order, head
  yaw/pitch/roll in degrees, per-eye gaze yaw/pitch in degrees (subject-relative: + yaw toward
  the subject's left, + pitch up; see `talkinghead/track.py`);
* Live Link Face CSV (`-o take.csv`, or a take recorded by Epic's app): `Timecode` as
  hh:mm:ss:frame.fff (a fractional frame at 30 or 60, rate inferred as Epic's Live Link Face
  Importer does: 60 if any frame number exceeds 30; a take within one second, 60 as the app and
  talkinghead write it), the 52 curves, and the 9 rotation curves
  in radians. Columns are found by name, so the app's own column order works.

Both become one `Take`: curves named as Live Link delivers them (Unreal's EARFaceBlendShape
names: "EyeBlinkLeft", ..., "HeadYaw", ...) with the rotations in the Live Link Face app's
units and signs (radians; HeadYaw = -yaw, HeadPitch = -pitch, HeadRoll = +roll;
LeftEyeYaw/Pitch come from the RIGHT eye, negated, and vice versa, as in real app takes).
That is what MetaHuman's ARKit mapping and Epic's importer expect, so a take imported from JSON
and the same take imported from CSV give the same asset.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction

#: ARKit's 52 blendshapes in ARKit order (Apple's ARFaceAnchor.BlendShapeLocation names). A copy
#: of talkinghead.arkit.BLENDSHAPE_NAMES, which this file cannot import; a test checks they match.
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
ROTATION_CURVES = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
#: The 61 curves as Live Link names them, in Unreal's EARFaceBlendShape order.
LIVELINK_CURVES = tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES) + ROTATION_CURVES
#: Curve naming schemes: "livelink" = the names above (MetaHuman, Epic's importer);
#: "arkit" = Apple's lowerCamel names for the 52 (morph targets of ARKit "perfect sync" rigs).
NAMINGS = ("livelink", "arkit")

MAX_FPS_DENOMINATOR = 1001
assert len(ARKIT_NAMES) == 52 and len(LIVELINK_CURVES) == 61


class TakeError(Exception):
    """A take file that cannot be read; the message names the file and what to fix."""


@dataclass(frozen=True)
class Take:
    """Curves sampled at `times`.

    fps:      frames per second of the take (from the file, or inferred from the CSV timecodes)
    times:    seconds from the first frame, shape = (n,), increasing
    curves:   curve name (LIVELINK_CURVES, all 61) -> n values; blendshapes 0..1, rotations radians
    duration: seconds the take covers (JSON: as written; CSV: last time + 1/fps)
    """

    fps: float
    times: tuple = ()
    curves: dict = field(default_factory=dict)
    duration: float = 0.0

    @property
    def n_frames(self) -> int:
        return len(self.times)


# --------------------------------------------------------------------------- conversions


def rotations_from_degrees(head_yaw: float, head_pitch: float, head_roll: float,
                           left_yaw: float, left_pitch: float, right_yaw: float, right_pitch: float) -> tuple:
    """talkinghead's degrees (subject-relative) -> the 9 Live Link rotation curves, radians.

    Returns values in ROTATION_CURVES order. The app's Left/Right eye curves follow the eye whose
    blendshapes carry the *other* side's name, hence the swap; eye roll is not modelled (0).
    """
    r = math.radians
    return (-r(head_yaw), -r(head_pitch), r(head_roll),
            -r(right_yaw), -r(right_pitch), 0.0,
            -r(left_yaw), -r(left_pitch), 0.0)


def curve_name(livelink_name: str, naming: str = "livelink") -> str:
    """A LIVELINK_CURVES name in the chosen naming ("livelink" or "arkit")."""
    if naming not in NAMINGS:
        raise TakeError(f"unknown curve naming {naming!r}: use one of {', '.join(NAMINGS)}")
    if naming == "arkit" and livelink_name not in ROTATION_CURVES:
        return livelink_name[0].lower() + livelink_name[1:]
    return livelink_name


def frame_rate_fraction(fps: float) -> tuple:
    """fps -> (numerator, denominator) for unreal.FrameRate, e.g. 29.97 -> (2997, 100), 30 -> (30, 1)."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise TakeError(f"fps must be a positive number, got {fps!r}")
    frac = Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR)
    if abs(float(frac) - fps) > 1e-6 * fps:
        raise TakeError(f"fps {fps!r} is not a ratio of whole numbers (denominator up to {MAX_FPS_DENOMINATOR}); "
                        "pass --fps 24, 25, 30, 60 or 29.97")
    return frac.numerator, frac.denominator


def asset_name(path: str | os.PathLike, prefix: str = "") -> str:
    """A valid Unreal asset name from a file name: letters, digits and '_' only."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "take"
    return prefix + name


# ------------------------------------------------------------------------------- reading


def read_take(path: str | os.PathLike) -> Take:
    """A .json (talkinghead) or .csv (Live Link Face) take -> Take. TakeError says what is wrong."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".json":
        return read_json_take(path)
    if suffix == ".csv":
        return read_csv_take(path)
    raise TakeError(f"'{path}' is not a take: give a talkinghead .json or a Live Link Face .csv")


def _open_text(path):
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise TakeError(f"cannot read '{path}': {e.strerror or e}; check the path") from None


def _finite(path, v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TakeError(f"'{path}' is not a talkinghead JSON take: {where} should be a finite number, found {v!r}")
    return float(v)


def read_json_take(path: str | os.PathLike) -> Take:
    """A talkinghead JSON track (see talkinghead/exports/json_track.py for the schema) -> Take."""
    with _open_text(path) as f:
        try:
            data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TakeError(f"'{path}' is not valid JSON ({e}); was it written by `talkinghead params -o x.json`?") \
                from None

    def fail(what: str) -> TakeError:
        return TakeError(f"'{path}' is not a talkinghead JSON take: {what}")

    if not isinstance(data, dict) or not {"fps", "blendshape_names", "frames"} <= set(data):
        raise fail("it needs 'fps', 'blendshape_names' and 'frames'")
    fps = _finite(path, data["fps"], "'fps'")
    if fps <= 0:
        raise fail(f"'fps' should be positive, found {fps!r}")
    if list(data["blendshape_names"]) != list(ARKIT_NAMES):
        raise fail("'blendshape_names' must be ARKit's 52 names in ARKit order")
    frames = data["frames"]
    if not isinstance(frames, list) or not frames:
        raise fail("'frames' should be a non-empty list")
    columns = [[] for _ in LIVELINK_CURVES]
    for i, fr in enumerate(frames):
        try:
            bs, head, gaze = fr["blendshapes"], fr["head"], fr["gaze"]
            angles = [head["yaw"], head["pitch"], head["roll"], gaze["left"]["yaw"], gaze["left"]["pitch"],
                      gaze["right"]["yaw"], gaze["right"]["pitch"]]
        except (KeyError, TypeError):
            raise fail(f"frame {i} needs 'blendshapes', 'head' yaw/pitch/roll and 'gaze' left/right yaw/pitch") \
                from None
        if not isinstance(bs, list) or len(bs) != 52:
            raise fail(f"frame {i} should have 52 blendshapes")
        values = [min(1.0, max(0.0, _finite(path, v, f"frame {i} blendshape {k}"))) for k, v in enumerate(bs)]
        values += rotations_from_degrees(*(_finite(path, a, f"frame {i} angle") for a in angles))
        for column, v in zip(columns, values):
            column.append(v)
    n = len(frames)
    duration = data.get("duration", n / fps)
    duration = _finite(path, duration, "'duration'") if duration is not None else n / fps
    return Take(fps=fps, times=tuple(i / fps for i in range(n)),
                curves={name: tuple(col) for name, col in zip(LIVELINK_CURVES, columns)}, duration=duration)


def _timecode_parts(text: str):
    parts = text.strip().split(":")
    if len(parts) != 4:
        raise ValueError(f"timecode {text!r} is not hh:mm:ss:frame.fff")
    h, m, s = (int(p) for p in parts[:3])
    frame = float(parts[3])
    if min(h, m, s) < 0 or not (frame >= 0 and math.isfinite(frame)):
        raise ValueError(f"timecode {text!r} has a negative or invalid field")
    return h, m, s, frame


def read_csv_take(path: str | os.PathLike) -> Take:
    """A Live Link Face CSV take (ours or the app's) -> Take, rows at their own timecodes."""
    with _open_text(path) as f:
        try:
            table = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
        except (csv.Error, UnicodeDecodeError) as e:
            raise TakeError(f"'{path}' is not a readable CSV file ({e})") from None

    def fail(what: str) -> TakeError:
        return TakeError(f"'{path}' is not a Live Link Face CSV take: {what}")

    if len(table) < 2:
        raise fail("it needs a header line and at least one frame")
    header = [c.strip() for c in table[0]]
    if header[0] != "Timecode":
        raise fail(f"the first column should be 'Timecode', found {header[0]!r}")
    index = {c.lower(): i for i, c in enumerate(header)}
    missing = [c for c in LIVELINK_CURVES[:52] if c.lower() not in index]
    if missing:
        raise fail(f"missing blendshape column(s) {', '.join(missing)}")
    cols = [index.get(c.lower()) for c in LIVELINK_CURVES]  # rotation columns may be absent: 0
    stamps, columns = [], [[] for _ in LIVELINK_CURVES]
    for r, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise fail(f"line {r} has {len(row)} values but the header has {len(header)} columns")
        try:
            stamps.append(_timecode_parts(row[0]))
        except ValueError as e:
            raise fail(f"line {r}: {e}") from None
        for column, c in zip(columns, cols):
            cell = row[c].strip() if c is not None else ""
            try:
                v = float(cell) if cell else 0.0
            except ValueError:
                raise fail(f"line {r} column {header[c]!r} is not a number: {cell!r}") from None
            if not math.isfinite(v):
                raise fail(f"line {r} column {header[c]!r} is {cell!r}")
            column.append(v)
    # Epic's importer: the timecode's frame rate is 60 if any frame number exceeds 30, else 30;
    # except a take within one second, where frame numbers cannot tell: 60, the rate the app and
    # talkinghead write.
    rate = 60 if any(fr > 30.0 for *_, fr in stamps) or len({tuple(p[:3]) for p in stamps}) == 1 else 30
    secs = [h * 3600 + m * 60 + s + fr / rate for h, m, s, fr in stamps]
    times = [t - secs[0] for t in secs]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise fail("timecodes must increase from line to line")
    if len(times) > 1:
        steps = sorted(b - a for a, b in zip(times, times[1:]))
        fps = 1.0 / steps[len(steps) // 2]
        if abs(fps - round(fps)) < 0.002 * fps:  # takes drift by thousandths of a frame per row
            fps = float(round(fps))
    else:
        fps = float(rate)
    blend = [[min(1.0, max(0.0, v)) for v in col] for col in columns[:52]]
    return Take(fps=fps, times=tuple(times),
                curves={name: tuple(col) for name, col in zip(LIVELINK_CURVES, blend + columns[52:])},
                duration=times[-1] + 1.0 / fps)


# ------------------------------------------------------------------------ a folder of takes

#: Audio files matched to a take by name (those Unreal imports as SoundWaves).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
BATCH_REPORT = "batch_report.jsonl"  # written by `talkinghead batch` next to the takes


@dataclass(frozen=True)
class FolderTake:
    """One take of a folder: `name` (the take's file name without suffix), its take file and its
    audio file (None when none was found)."""

    name: str
    take: str
    audio: str | None = None


def folder_takes(folder: str | os.PathLike, prefer: str = "json", audio_folder: str | os.PathLike | None = None) -> list:
    """Every take in `folder` (as `talkinghead batch -o folder` writes them), sorted by name.

    A name with both a .json and a .csv take is imported once, from `prefer`. Its audio is the
    file `talkinghead batch` recorded in the folder's batch_report.jsonl when that file exists
    here, else `<name>.<wav|flac|...>` in `audio_folder` (default: `folder`), else None.
    """
    if prefer not in ("json", "csv"):
        raise TakeError(f"prefer must be json or csv, not {prefer!r}")
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise TakeError(f"'{folder}' is not a folder: give the folder `talkinghead batch -o` wrote")
    takes: dict = {}
    for entry in sorted(os.listdir(folder)):
        stem, suffix = os.path.splitext(entry)
        if suffix.lower() in (".json", ".csv") and not entry.startswith("."):
            if stem not in takes or suffix.lower() == "." + prefer:
                takes[stem] = os.path.join(folder, entry)
    if not takes:
        raise TakeError(f"there are no .json or .csv takes in '{folder}'")
    recorded = _report_audio(os.path.join(folder, BATCH_REPORT))
    search = os.fspath(audio_folder) if audio_folder is not None else folder
    found = []
    for name, take in sorted(takes.items()):
        audio = recorded.get(name)
        if audio is None or not os.path.isfile(audio):
            audio = next((os.path.join(search, name + s) for s in AUDIO_SUFFIXES
                          if os.path.isfile(os.path.join(search, name + s))), None)
        found.append(FolderTake(name, take, audio))
    return found


def _report_audio(path: str) -> dict:
    """id -> audio path from a batch report (the lines that were written: ok or unchanged)."""
    audio = {}
    if not os.path.isfile(path):
        return audio
    with _open_text(path) as f:
        for raw in f:
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("status") in ("ok", "skipped") and record.get("audio"):
                audio[str(record.get("id"))] = str(record["audio"])
    return audio


# ---------------------------------------------------------------------------- resampling


def resample(take: Take, fps: float) -> Take:
    """The take on the regular grid i/fps (i = 0 .. ceil(duration*fps)-1), linearly interpolated.

    Keys before the first sample or after the last hold the end values. This is what the
    AnimSequence gets: one key per frame at its frame rate, whatever the take's own rate.
    """
    frame_rate_fraction(fps)  # validates
    n = max(1, math.ceil(take.duration * fps - 1e-9))
    grid = [i / fps for i in range(n)]
    src = take.times
    curves = {}
    for name, values in take.curves.items():
        out, j = [], 0
        for t in grid:
            while j + 1 < len(src) and src[j + 1] <= t:
                j += 1
            if t <= src[0] or j + 1 >= len(src):
                out.append(values[0] if t <= src[0] else values[-1])
            else:
                w = (t - src[j]) / (src[j + 1] - src[j])
                out.append(values[j] + w * (values[j + 1] - values[j]))
        curves[name] = tuple(out)
    return Take(fps=float(fps), times=tuple(grid), curves=curves, duration=take.duration)
