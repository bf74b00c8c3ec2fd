"""Frames from the service -> per-channel keyframe arrays for Blender (bpy-free: numpy only).

Nothing here imports `bpy`, `grpc` or `talkinghead` (Blender has none of the last), so plain pytest
tests all of it; `ops.py` only writes what these functions return.

Units and frames
----------------
The service's `FaceParams` (protos/talkinghead/v1/talkinghead.proto, talkinghead/track.py), as the
subject: head yaw/pitch/roll in degrees (yaw + turns the face toward the subject's LEFT, pitch +
lifts the chin, roll + tilts the top of the head toward the subject's LEFT shoulder), head x/y/z in
millimetres (+ subject's left, + up, + toward the camera), per-eye gaze yaw/pitch in degrees
(+ toward the subject's left, + up), 52 blendshape weights 0..1 in ARKit order.

Blender gets radians and metres, in the rig's own axes:

* The CANONICAL frame is the proto's: X = the subject's left, Y = up, Z = forward (the way the
  face looks). A head pose is the rotation  R = Ry(yaw) . Rx(-pitch) . Rz(-roll)  in that frame
  (yaw about up, then pitch about the left axis, then roll about the forward axis; all small,
  so the order hardly matters), and a gaze is  Ry(yaw) . Rx(-pitch).
* The CHARACTER frame says where those axes are in the armature's space (or, for an object head,
  its parent's space): `character_axes(forward, up)`. Blender's convention, and the default, is a
  character that faces -Y with +Z up; then left = +X. A rig imported from a Y-up tool may face
  +Z with +Y up, say. C = [left | up | forward] (columns), and a rotation in armature space is
  R_arm = C . R . C^T.
* A pose bone's rotation is in the bone's rest frame, B = bone.matrix_local (3x3, armature
  space): R_local = B^T . R_arm . B. This holds for any bone direction and roll: a head bone
  that points up with roll 0 has B = C for the default axes (so yaw is a rotation about the bone's
  own Y axis); an eye bone pointing forward has its Y axis along the gaze. Eye bones should be
  children of the head bone: gaze is eye-in-head, like ARKit's eyeLook* shapes.
* An object head (no armature) turns about its own origin: R_new = R_arm . R_rest, with R_rest
  its rotation when first driven.
* The head's x/y/z become a location offset C . (x, y, z) * 0.001 m (then B^T . offset for a
  bone), scaled by `units_per_metre` (1 / scene unit scale / object scale).
* Rotations are written in the target's rotation mode: QUATERNION (w, x, y, z, kept in one
  hemisphere so interpolation does not flip), AXIS_ANGLE (angle, x, y, z) or any Euler order
  (Blender's 'XYZ' applies X first: R = Rz . Ry . Rx), unwrapped over time.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import AddonError

#: ARKit's 52 blendshapes in ARKit order (talkinghead.arkit.BLENDSHAPE_NAMES, which Blender cannot
#: import; a test checks the two match).
ARKIT_NAMES: tuple[str, ...] = (
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
HEAD_FIELDS = ("yaw", "pitch", "roll", "x", "y", "z")
GAZE_FIELDS = ("left_yaw", "left_pitch", "right_yaw", "right_pitch")
#: Frame rates the service renders images at (images need one of these; parameters take any).
IMAGE_FPS = (25.0, 30.0, 60.0)
EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
AXES = {"+X": (1, 0, 0), "-X": (-1, 0, 0), "+Y": (0, 1, 0), "-Y": (0, -1, 0), "+Z": (0, 0, 1), "-Z": (0, 0, -1)}
DEFAULT_PORT = 50051


# -- the take ---------------------------------------------------------------------------------

@dataclass
class Take:
    """A line's parameters at `fps`. Frame i is at i / fps seconds from the audio's start.

    blendshapes: shape = (n, 52) float32, 0..1, ARKit order (ARKIT_NAMES)
    head:        shape = (n, 6) float32, yaw pitch roll (degrees), x y z (millimetres)
    gaze:        shape = (n, 4) float32, left yaw, left pitch, right yaw, right pitch (degrees)
    """

    fps: float
    blendshapes: np.ndarray
    head: np.ndarray
    gaze: np.ndarray
    visemes: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.blendshapes)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


def _order_from(names: Sequence[str]) -> np.ndarray | None:
    """Column indices that put a header's blendshape columns in ARKit order (None: already are)."""
    names = list(names)
    if not names or names == list(ARKIT_NAMES):
        return None
    where = {n: i for i, n in enumerate(names)}
    missing = [n for n in ARKIT_NAMES if n not in where]
    if missing:
        raise AddonError(f"the server's header lacks the blendshapes {', '.join(missing[:4])}...: "
                         "update the add-on or the server so they speak the same API")
    return np.array([where[n] for n in ARKIT_NAMES])


