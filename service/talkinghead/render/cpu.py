"""The CPU renderer (numpy + OpenCV): one FaceParams -> one RGB frame.

Per frame:
1. landmark displacement = sum of active blendshapes' basis rows (+ the lip seal);
2. spread over the coarse grid (sparse product), turn the head in 3-D about its centre with
   each point's depth, weighted by how much the point belongs to the head: a forward map
   source -> output on the grid;
3. invert it by fixed-point iteration (output x: source s = x - D(s)), upsample to a per-pixel
   backward map, and `cv2.remap` the portrait once;
4. composite the layers a warp cannot make: irises inside the moved eye openings, and the
   mouth's interior inside the moved inner lips.

Pixels the head never reaches map to themselves exactly, so the background stays bit-identical.

The per-point arithmetic (`turn_points`, `newton_step`) and step 4 (`composite_layers`) are
shared with the batched torch renderer (`torch_backend.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.arkit import BS
from talkinghead.face.rig import CAMERA_DISTANCE_MM, Rig
from talkinghead.render.layers import composite_eyes, composite_lids, composite_mouth, seal_fraction
from talkinghead.track import FaceParams, HeadPose

INVERT_ITERATIONS = 5
DET_MIN = 0.15   # Jacobian determinant below which the map folds: a fixed-point step there
YAW_RELIEF = 2.0
PITCH_RELIEF = (1.45, 1.1)  # (chin down, chin up): a face looking down is read as turning less
ACTIVE = 1e-4
_BLINKS = [BS["eyeBlinkRight"], BS["eyeBlinkLeft"]]   # in the order of Rig.eyes


@dataclass(frozen=True)
class HeadTurn:
    """One frame's head move as the numbers `turn_points` needs: the cosines and sines of yaw,
    pitch and roll, the pitch's relief (PITCH_RELIEF for the direction of the nod), the
    perspective scale of moving nearer, and the shift in pixels. Scalars for one frame; a
    batched backend stacks them into arrays of shape (B, 1) that broadcast over the points."""

    cos_yaw: float
    sin_yaw: float
    cos_pitch: float
    sin_pitch: float
    cos_roll: float
    sin_roll: float
    relief: float
    scale: float
    shift_x: float
    shift_y: float


def head_turn(rig: Rig, head: HeadPose) -> HeadTurn:
    """The HeadTurn for `head` in this rig's pixels (the cosines are numpy float64: numpy then
    promotes the float32 points to float64 for the turn, as this renderer always has)."""
    y, p, r = (float(a) for a in np.radians([head.yaw, head.pitch, head.roll]))
    shift = np.array([head.x, -head.y], np.float32) * rig.px_per_mm
    return HeadTurn(np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r),
                    relief=PITCH_RELIEF[0] if p < 0 else PITCH_RELIEF[1],
                    scale=CAMERA_DISTANCE_MM / (CAMERA_DISTANCE_MM - head.z),   # nearer looks larger
                    shift_x=shift[0], shift_y=shift[1])


def turn_points(x, y, z, turn: HeadTurn, pivot: np.ndarray):
    """Points relative to the pivot (x, y, z: arrays of one shape, numpy or torch) -> their
    turned and moved picture positions (x, y). Only arithmetic, so every backend shares it.

    Yaw and pitch turn a relief deeper than the landmarks' own (YAW_RELIEF, PITCH_RELIEF): a
    2-D warp lacks the shading and occlusion cues of a real turn, so at true depth the same
    angle reads as about half the turn (the landmark model measures it so, and so does the
    eye). With the deeper relief the model measures the commanded angle back."""
    t = turn
    zy = z * YAW_RELIEF
    x, zy = x * t.cos_yaw - zy * t.sin_yaw, x * t.sin_yaw + zy * t.cos_yaw
    zp = zy / YAW_RELIEF * t.relief
    y, zp = y * t.cos_pitch + zp * t.sin_pitch, -y * t.sin_pitch + zp * t.cos_pitch
    x, y = x * t.cos_roll - y * t.sin_roll, x * t.sin_roll + y * t.cos_roll
    # Back to the picture, then scaled about the pivot: in this order the CPU renderer's
    # floating point (and so its frames) stays bit for bit what it was.
    px, py = pivot[0], pivot[1]
    return (x + px - px) * t.scale + px + t.shift_x, (y + py - py) * t.scale + py + t.shift_y


def _apply_head(rig: Rig, points: np.ndarray, head: HeadPose) -> np.ndarray:
    """points (n, 3) -> turned and moved (n, 2) picture positions (`turn_points`)."""
    q = (points - rig.pivot).astype(np.float32)
    x, y = turn_points(q[:, 0], q[:, 1], q[:, 2], head_turn(rig, head), rig.pivot)
    return np.stack([x, y], -1).astype(np.float32)


def landmark_displacement(rig: Rig, weights: np.ndarray) -> np.ndarray:
    """shape = (478, 3) pixels: the expression's move of each landmark (before the head)."""
    active = np.flatnonzero(weights > ACTIVE)
    disp = np.tensordot(weights[active], rig.basis[active], 1) if len(active) else np.zeros_like(rig.seal)
    seal = seal_fraction(weights)
    if seal > 0 and rig.mouth.photo_interior:
        disp = disp + seal * rig.seal
    return disp.astype(np.float32)


