"""The CPU renderer (numpy + OpenCV): FaceParams -> RGB frames, at about two remaps a frame.

Per frame:
1. landmark displacement = sum of active blendshapes' basis rows (+ the lip seal);
2. spread over the coarse grid (sparse product), turn the head in 3-D about its centre with
   each point's depth, weighted by how much the point belongs to the head: a forward map
   source -> output on the grid;
3. invert it by Newton's method (output x: source s = x - D(s)), only at the grid points that
   move or border one, each point dropping out once settled; upsample that backward map to
   pixels and `cv2.remap` the portrait, both only over the cells that move (bands of
   BAND_ROWS grid rows), the rest of the frame a copy of the portrait;
4. composite the layers a warp cannot make: irises inside the moved eye openings, the closing
   lids, and the mouth's interior inside the moved inner lips (computed only at the pixels
   they cover).

Pixels the head never reaches map to themselves exactly, so the background stays bit-identical.

`Renderer(rig)` holds what every frame shares; `render(rig, params)` is one frame from a fresh
one. `Renderer(rig, exact=True)` is the reference the fast path is tested against
(tests/test_render_equivalence.py, which states the tolerance and why): every grid point through
all INVERT_ITERATIONS Newton steps, the whole frame remapped with float coordinates, nothing
skipped — the renderer as it was before this rewrite, with its specks mended (`despeckle`, in
both paths: it changes only pixels where the face folds). What the fast path gives up: moves below
STILL_PX count as none; Newton stops at a point once its step is below CONVERGED_PX; the final
remap snaps coordinates to 1/32 pixel (OpenCV's fixed-point maps, a third cheaper than its
exact float path).

The per-point arithmetic (`turn_points`, `newton_step`) and step 4 (`composite_layers`) are
shared with the batched torch renderer (`torch_backend.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.arkit import BS
from talkinghead.face import regions as R
from talkinghead.face.rig import CAMERA_DISTANCE_MM, Rig
from talkinghead.render.layers import composite_eyes, composite_lids, composite_mouth, seal_fraction
from talkinghead.track import FaceParams, HeadPose

INVERT_ITERATIONS = 5
DET_MIN = 0.15   # Jacobian determinant below which the map folds: a fixed-point step there
YAW_RELIEF = 2.0
PITCH_RELIEF = (1.45, 1.1)  # (chin down, chin up): a face looking down is read as turning less
ACTIVE = 1e-4
STILL_PX = 1 / 256     # a displacement below this is none: it moves no pixel by a level
CONVERGED_PX = 0.02    # Newton stops at a point once its step is shorter (pixels; the remap snaps to 1/32)
# ... or once its FIRST step is shorter than this: from x - D(x) Newton contracts fast here
# (measured on a spoken take: the second step is ~0.4 % of the first, 99 % of them under
# 0.012 px after a first step under 0.3 px), so the step after would be under CONVERGED_PX.
FIRST_STEP_PX = 0.25
SPECKLE_PX = 1.0       # a grid point's source this far from its neighbours' median is a speck (`despeckle`)
SPECKLE_REACH = 4      # ... if within this many grid points of where the map folds
LIPS_MARGIN = 0.25     # ... and not round the lips (their box grown by this share of its width)
BAND_ROWS = 12         # grid rows per band of the moving region (48 px at 512; 8 and 16 measured slower)
_BLINKS = [BS["eyeBlinkRight"], BS["eyeBlinkLeft"]]   # in the order of Rig.eyes


@dataclass(frozen=True)
class HeadTurn:
    """One frame's head move as the numbers `turn_points` needs: the cosines and sines of yaw,
    pitch and roll, the pitch's relief (PITCH_RELIEF for the direction of the nod), the
    perspective scale of moving nearer, and the shift in pixels. float32 scalars for one frame;
    a batched backend stacks them into arrays of shape (B, 1) that broadcast over the points."""

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
    """The HeadTurn for `head` in this rig's pixels (float32, as the points are)."""
    y, p, r = (float(a) for a in np.radians([head.yaw, head.pitch, head.roll]))
    f = np.float32
    return HeadTurn(f(np.cos(y)), f(np.sin(y)), f(np.cos(p)), f(np.sin(p)), f(np.cos(r)), f(np.sin(r)),
                    relief=f(PITCH_RELIEF[0] if p < 0 else PITCH_RELIEF[1]),
                    scale=f(CAMERA_DISTANCE_MM / (CAMERA_DISTANCE_MM - head.z)),   # nearer looks larger
                    shift_x=f(head.x * rig.px_per_mm), shift_y=f(-head.y * rig.px_per_mm))


