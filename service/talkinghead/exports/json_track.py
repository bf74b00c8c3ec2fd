"""The JSON track format: one object per frame, named channels, ARKit blendshape order.

The schema is fixed (other tools read it); do not add, rename or reorder keys::

    {"fps": 30, "duration": 2.5, "blendshape_names": [52 ARKit names, arkit.BLENDSHAPE_NAMES order],
     "frames": [{"t": 0.0,
                 "blendshapes": [52 floats 0..1, same order as blendshape_names],
                 "head": {"yaw": deg, "pitch": deg, "roll": deg, "x": mm, "y": mm, "z": mm},
                 "gaze": {"left": {"yaw": deg, "pitch": deg}, "right": {"yaw": deg, "pitch": deg}},
                 "viseme": "PP"}, ...]}

Angles and signs are exactly `talkinghead.track`'s (degrees, subject-relative). Floats are
rounded to keep files small: blendshapes 4 decimals, angles and millimetres 3, times 4.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Real
from typing import Any

import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES, VISEMES
from talkinghead.errors import ExportError
from talkinghead.track import HEAD_FIELDS, MotionTrack

BLENDSHAPE_DECIMALS = 4
ANGLE_DECIMALS = 3  # also used for the head offsets in millimetres
TIME_DECIMALS = 4
DURATION_DECIMALS = 6  # duration decides the frame count downstream: keep it nearly exact

_TOP_KEYS = ("fps", "duration", "blendshape_names", "frames")
_FRAME_KEYS = ("t", "blendshapes", "head", "gaze", "viseme")
_GAZE_EYES = ("left", "right")
_EYE_KEYS = ("yaw", "pitch")
_VISEME_SET = frozenset(VISEMES)


def _fps_value(fps: float) -> int | float:
    """30.0 -> 30 so the file reads `"fps": 30`; 29.97 stays a float."""
    f = float(fps)
    return int(f) if f.is_integer() else f


def track_to_dict(track: MotionTrack) -> dict[str, Any]:
    """The JSON-ready dict for `track` (plain Python floats, rounded)."""
    bs = np.asarray(track.blendshapes, dtype=np.float64)
    head = np.asarray(track.head, dtype=np.float64)
    gaze = np.asarray(track.gaze, dtype=np.float64)
    fps = float(track.fps)
    frames = []
    for i in range(track.n_frames):
        h, g = head[i], gaze[i]
        frames.append({
            "t": round(i / fps, TIME_DECIMALS),
            "blendshapes": [round(float(v), BLENDSHAPE_DECIMALS) for v in bs[i]],
            "head": {name: round(float(h[k]), ANGLE_DECIMALS) for k, name in enumerate(HEAD_FIELDS)},
            "gaze": {
                "left": {"yaw": round(float(g[0]), ANGLE_DECIMALS), "pitch": round(float(g[1]), ANGLE_DECIMALS)},
                "right": {"yaw": round(float(g[2]), ANGLE_DECIMALS), "pitch": round(float(g[3]), ANGLE_DECIMALS)},
            },
            "viseme": track.visemes[i],
        })
    return {
        "fps": _fps_value(fps),
        "duration": round(float(track.duration), DURATION_DECIMALS),
        "blendshape_names": list(BLENDSHAPE_NAMES),
        "frames": frames,
    }


def write_json(track: MotionTrack, path: str | os.PathLike[str]) -> None:
    """Write `track` to `path` in the JSON track format. OSError propagates (see `exports.write_track`)."""
    data = track_to_dict(track)
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError as e:  # NaN or infinity somewhere in the track
        raise ExportError(
            "the track contains NaN or infinite values and cannot be written as JSON; "
            "this is a bug in the motion stage, please report it"
        ) from e
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.write("\n")


# ----------------------------------------------------------------------------------- reading


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _fail(path: Any, what: str) -> ExportError:
    return ExportError(f"'{path}' is not a talkinghead JSON track: {what}")


def _check_keys(path: Any, obj: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict):
        raise _fail(path, f"{where} should be an object, found {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise _fail(path, f"{where} is missing {', '.join(repr(k) for k in missing)}")


def _number(path: Any, v: Any, where: str) -> float:
    if not _is_number(v):
        raise _fail(path, f"{where} should be a finite number, found {v!r}")
    return float(v)


def _track_from_dict(data: Any, path: Any = "<dict>") -> MotionTrack:
    _check_keys(path, data, _TOP_KEYS, "the top level")

    fps = _number(path, data["fps"], "'fps'")
    if fps <= 0:
        raise _fail(path, f"'fps' should be positive, found {data['fps']!r}")
    duration = _number(path, data["duration"], "'duration'")
    if duration < 0:
        raise _fail(path, f"'duration' should not be negative, found {data['duration']!r}")

    names = data["blendshape_names"]
    if not isinstance(names, list) or len(names) != len(BLENDSHAPE_NAMES):
        n = len(names) if isinstance(names, list) else type(names).__name__
        raise _fail(path, f"'blendshape_names' should list the {len(BLENDSHAPE_NAMES)} ARKit names, found {n}")
    for i, (got, want) in enumerate(zip(names, BLENDSHAPE_NAMES)):
        if got != want:
            raise _fail(
                path,
                f"'blendshape_names' must be ARKit's 52 names in ARKit order; entry {i} is {got!r}, expected {want!r}",
            )

    frames = data["frames"]
    if not isinstance(frames, list) or not frames:
        raise _fail(path, "'frames' should be a non-empty list")

    n = len(frames)
    bs = np.empty((n, len(BLENDSHAPE_NAMES)), dtype=np.float32)
    head = np.empty((n, len(HEAD_FIELDS)), dtype=np.float32)
    gaze = np.empty((n, 4), dtype=np.float32)
    visemes: list[str] = []
    for i, fr in enumerate(frames):
        where = f"frame {i}"
        _check_keys(path, fr, _FRAME_KEYS, where)
        t = _number(path, fr["t"], f"{where} 't'")
        if abs(t - i / fps) > 0.5 / fps:
            raise _fail(path, f"{where} has t={t!r} but frames must be at i/fps = {i / fps:.4f} s")
        values = fr["blendshapes"]
        if not isinstance(values, list) or len(values) != len(BLENDSHAPE_NAMES):
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise _fail(path, f"{where} 'blendshapes' should have {len(BLENDSHAPE_NAMES)} values, found {got}")
        for k, v in enumerate(values):
            x = _number(path, v, f"{where} blendshape {BLENDSHAPE_NAMES[k]!r}")
            if not -1e-6 <= x <= 1 + 1e-6:
                raise _fail(path, f"{where} blendshape {BLENDSHAPE_NAMES[k]!r} is {x!r}, outside 0..1")
            bs[i, k] = x
        _check_keys(path, fr["head"], HEAD_FIELDS, f"{where} 'head'")
        for k, name in enumerate(HEAD_FIELDS):
            head[i, k] = _number(path, fr["head"][name], f"{where} head {name!r}")
        _check_keys(path, fr["gaze"], _GAZE_EYES, f"{where} 'gaze'")
        for e, eye in enumerate(_GAZE_EYES):
            _check_keys(path, fr["gaze"][eye], _EYE_KEYS, f"{where} gaze {eye!r}")
            for k, key in enumerate(_EYE_KEYS):
                gaze[i, 2 * e + k] = _number(path, fr["gaze"][eye][key], f"{where} gaze {eye} {key!r}")
        viseme = fr["viseme"]
        if viseme not in _VISEME_SET:
            raise _fail(path, f"{where} viseme {viseme!r} is not one of {', '.join(VISEMES)}")
        visemes.append(viseme)

    return MotionTrack(
        fps=fps, duration=duration, blendshapes=np.clip(bs, 0.0, 1.0), head=head, gaze=gaze, visemes=visemes
    )


def read_json(path: str | os.PathLike[str]) -> MotionTrack:
    """Read a JSON track written by `write_json` (or another tool following the schema).

    Raises ExportError, naming the first problem, when the file cannot be read or does not match
    the schema (wrong or reordered blendshape names, wrong number of values, bad visemes, ...).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ExportError(f"cannot read '{path}': {e.strerror or e}; check the path") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"'{path}' is not valid JSON ({e}); was it written by talkinghead?") from e
    return _track_from_dict(data, path)