class TakeBuilder:
    """Collects `talkinghead.v1.Frame` messages (or anything shaped like them) into a Take."""

    def __init__(self, fps: float, blendshape_names: Sequence[str] = ARKIT_NAMES) -> None:
        self.fps = float(fps)
        self._order = _order_from(blendshape_names)
        self._bs: list[Sequence[float]] = []
        self._head: list[tuple[float, ...]] = []
        self._gaze: list[tuple[float, ...]] = []
        self._visemes: list[str] = []

    def add(self, frame) -> None:
        p = frame.params
        self._bs.append(p.blendshapes)
        h = p.head
        self._head.append((h.yaw, h.pitch, h.roll, h.x, h.y, h.z))
        self._gaze.append((p.gaze_left.yaw, p.gaze_left.pitch, p.gaze_right.yaw, p.gaze_right.pitch))
        self._visemes.append(p.viseme)

    def __len__(self) -> int:
        return len(self._bs)

    def build(self) -> Take:
        n = len(self._bs)
        bs = np.asarray(self._bs, np.float32).reshape(n, -1)
        if self._order is not None:
            bs = bs[:, self._order]
        if bs.shape[1] != len(ARKIT_NAMES):
            raise AddonError(f"the server sent {bs.shape[1]} blendshape weights per frame, not 52: "
                             "update the add-on or the server so they speak the same API")
        return Take(self.fps, bs, np.asarray(self._head, np.float32).reshape(n, 6),
                    np.asarray(self._gaze, np.float32).reshape(n, 4), list(self._visemes))


def take_from_frames(frames: Iterable, fps: float, blendshape_names: Sequence[str] = ARKIT_NAMES) -> Take:
    builder = TakeBuilder(fps, blendshape_names)
    for f in frames:
        builder.add(f)
    return builder.build()


# -- shape keys -------------------------------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _variants(arkit: str) -> tuple[str, ...]:
    """Normalised spellings of an ARKit name: as is, and with a trailing Left/Right as L/R
    (eyeBlink_L, mouthSmile.R: the Blender side-suffix habit)."""
    n = _norm(arkit)
    for side, short in (("left", "l"), ("right", "r")):
        if n.endswith(side):
            return n, n[: -len(side)] + short
    return (n,)