def turn_points(x, y, z, turn: HeadTurn, pivot):
    """Points relative to the pivot (x, y, z: arrays of one shape, numpy or torch) -> their
    turned and moved picture positions (x, y). Only arithmetic, so every backend shares it.

    Yaw and pitch turn a relief deeper than the landmarks' own (YAW_RELIEF, PITCH_RELIEF): a
    2-D warp lacks the shading and occlusion cues of a real turn, so at true depth the same
    angle reads as about half the turn (the landmark model measures it so, and so does the
    eye). With the deeper relief the model measures the commanded angle back."""
    t = turn
    zy = z * YAW_RELIEF
    x, zy = x * t.cos_yaw - zy * t.sin_yaw, x * t.sin_yaw + zy * t.cos_yaw
    zp = zy * (t.relief / YAW_RELIEF)
    y = y * t.cos_pitch + zp * t.sin_pitch
    x, y = x * t.cos_roll - y * t.sin_roll, x * t.sin_roll + y * t.cos_roll
    # Scaled about the pivot, then shifted.
    return x * t.scale + (pivot[0] + t.shift_x), y * t.scale + (pivot[1] + t.shift_y)


def _apply_head(rig: Rig, points: np.ndarray, head: HeadPose) -> np.ndarray:
    """points (n, 3) -> turned and moved (n, 2) picture positions (`turn_points`)."""
    q = points - rig.pivot
    x, y = turn_points(q[:, 0], q[:, 1], q[:, 2], head_turn(rig, head), rig.pivot)
    return np.stack([x, y], -1).astype(np.float32, copy=False)


def landmark_displacement(rig: Rig, weights: np.ndarray) -> np.ndarray:
    """shape = (478, 3) pixels: the expression's move of each landmark (before the head)."""
    active = np.flatnonzero(weights > ACTIVE)
    disp = np.tensordot(weights[active], rig.basis[active], 1) if len(active) else np.zeros_like(rig.seal)
    seal = seal_fraction(weights)
    if seal > 0 and rig.mouth.photo_interior:
        disp = disp + seal * rig.seal
    return disp.astype(np.float32, copy=False)


def deformed_landmarks(rig: Rig, params: FaceParams) -> np.ndarray:
    """Where the landmarks land in the output frame, shape = (478, 2) pixels."""
    disp = landmark_displacement(rig, np.asarray(params.blendshapes, np.float32))
    return _apply_head(rig, rig.landmarks + disp, params.head)


_DIFF = np.array([[-0.5, 0.0, 0.5]], np.float32)