def deformed_landmarks(rig: Rig, params: FaceParams) -> np.ndarray:
    """Where the landmarks land in the output frame, shape = (478, 2) pixels."""
    disp = landmark_displacement(rig, np.asarray(params.blendshapes, np.float32))
    return _apply_head(rig, rig.landmarks + disp, params.head)


def backward_map(rig: Rig, params: FaceParams, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel source coordinates (map_x, map_y), each shape = (H, W) float32."""
    gh, gw = rig.grid_xy.shape[:2]
    grid = rig.grid_xy.reshape(-1, 2)
    expr = rig.spread @ disp                                    # (n, 3)
    moved = np.column_stack([grid, rig.grid_z]) + expr
    turned = _apply_head(rig, moved, params.head)
    fwd = expr[:, :2] + rig.head_mask[:, None] * (turned - moved[:, :2])
    fwd = fwd.reshape(gh, gw, 2)
    src = invert_grid(fwd, rig.grid_xy, rig.cell)
    back = src - rig.grid_xy
    full = cv2.resize(back, (gw * rig.cell, gh * rig.cell), interpolation=cv2.INTER_LINEAR)
    w, h = rig.size
    xs, ys = _pixel_coords(w, h)
    return xs + full[:h, :w, 0], ys + full[:h, :w, 1]


def invert_grid(fwd: np.ndarray, grid_xy: np.ndarray, cell: int, iterations: int = INVERT_ITERATIONS) -> np.ndarray:
    """Invert the forward map x = s + D(s) on the grid: for each output grid point x, the
    source s. Newton's method (the Jacobian I + dD/ds from the grid's finite differences):
    plain fixed-point iteration diverges wherever the skin stretches by more than 2x (a lid
    unfolding in a blink, the skin under a dropping jaw). Where the map folds (det J small),
    a fixed-point step instead.

    fwd, grid_xy: shape = (gh, gw, 2) float32 pixels. Returns shape = (gh, gw, 2) float32.
    """
    c = float(cell)
    gy, gx = np.gradient(fwd, c, axis=(0, 1))                  # d/dy, d/dx of (Dx, Dy)
    jac = np.dstack([gx[..., 0], gy[..., 0], gx[..., 1], gy[..., 1]]).astype(np.float32)
    src = grid_xy - fwd
    for _ in range(iterations):
        at = (src + 0.5) / c - 0.5
        d = cv2.remap(fwd, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        j = cv2.remap(jac, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        src = newton_step(src, d, j, grid_xy, np)
    return src.astype(np.float32)


def newton_step(src, d, j, grid_xy, xp):
    """One step of `invert_grid`, for any array module `xp` (numpy, torch: it needs `where`
    and `stack`). src, d (the forward displacement sampled at src), grid_xy: shape = (..., 2);
    j (the Jacobian of the displacement sampled at src: dDx/dx, dDx/dy, dDy/dx, dDy/dy):
    shape = (..., 4). Returns the next src, shape = (..., 2)."""
    rx, ry = src[..., 0] + d[..., 0] - grid_xy[..., 0], src[..., 1] + d[..., 1] - grid_xy[..., 1]
    a, b, cc, dd = 1 + j[..., 0], j[..., 1], j[..., 2], 1 + j[..., 3]
    det = a * dd - b * cc
    ok = det > DET_MIN
    safe = xp.where(ok, det, 1.0)
    sx = xp.where(ok, (dd * rx - b * ry) / safe, rx)
    sy = xp.where(ok, (a * ry - cc * rx) / safe, ry)
    return src - xp.stack([sx, sy], -1)


_COORDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _pixel_coords(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    if (w, h) not in _COORDS:
        ys, xs = np.mgrid[:h, :w].astype(np.float32)
        _COORDS[(w, h)] = (xs, ys)
    return _COORDS[(w, h)]


def composite_layers(frame: np.ndarray, rig: Rig, params: FaceParams, disp: np.ndarray) -> np.ndarray:
    """Step 4, shared by every backend: draw the mouth's interior, the eyes and the closing lids
    over a warped frame (shape = (H, W, 3) uint8, modified in place and returned). `disp` is
    `landmark_displacement(rig, weights)`."""
    weights = np.asarray(params.blendshapes, np.float32)
    landmarks = _apply_head(rig, rig.landmarks + disp, params.head)
    composite_mouth(frame, rig, landmarks, weights)
    composite_eyes(frame, rig, landmarks)
    if weights[_BLINKS].max() > ACTIVE:
        # Where the lids would be without the blink: the band between is the closing lid.
        unblinked = disp - np.tensordot(weights[_BLINKS], rig.basis[_BLINKS], 1)
        composite_lids(frame, rig, landmarks, _apply_head(rig, rig.landmarks + unblinked, params.head))
    return frame


def render(rig: Rig, params: FaceParams) -> np.ndarray:
    """One frame: shape = (H, W, 3) uint8 RGB."""
    disp = landmark_displacement(rig, np.asarray(params.blendshapes, np.float32))
    map_x, map_y = backward_map(rig, params, disp)
    frame = cv2.remap(rig.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return composite_layers(frame, rig, params, disp)