def match_shape_keys(key_names: Iterable[str], prefix: str = "",
                     overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """ARKit name -> the shape key that plays it, for the ARKit names found.

    A key matches when its name, case-insensitively and ignoring separators (`_ . - :` and
    spaces), is the ARKit name, or ends with it (any prefix: "ARKit_jawOpen", "Face.jawOpen",
    "CC_Base_EyeBlink_L"); `prefix` (e.g. "bs_") is tried first. A trailing Left/Right may be
    spelled L/R. `overrides` (the panel's mapping) wins: {"jawOpen": "JawDown"}; an empty value
    leaves that ARKit channel undriven. Names not found are simply left out.
    """
    keys = [k for k in key_names if k and k.lower() != "basis"]
    overrides = dict(overrides or {})
    by_exact = {k.lower(): k for k in keys}
    normed = [(k, _norm(k)) for k in keys]
    found: dict[str, str] = {}
    for name in ARKIT_NAMES:
        if name in overrides:
            target = overrides[name]
            if target:
                if target not in keys:
                    raise AddonError(f"the mapping sends {name} to the shape key {target!r}, which the mesh "
                                     "does not have: fix the mapping (or press Auto-map)")
                found[name] = target
            continue
        if prefix and (prefix + name).lower() in by_exact:
            found[name] = by_exact[(prefix + name).lower()]
            continue
        if name.lower() in by_exact:
            found[name] = by_exact[name.lower()]
            continue
        variants = _variants(name)
        equal = [k for k, n in normed if n in variants]
        suffix = [k for k, n in normed if any(n.endswith(v) for v in variants)]
        best = equal or suffix
        if best:
            found[name] = min(best, key=len)
    return found


def escape_name(name: str) -> str:
    """A name inside a data path's ["..."] (bpy.utils.escape_identifier, without bpy)."""
    return name.replace("\\", "\\\\").replace('"', '\\"')


@dataclass
class Channel:
    """One F-Curve's worth: `values` shape = (n,) float32 for frames 0..n-1 of the take."""

    data_path: str
    index: int
    values: np.ndarray
    group: str = ""


def shape_key_channels(take: Take, mapping: Mapping[str, str]) -> list[Channel]:
    """`key_blocks["<key>"].value` channels (on the mesh's Key datablock), one per mapped name."""
    out = []
    for i, name in enumerate(ARKIT_NAMES):
        key = mapping.get(name)
        if key:
            out.append(Channel(f'key_blocks["{escape_name(key)}"].value', 0,
                               np.ascontiguousarray(take.blendshapes[:, i], np.float32), "ARKit"))
    return out


# -- rotations --------------------------------------------------------------------------------

def _rot(axis: int, radians: np.ndarray) -> np.ndarray:
    """shape = (n, 3, 3): rotations about X (0), Y (1) or Z (2) by `radians` (n,), right-handed."""
    a = np.asarray(radians, np.float64)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1
    m[..., i, i] = c
    m[..., j, j] = c
    m[..., i, j] = -s
    m[..., j, i] = s
    return m


def character_axes(forward: str = "-Y", up: str = "+Z") -> np.ndarray:
    """C (3, 3): columns = the subject's left, up and forward, in armature (or parent) space."""
    f, u = np.array(AXES[forward], float), np.array(AXES[up], float)
    if abs(f @ u) > 0.5:
        raise AddonError(f"the character's forward axis {forward} and up axis {up} are the same line: "
                         "pick an up axis at right angles to forward")
    return np.stack([np.cross(u, f), u, f], axis=1)


def head_rotations(take: Take) -> np.ndarray:
    """shape = (n, 3, 3): the head pose in the canonical frame (module docstring)."""
    yaw, pitch, roll = (np.radians(take.head[:, k].astype(np.float64)) for k in range(3))
    return _rot(1, yaw) @ _rot(0, -pitch) @ _rot(2, -roll)


def gaze_rotations(take: Take, eye: str) -> np.ndarray:
    """shape = (n, 3, 3): one eye's rotation (eye = "left" or "right") in the canonical frame."""
    k = 0 if eye == "left" else 2
    yaw, pitch = np.radians(take.gaze[:, k].astype(np.float64)), np.radians(take.gaze[:, k + 1].astype(np.float64))
    return _rot(1, yaw) @ _rot(0, -pitch)


def to_armature(rotations: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Canonical -> armature (or parent) space: C . R . C^T."""
    return axes @ rotations @ axes.T


def to_bone(rotations_arm: np.ndarray, bone_rest: np.ndarray) -> np.ndarray:
    """Armature space -> a pose bone's rest frame: B^T . R . B (B = bone.matrix_local's 3x3)."""
    b = np.asarray(bone_rest, np.float64)[:3, :3]
    return b.T @ rotations_arm @ b


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations -> (n, 4) quaternions w, x, y, z, each in the hemisphere of the one
    before (so Blender's per-component interpolation never swings the long way round)."""
    m = np.asarray(m, np.float64).reshape(-1, 3, 3)
    tr = np.trace(m, axis1=1, axis2=2)
    q = np.empty((len(m), 4))
    # Shepperd: divide by the largest of 4w^2, 4x^2, 4y^2, 4z^2 for accuracy.
    cand = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], 1)
    pick = np.argmax(cand, 1)
    for k in range(4):
        sel = pick == k
        if not sel.any():
            continue
        r = m[sel]
        if k == 0:
            s = np.sqrt(1.0 + tr[sel]) * 2
            q[sel] = np.stack([0.25 * s, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                               (r[:, 1, 0] - r[:, 0, 1]) / s], 1)
        else:
            i = k - 1
            j, h = (i + 1) % 3, (i + 2) % 3
            s = np.sqrt(1.0 + r[:, i, i] - r[:, j, j] - r[:, h, h]) * 2
            out = np.empty((len(r), 4))
            out[:, 0] = (r[:, h, j] - r[:, j, h]) / s
            out[:, 1 + i] = 0.25 * s
            out[:, 1 + j] = (r[:, j, i] + r[:, i, j]) / s
            out[:, 1 + h] = (r[:, h, i] + r[:, i, h]) / s
            q[sel] = out
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    if q[0, 0] < 0:
        q[0] = -q[0]
    for n in range(1, len(q)):
        if q[n] @ q[n - 1] < 0:
            q[n] = -q[n]
    return q