def _jacobian(fwd: np.ndarray, cell: int) -> np.ndarray:
    """The forward map's derivatives, shape = (gh, gw, 4) float32: (dDx/dx, dDy/dx, dDx/dy,
    dDy/dy), np.gradient's differences (central inside, one-sided at the edges: OpenCV's
    replicated border halves those, so they are doubled back). `fwd`: shape = (gh, gw, 2), or
    (gh, gw, 4) with its last two channels 0 (the fast path's buffer)."""
    k = _DIFF / float(cell)
    gx = cv2.filter2D(fwd, -1, k, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(fwd, -1, k.T, borderType=cv2.BORDER_REPLICATE)
    jac = gx if fwd.shape[-1] == 4 else np.empty(fwd.shape[:2] + (4,), np.float32)
    jac[..., :2] = gx[..., :2]
    jac[..., 2:] = gy[..., :2]
    jac[:, [0, -1], :2] *= 2
    jac[[0, -1], :, 2:] *= 2
    return jac


def _sample(grid: np.ndarray, at: np.ndarray) -> np.ndarray:
    return cv2.remap(grid, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def invert_grid(fwd: np.ndarray, jac: np.ndarray, grid_xy: np.ndarray, cell: int,
                iterations: int = INVERT_ITERATIONS) -> np.ndarray:
    """Invert the forward map x = s + D(s) on the grid: for each output grid point x, the
    source s. Newton's method (the Jacobian I + dD/ds from the grid's finite differences):
    plain fixed-point iteration diverges wherever the skin stretches by more than 2x (a lid
    unfolding in a blink, the skin under a dropping jaw). Where the map folds (det J small),
    a fixed-point step instead. Every point, every iteration, from x - D(x): the reference.

    fwd, grid_xy: shape = (gh, gw, 2) float32 pixels; jac: `_jacobian(fwd)`. Returns shape =
    (gh, gw, 2) float32.
    """
    c = float(cell)
    src = grid_xy - fwd
    for _ in range(iterations):
        at = (src + 0.5) / c - 0.5
        d, j = _sample(fwd, at), _sample(jac, at)
        step = newton_step(src[..., 0] + d[..., 0] - grid_xy[..., 0], src[..., 1] + d[..., 1] - grid_xy[..., 1],
                           j[..., 0], j[..., 2], j[..., 1], j[..., 3], np)
        src = src - np.stack(step, -1)
    return src.astype(np.float32)


def invert_moving(fwd4: np.ndarray, jac: np.ndarray, grid_xy: np.ndarray, cell: int, active: np.ndarray) -> np.ndarray:
    """`invert_grid` where it has work: Newton (`newton_step`'s arithmetic, on planar x and y
    rows) only at the grid points `active` (flat indices), from x - D(x), each point dropping
    out once its step is below CONVERGED_PX, at most INVERT_ITERATIONS steps (a fold's points,
    where Newton has no one answer, take them all). Every other point is its own source.
    `fwd4`: the forward map in channels 0-1 of shape = (gh, gw, 4), channels 2-3 zero:
    OpenCV's 2-channel float remap snaps its coordinates to 1/32 of a cell (and Newton then
    cannot settle closer than that); its 1- and 4-channel ones are exact. `jac`: its
    `_jacobian`. Returns the source per grid point, shape = (gh, gw, 2)."""
    c = float(cell)
    gh, gw = grid_xy.shape[:2]
    out_x, out_y = grid_xy[..., 0].ravel().copy(), grid_xy[..., 1].ravel().copy()
    if len(active):
        k = active
        flat = fwd4.reshape(-1, 4)
        gx, gy = out_x[k], out_y[k]
        sx, sy = gx - flat[k, 0], gy - flat[k, 1]
        scale, shift = np.float32(1 / c), np.float32(0.5 / c - 0.5)
        for it in range(INVERT_ITERATIONS):
            mx, my = (sx * scale + shift)[None], (sy * scale + shift)[None]     # (1, n): a row of points
            d = np.ascontiguousarray(cv2.remap(fwd4, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0].T)
            j = np.ascontiguousarray(cv2.remap(jac, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0].T)
            stx, sty = newton_step(sx + d[0] - gx, sy + d[1] - gy, j[0], j[2], j[1], j[3], np)
            sx, sy = sx - stx, sy - sty
            out_x[k], out_y[k] = sx, sy
            done = FIRST_STEP_PX if it == 0 else CONVERGED_PX
            keep = np.flatnonzero((np.abs(stx) > done) | (np.abs(sty) > done))
            k, sx, sy, gx, gy = k[keep], sx[keep], sy[keep], gx[keep], gy[keep]
            if not len(k):
                break
    return np.stack([out_x, out_y], -1).reshape(gh, gw, 2)


def folds(jac: np.ndarray) -> np.ndarray:
    """Where the forward map folds (its Jacobian's determinant at most DET_MIN), shape =
    (gh, gw) bool; `jac` as `_jacobian` gives it."""
    return (1 + jac[..., 0]) * (1 + jac[..., 3]) - jac[..., 1] * jac[..., 2] <= DET_MIN


def _speckles(back: np.ndarray, med: np.ndarray) -> np.ndarray:
    d = cv2.absdiff(back, med)
    return np.maximum(d[..., 0], d[..., 1]) > SPECKLE_PX


def lips_grid(rig: Rig) -> np.ndarray:
    """The grid points round the lips, shape = (gh, gw) bool: the box of the lips at rest
    grown by LIPS_MARGIN of its width and SPECKLE_REACH points. `despeckle` leaves the map
    alone there: a sealed mouth folds its lips over each other on purpose (the seal), and the
    median would part them again."""
    lips = rig.landmarks[list(R.LIP_UPPER_OUTER + R.LIP_LOWER_OUTER), :2]
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    pad = LIPS_MARGIN * (x1 - x0) + SPECKLE_REACH * rig.cell
    gx, gy = rig.grid_xy[..., 0], rig.grid_xy[..., 1]
    return (gx >= x0 - pad) & (gx <= x1 + pad) & (gy >= y0 - pad) & (gy <= y1 + pad)


def despeckle(back: np.ndarray, folded: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """The backward map (source - grid point, shape = (gh, gw, 2) float32) with its specks
    mended. Where a turned head folds the face over itself (the nose over the far cheek, the
    jaw over the collar, from about 10 degrees of yaw), Newton finds one layer at a point and
    the other at its neighbour: a point whose source jumps by pixels from all round it, in the
    frame a speck of the other layer. Within SPECKLE_REACH grid points of where the map folds
    (`folded`, from `folds`) and away from the lips (`lips`, from `lips_grid`), such a point
    (SPECKLE_PX) takes the median of its 3 x 3 neighbours' sources, and if there were any,
    once more (specks of two or three points; a 5 x 5 median did no better and costs five
    times as much): the layer its neighbourhood shows. The medians run only over the box round
    the candidates, with a point of margin, so they are exactly the whole grid's there. Shared
    by every backend (torch: `torch_backend._despeckle`)."""
    if not folded.any():
        return back
    k = 2 * SPECKLE_REACH + 1
    near = cv2.dilate(folded.view(np.uint8), np.ones((k, k), np.uint8)).view(bool) & ~lips
    if not near.any():
        return back
    rows, cols = np.flatnonzero(near.any(1)), np.flatnonzero(near.any(0))
    gh, gw = near.shape
    r0, r1, c0, c1 = max(rows[0] - 1, 0), min(rows[-1] + 2, gh), max(cols[0] - 1, 0), min(cols[-1] + 2, gw)
    roi, near = back[r0:r1, c0:c1].copy(), near[r0:r1, c0:c1]
    for _ in range(2):
        med = cv2.medianBlur(roi, 3)
        bad = _speckles(roi, med) & near
        if not bad.any():
            break
        roi[bad] = med[bad]
    out = back.copy()
    out[r0:r1, c0:c1] = roi
    return out


def newton_step(rx, ry, jxx, jxy, jyx, jyy, xp):
    """One Newton step of `invert_grid` for any array module `xp` (numpy, torch: it needs
    `where`): the residual (rx, ry) = s + D(s) - x and the displacement's Jacobian at s
    (dDx/dx, dDx/dy, dDy/dx, dDy/dy), arrays of one shape -> the step (sx, sy): the next s is
    s - step. Where the map folds (det J <= DET_MIN) the step is the residual (fixed point)."""
    a, dd = 1 + jxx, 1 + jyy
    det = a * dd - jxy * jyx
    ok = det > DET_MIN
    safe = xp.where(ok, det, 1.0)
    return xp.where(ok, (dd * rx - jxy * ry) / safe, rx), xp.where(ok, (a * ry - jyx * rx) / safe, ry)


_COORDS: dict[tuple[int, int], np.ndarray] = {}


def _pixel_coords(w: int, h: int) -> np.ndarray:
    """Every pixel's (x, y), shape = (h, w, 2) float32 (shared, read-only)."""
    if (w, h) not in _COORDS:
        ys, xs = np.mgrid[:h, :w].astype(np.float32)
        coords = np.dstack([xs, ys])
        coords.flags.writeable = False
        _COORDS[(w, h)] = coords
    return _COORDS[(w, h)]


def _nonzero(a: np.ndarray) -> np.ndarray:
    """shape = (..., 2) or (..., 4) float32, contiguous, its zeros +0.0 (as the thresholds here
    write them) -> (...) bool: either of the first two components not 0. One 64-bit compare per
    point."""
    return a.view(np.int64)[..., 0] != 0


def _dilate(mask: np.ndarray) -> np.ndarray:
    return cv2.dilate(mask.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)


_PADDED: dict[tuple[int, int, int], np.ndarray] = {}


def _padded_grid(gw: int, gh: int, cell: int) -> np.ndarray:
    """The grid points' pixel positions with one more cell all round (continuing the grid),
    shape = (gh + 2, gw + 2, 2) float32 (shared, read-only)."""
    key = (gw, gh, cell)
    if key not in _PADDED:
        xs = (np.arange(-1, gw + 1) + 0.5) * cell - 0.5
        ys = (np.arange(-1, gh + 1) + 0.5) * cell - 0.5
        grid = np.stack(np.meshgrid(xs, ys), -1).astype(np.float32)
        grid.flags.writeable = False
        _PADDED[key] = grid
    return _PADDED[key]


def warp_moving(rig: Rig, back: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """The portrait warped by the backward map `back` (source - grid point, shape = (gh, gw, 2)),
    only over the grid cells `moving` (shape = (gh, gw) bool; `back` is 0 elsewhere): in bands
    of BAND_ROWS grid rows, each from its first to its last moving column, the map upsampled as
    `cv2.resize` of the whole grid would (the band's sub-grid with a margin of one cell; the
    source positions themselves are upsampled, the grid continued a cell past the picture's
    edges and `back` replicated there, which is cv2.resize's own edge rule), snapped to 1/32
    pixel (OpenCV's fixed-point maps) and remapped. Shape = (H, W, 3) uint8."""
    frame = rig.image.copy()
    gh, gw = moving.shape
    w, h = rig.size
    c = rig.cell
    near = _dilate(moving)                 # pixels of a cell interpolate its neighbours too
    rows = np.flatnonzero(near.any(1))
    if not len(rows):
        return frame
    src = _padded_grid(gw, gh, c) + cv2.copyMakeBorder(back, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    # The bands from the first moving row, and each band's first and last moving column.
    r_first = rows[0]
    n_bands = -(-(rows[-1] + 1 - r_first) // BAND_ROWS)
    bands = np.zeros((n_bands * BAND_ROWS, gw), bool)
    bands[:min(gh - r_first, len(bands))] = near[r_first:r_first + len(bands)]
    bands = bands.reshape(n_bands, BAND_ROWS, gw).any(1)
    firsts, lasts = bands.argmax(1), gw - bands[:, ::-1].argmax(1)
    for b in np.flatnonzero(bands.any(1)):
        r0 = r_first + b * BAND_ROWS
        r1 = min(r0 + BAND_ROWS, gh)
        c0, c1 = firsts[b], lasts[b]
        y0, y1, x0, x1 = r0 * c, min(r1 * c, h), c0 * c, min(c1 * c, w)
        if y1 <= y0 or x1 <= x0:
            continue
        # Grid rows r0 - 1 .. r1 are padded rows r0 .. r1 + 1; the first `c` pixels are the margin's.
        up = cv2.resize(src[r0:r1 + 2, c0:c1 + 2], ((c1 - c0 + 2) * c, (r1 - r0 + 2) * c),
                        interpolation=cv2.INTER_LINEAR)
        m1, m2 = cv2.convertMaps(up[c:c + y1 - y0, c:c + x1 - x0], None, cv2.CV_16SC2)
        cv2.remap(rig.image, m1, m2, cv2.INTER_LINEAR, dst=frame[y0:y1, x0:x1], borderMode=cv2.BORDER_REPLICATE)
    return frame


def composite_layers(frame: np.ndarray, rig: Rig, params: FaceParams, disp: np.ndarray) -> np.ndarray:
    """Step 4, shared by every backend: draw the mouth's interior, the eyes and the closing lids
    over a warped frame (shape = (H, W, 3) uint8, modified in place and returned). `disp` is
    `landmark_displacement(rig, weights)`."""
    weights = np.asarray(params.blendshapes, np.float32)
    landmarks = _apply_head(rig, rig.landmarks + disp, params.head)
    composite_mouth(frame, rig, landmarks, weights)
    composite_eyes(frame, rig, landmarks)
    # A blink that moves no lid by half a pixel (a squint's few hundredths) draws no lid
    # (composite_lids: under 0.5 px it leaves an eye as it is); nearer the camera the head is
    # at most ~1.1x larger, so 0.4 px of the rig's own pixels is on the safe side.
    blink = float(weights[_BLINKS].max())
    if blink > ACTIVE and blink * float(np.abs(rig.basis[_BLINKS]).max()) > 0.4:
        # Where the lids would be without the blink: the band between is the closing lid.
        unblinked = disp - np.tensordot(weights[_BLINKS], rig.basis[_BLINKS], 1)
        composite_lids(frame, rig, landmarks, _apply_head(rig, rig.landmarks + unblinked, params.head))
    return frame


class Renderer:
    """One rig's renderer: what every frame needs computed once (the grid points relative to
    the head's pivot), then `render(params)` per frame. Frames are independent of each other:
    the same params give the same frame whatever came before (a warm start from the previous
    frame's inverse was measured: it saved under 2 % of a frame, since from x - D(x) Newton
    settles in two or three steps, and it made a fold's pixels depend on the frames before).
    `exact=True`: the reference (see the module's docstring). Thread-safe (no state per frame)."""

    def __init__(self, rig: Rig, *, exact: bool = False) -> None:
        self.rig = rig
        self.exact = exact
        n = rig.grid_xy.shape[0] * rig.grid_xy.shape[1]
        # The grid points relative to the head's pivot, one contiguous row per axis: shape = (3, n).
        rel = np.column_stack([rig.grid_xy.reshape(n, 2), rig.grid_z]) - rig.pivot
        self._rel = np.ascontiguousarray(rel.T, np.float32)
        self._mask = rig.head_mask.astype(np.float32).ravel()
        self._lips = lips_grid(rig)

    def render(self, params: FaceParams) -> np.ndarray:
        """One frame: shape = (H, W, 3) uint8 RGB."""
        rig = self.rig
        disp = landmark_displacement(rig, np.asarray(params.blendshapes, np.float32))
        if self.exact:
            frame = cv2.remap(rig.image, self.backward_map(params.head, disp), None, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        else:
            frame = warp_moving(rig, *self.backward_grid(params.head, disp))
        return composite_layers(frame, rig, params, disp)

    def forward(self, head: HeadPose, disp: np.ndarray) -> np.ndarray:
        """The forward map on the grid: each grid point's move (the expression's, then the
        head's), shape = (gh, gw, 2) float32 pixels."""
        return np.ascontiguousarray(self._forward4(head, disp)[..., :2])

    def _forward4(self, head: HeadPose, disp: np.ndarray) -> np.ndarray:
        """`forward` in channels 0-1 of shape = (gh, gw, 4), channels 2-3 zero (`invert_moving`)."""
        rig = self.rig
        expr = np.ascontiguousarray((rig.spread @ disp).T)       # (3, n)
        q = self._rel + expr
        x, y = turn_points(q[0], q[1], q[2], head_turn(rig, head), (0.0, 0.0))
        fwd = np.zeros((len(self._mask), 4), np.float32)
        fwd[:, 0] = expr[0] + self._mask * (x - q[0])
        fwd[:, 1] = expr[1] + self._mask * (y - q[1])
        return fwd.reshape(rig.grid_xy.shape[:2] + (4,))

    def backward_map(self, head: HeadPose, disp: np.ndarray) -> np.ndarray:
        """The reference's per-pixel source coordinates, shape = (H, W, 2) float32: `invert_grid`
        on the whole grid, upsampled to every pixel."""
        rig = self.rig
        fwd = self.forward(head, disp)
        jac = _jacobian(fwd, rig.cell)
        back = despeckle(invert_grid(fwd, jac, rig.grid_xy, rig.cell) - rig.grid_xy, folds(jac), self._lips)
        gh, gw = back.shape[:2]
        full = cv2.resize(back, (gw * rig.cell, gh * rig.cell), interpolation=cv2.INTER_LINEAR)
        w, h = rig.size
        return _pixel_coords(w, h) + full[:h, :w]

    def backward_grid(self, head: HeadPose, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(back, moving): each grid point's source minus itself, shape = (gh, gw, 2) float32
        (0 where it does not move), and where that is not 0, shape = (gh, gw) bool. The forward
        map in channels 0-1 of a 4-channel buffer (`invert_moving`)."""
        rig = self.rig
        fwd4 = self._forward4(head, disp)
        fwd4[np.abs(fwd4) < STILL_PX] = 0
        # Newton where the map or its neighbours move: elsewhere x - D(x) = x is the answer.
        todo = np.flatnonzero(_dilate(_nonzero(fwd4)))
        jac = _jacobian(fwd4, rig.cell)
        back = despeckle(invert_moving(fwd4, jac, rig.grid_xy, rig.cell, todo) - rig.grid_xy, folds(jac), self._lips)
        back[np.abs(back) < STILL_PX] = 0
        return back, _nonzero(back)


def render(rig: Rig, params: FaceParams) -> np.ndarray:
    """One frame from a fresh `Renderer`: shape = (H, W, 3) uint8 RGB."""
    return Renderer(rig).render(params)