def matrix_to_euler(m: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(n, 3, 3) rotations -> (n, 3) Euler angles (x, y, z radians) in Blender's `order`
    ('XYZ' applies X first: R = Rz . Ry . Rx), unwrapped along the frames."""
    m = np.asarray(m, np.float64).reshape(-1, 3, 3)
    i, j, k = ("XYZ".index(c) for c in order)
    even = (j - i) % 3 == 1
    sign = 1.0 if even else -1.0
    # R = R_k(c) R_j(b) R_i(a): b from R[k, i]; a from row k; c from column i.
    b = np.arcsin(np.clip(-sign * m[:, k, i], -1, 1))
    a = np.arctan2(sign * m[:, k, j], m[:, k, k])
    c = np.arctan2(sign * m[:, j, i], m[:, i, i])
    out = np.empty((len(m), 3))
    out[:, i], out[:, j], out[:, k] = a, b, c
    return np.unwrap(out, axis=0)


def rotation_channels(prefix: str, rotations: np.ndarray, mode: str, group: str = "") -> list[Channel]:
    """Channels that pose `rotations` (n, 3, 3) on a target whose rotation_mode is `mode`.

    `prefix` is the owner's data path with a trailing dot ('pose.bones["head"].'), or "" for an
    object's own rotation."""
    if mode == "QUATERNION":
        q = matrix_to_quaternion(rotations)
        return [Channel(prefix + "rotation_quaternion", c, q[:, c].astype(np.float32), group) for c in range(4)]
    if mode == "AXIS_ANGLE":
        q = matrix_to_quaternion(rotations)
        half = np.arccos(np.clip(q[:, 0], -1, 1))
        s = np.sin(half)
        axis = np.where(s[:, None] > 1e-9, q[:, 1:] / np.maximum(s, 1e-9)[:, None], [0.0, 1.0, 0.0])
        aa = np.concatenate([2 * half[:, None], axis], 1)
        return [Channel(prefix + "rotation_axis_angle", c, aa[:, c].astype(np.float32), group) for c in range(4)]
    if mode in EULER_ORDERS:
        e = matrix_to_euler(rotations, mode)
        return [Channel(prefix + "rotation_euler", c, e[:, c].astype(np.float32), group) for c in range(3)]
    raise AddonError(f"unknown rotation mode {mode!r}")


def head_offsets(take: Take, axes: np.ndarray, units_per_metre: float = 1.0) -> np.ndarray:
    """shape = (n, 3): the head's x/y/z (millimetres, canonical) as offsets in armature/parent units."""
    return (take.head[:, 3:6].astype(np.float64) * 0.001 * units_per_metre) @ axes.T


def location_channels(prefix: str, offsets: np.ndarray, base=(0.0, 0.0, 0.0), group: str = "") -> list[Channel]:
    loc = np.asarray(offsets, np.float64) + np.asarray(base, np.float64)
    return [Channel(prefix + "location", c, loc[:, c].astype(np.float32), group) for c in range(3)]


# -- writing keyframes ------------------------------------------------------------------------

def scene_frames(n: int, take_fps: float, scene_fps: float, start_frame: float) -> np.ndarray:
    """shape = (n,) float32: the scene frame of each take frame (frame i is at i / take_fps s)."""
    return (start_frame + np.arange(n, dtype=np.float64) * (scene_fps / take_fps)).astype(np.float32)


def keyframe_co(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """shape = (2n,) float32: frame, value, frame, value, ... for keyframe_points.foreach_set('co')."""
    co = np.empty((len(frames), 2), np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    return co.ravel()


def image_fps(scene_fps: float) -> float:
    """The rate to ask the service for images at: the scene's when it can render it, else the
    nearest it can (frames are then picked per scene frame by time)."""
    return min(IMAGE_FPS, key=lambda f: (abs(f - scene_fps), -f))


def resample_indices(n_src: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """For each frame at `dst_fps` over the same duration, the nearest source frame index."""
    n_dst = max(1, int(round(n_src * dst_fps / src_fps)))
    idx = np.round(np.arange(n_dst) * (src_fps / dst_fps)).astype(np.int64)
    return np.clip(idx, 0, n_src - 1)


def raw_rgb_to_pixels(raw: bytes, width: int, height: int) -> np.ndarray:
    """RAW_RGB frame bytes (row-major, top row first) -> shape = (height * width * 4,) float32
    RGBA, bottom row first, for `Image.pixels.foreach_set`."""
    rgb = np.frombuffer(raw, np.uint8)
    if rgb.size != width * height * 3:
        raise AddonError(f"an image frame has {rgb.size} bytes, not {width}x{height}x3: the server and "
                         "the add-on disagree on the frame size")
    rgba = np.empty((height, width, 4), np.float32)
    rgba[..., :3] = rgb.reshape(height, width, 3)[::-1] * np.float32(1 / 255)
    rgba[..., 3] = 1.0
    return rgba.ravel()


# -- server address ---------------------------------------------------------------------------

def parse_address(address: str) -> str:
    """"host", "host:port", "grpc://host:port" or "[::1]:port" -> "host:port" for grpc."""
    a = address.strip()
    for scheme in ("grpc://", "grpcs://", "http://", "https://"):
        if a.lower().startswith(scheme):
            a = a[len(scheme):]
    a = a.rstrip("/")
    if not a:
        raise AddonError("no server address: enter the talkinghead server as host:port, e.g. 127.0.0.1:50051")
    if a.startswith("["):
        host, _, rest = a[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        host = f"[{host}]"
    elif a.count(":") == 1:
        host, port = a.split(":")
    elif a.count(":") > 1:                       # a bare IPv6 address
        host, port = f"[{a}]", ""
    else:
        host, port = a, ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise AddonError(f"the server address {address!r} has a bad port: use host:port, e.g. 127.0.0.1:50051")
    if not host or any(c.isspace() for c in host):
        raise AddonError(f"the server address {address!r} is not host:port, e.g. 127.0.0.1:50051")
    return f"{host}:{port or DEFAULT_PORT}"


def is_loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_online_access(target: str, online_access: bool) -> None:
    """Blender's "Allow Online Access" governs reaching other machines; a server on this machine
    (loopback) is not online, so it is always allowed."""
    if not online_access and not is_loopback(target):
        raise AddonError(f"Blender's online access is off, so the add-on may not reach {target}: turn on "
                         "Preferences > System > Network > Allow Online Access, or run the server on this "
                         "machine (127.0.0.1)")
