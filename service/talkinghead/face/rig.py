"""The rig: everything the renderer needs about one portrait, computed once.

`build_rig(image, landmarks, size, framing)` frames the photo (a square around the head, or the
whole picture), then precomputes:

- the expression basis (how each blendshape moves the 478 landmarks, `expressions.py`);
- a coarse grid over the picture (one point per `cell` pixels) and a sparse operator that
  spreads landmark displacements over it: barycentric inside the face mesh (its mouth and eye
  holes closed by strips), fading with distance outside it (so the jaw drags the neck skin);
- each grid point's depth (the landmarks' own depth inside the face, the face outline's depth
  around it) and how much it belongs to the head (1 on face, hair and ears, fading to 0 over
  the neck and the background, so the torso and far background never move);
- the eyes (iris patches cut out, the openings filled with sclera so irises can move) and the
  mouth (the photo's lip gap, lip and skin colours for the synthesized interior).

Coordinates are the framed picture's pixels (x right, y down, z like x, smaller = nearer).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.ndimage import grey_erosion
import structlog

from talkinghead.errors import OptionsError
from talkinghead.face import regions as R
from talkinghead.face.expressions import FaceFrame, expression_basis, seal_displacement

log = structlog.get_logger(__name__)

FRAMINGS = ("face", "full")
MIN_SIZE, MAX_SIZE = 256, 1024
GRID_POINTS = 128        # grid points along the longer side: 4 px cells at 512
EYE_DISTANCE_MM = 93.0   # adult outer-eye-corner distance: converts head x/y/z mm to pixels
HEAD_CENTRE_DEPTH = 0.35  # rotation centre behind the ear line, in s (outer-eye-corner distance)
CAMERA_DISTANCE_MM = 600.0
SKIN_TO_TEETH = 16.0      # L*: synthesized teeth over the skin round the eyes, where the sclera is too shaded
MAX_DEPTH_SLOPE = 1.5     # depth pixels per picture pixel: folds only past a 34 degree turn


@dataclass(frozen=True)
class EyeRig:
    """One eye: its contour (landmark indices), the eyeball as the photo shows it with the iris
    taken out and sclera painted around it (`eyeball`, shape = (h, w, 3) float32, its top-left
    corner at `origin` in the picture), and the iris as an RGBA patch
    (shape = (2r+3, 2r+3, 4) float32, alpha 0..1; the iris centre at `iris_offset` in it) with
    its radius in pixels; `open_area` is the opening's area in the photo (pixels)."""

    polygon: tuple[int, ...]
    corners: tuple[int, int]
    iris_index: int
    iris_patch: np.ndarray
    iris_radius: float
    eyeball: np.ndarray
    origin: tuple[int, int]
    open_area: float = 1.0
    iris_offset: tuple[float, float] = (0.0, 0.0)
    lash_color: tuple[float, float, float] = (60.0, 40.0, 30.0)
    sclera: tuple[float, float, float] = (225.0, 218.0, 210.0)
    lid_color: tuple[float, float, float] = (180.0, 140.0, 120.0)


@dataclass(frozen=True)
class LipCurves:
    """The inner lip contours in a face frame, as functions of t = 0..1 from one inner corner
    to the other: `up(t)`, `lo(t)` give the contour's v (in s). `ua`, `span`: the corners' u."""

    ua: float
    span: float
    tu: np.ndarray
    vu: np.ndarray
    tl: np.ndarray
    vl: np.ndarray

    @classmethod
    def of(cls, frame: FaceFrame, upper: np.ndarray, lower: np.ndarray) -> "LipCurves":
        """upper, lower: shape = (11, 2) picture pixels, corner to corner."""
        uu, ul = frame.to_local(upper), frame.to_local(lower)
        ua, ub = float(uu[0, 0]), float(uu[-1, 0])
        span = ub - ua if abs(ub - ua) > 1e-6 else 1e-6
        tu, tl = (uu[:, 0] - ua) / span, (ul[:, 0] - ua) / span
        ou, ol = np.argsort(tu), np.argsort(tl)
        return cls(ua, span, tu[ou], uu[ou, 1], tl[ol], ul[ol, 1])

    def up(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.tu, self.vu)

    def lo(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.tl, self.vl)


@dataclass(frozen=True)
class MouthRig:
    """The photo's mouth: whether it shows its own teeth/interior, its inner lip contours
    (`curves`, in the rig's face frame), and colours (RGB float 0..255) for a synthesized one."""

    photo_interior: bool
    curves: LipCurves
    lip_color: np.ndarray
    teeth_color: np.ndarray
    rim: int = 3
    open_area: float = 0.0     # the photo's inner-lip opening, pixels


@dataclass(frozen=True)
class Rig:
    """A framed portrait ready to animate. Arrays are read-only once built.

    image:      shape = (H, W, 3) uint8, the framed photo with its irises removed
    photo:      shape = (H, W, 3) uint8, the framed photo as it is (frame 0 of a still face)
    landmarks:  shape = (478, 3) float32 pixels
    basis:      shape = (52, 478, 3) float32 pixel displacements per blendshape
    seal:       shape = (478, 3) float32 pixel displacement closing the photo's lip gap
    grid_xy:    shape = (gh, gw, 2) float32 grid point positions (pixel centres of cells)
    grid_z:     shape = (gh * gw,) float32 depth of each grid point
    head_mask:  shape = (gh * gw,) float32, 1 = moves with the head, 0 = stays
    spread:     sparse (gh * gw, 478): landmark displacement -> grid displacement
    pivot:      shape = (3,) the head's rotation centre in pixels
    """

    size: tuple[int, int]
    cell: int
    image: np.ndarray
    photo: np.ndarray
    landmarks: np.ndarray
    basis: np.ndarray
    seal: np.ndarray
    grid_xy: np.ndarray
    grid_z: np.ndarray
    head_mask: np.ndarray
    spread: sp.csr_matrix
    pivot: np.ndarray
    px_per_mm: float
    eyes: tuple[EyeRig, EyeRig]
    mouth: MouthRig
    frame: FaceFrame
    faces_found: int = 1      # faces in the photo (the largest is animated)

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


def frame_portrait(image: np.ndarray, landmarks: np.ndarray, size: int, framing: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Crop and scale the photo for output. face: a square around the head (hair and chin
    included) of `size` x `size`; full: the whole photo with its longer side = `size` (both
    sides even, as H.264 needs). Returns (picture, landmarks in its pixels)."""
    if framing not in FRAMINGS:
        raise OptionsError(f"--framing must be one of {', '.join(FRAMINGS)}, not {framing!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise OptionsError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, not {size}")
    h, w = image.shape[:2]
    if framing == "full":
        k = size / max(h, w)
        out_w, out_h = max(2, round(w * k / 2) * 2), max(2, round(h * k / 2) * 2)
        kx, ky = out_w / w, out_h / h
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
        picture = cv2.resize(image, (out_w, out_h), interpolation=interp)
        lm = landmarks * np.array([kx, ky, kx], np.float32)
        return picture, lm.astype(np.float32)
    x0, y0 = landmarks[:, :2].min(0)
    x1, y1 = landmarks[:, :2].max(0)
    face = max(x1 - x0, y1 - y0)
    side = min(1.9 * face, h, w)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.08 * face
    left = float(np.clip(cx - side / 2, 0, w - side))
    top = float(np.clip(cy - side / 2, 0, h - side))
    k = size / side
    affine = np.array([[k, 0, -left * k], [0, k, -top * k]], np.float64)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    picture = cv2.warpAffine(image, affine, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT101)
    lm = np.empty_like(landmarks)
    lm[:, 0] = (landmarks[:, 0] - left) * k
    lm[:, 1] = (landmarks[:, 1] - top) * k
    lm[:, 2] = landmarks[:, 2] * k
    return picture, lm.astype(np.float32)


def _grid(width: int, height: int) -> tuple[int, np.ndarray]:
    cell = max(2, int(np.ceil(max(width, height) / GRID_POINTS)))
    gw, gh = int(np.ceil(width / cell)), int(np.ceil(height / cell))
    xs = (np.arange(gw) + 0.5) * cell - 0.5
    ys = (np.arange(gh) + 0.5) * cell - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return cell, np.stack([gx, gy], -1).astype(np.float32)


def _triangle_ids(tris: np.ndarray, lm: np.ndarray, grid_shape: tuple[int, int], cell: int) -> np.ndarray:
    """Which triangle covers each grid point (-1 = none). Drawn far to near, so where a turned
    face folds over itself the nearer surface wins."""
    ids = np.full(grid_shape, -1, np.int32)
    gxy = (lm[:, :2] + 0.5) / cell - 0.5            # landmark positions in grid units
    order = np.argsort(-lm[tris, 2].mean(1))
    for t in order:
        pts = np.round(gxy[tris[t]] * 16).astype(np.int32)
        cv2.fillConvexPoly(ids, pts, int(t), lineType=cv2.LINE_8, shift=4)
    return ids


def _spread_operator(lm: np.ndarray, grid_xy: np.ndarray, cell: int, frame: FaceFrame
                     ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Sparse (n_grid, 478) operator, each point's depth, and whether it is inside the face."""
    tris = R.mesh_triangles()
    gh, gw = grid_xy.shape[:2]
    pts = grid_xy.reshape(-1, 2).astype(np.float64)
    n = len(pts)
    ids = _triangle_ids(tris, lm, (gh, gw), cell).ravel()
    inside = ids >= 0
    rows, cols, vals = [], [], []
    # Barycentric weights inside the mesh (clipped: points the rasteriser put on an edge).
    idx = np.flatnonzero(inside)
    tri = tris[ids[idx]]
    a, b, c = (lm[tri[:, k], :2].astype(np.float64) for k in range(3))
    p = pts[idx]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-9, 1e-9, den)
    wb = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    wc = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    bary = np.clip(np.stack([1 - wb - wc, wb, wc], 1), 0, None)
    bary /= bary.sum(1, keepdims=True).clip(1e-9)
    for k in range(3):
        rows.append(idx)
        cols.append(tri[:, k])
        vals.append(bary[:, k])
    # Outside: inverse-distance weights of the nearest face-outline points, fading with
    # distance (in s) so the skin just outside the face follows it and far pixels stay.
    out = np.flatnonzero(~inside)
    oval = np.asarray(R.FACE_OVAL)
    d = np.sqrt(((pts[out, None, :] - lm[None, oval, :2]) ** 2).sum(-1)) / frame.s   # (m, 36)
    near = np.argsort(d, 1)[:, :4]
    dn = np.take_along_axis(d, near, 1)
    w = 1 / (dn + 0.02) ** 2
    w /= w.sum(1, keepdims=True)
    fade = np.exp(-(dn[:, 0] / 0.35) ** 2)
    z = np.zeros(n, np.float64)
    z[idx] = (bary * lm[tri, 2]).sum(1)
    z[out] = (w * lm[oval[near], 2]).sum(1)
    for k in range(4):
        rows.append(out)
        cols.append(oval[near[:, k]])
        vals.append(w[:, k] * fade)
    spread = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(n, len(lm)), dtype=np.float32)
    return spread, z.astype(np.float32), inside


def _limit_slope(z: np.ndarray, cell: int) -> np.ndarray:
    """Bring the depth's steep slopes (the face's silhouette, where depth changes fast across
    a few pixels) down to MAX_DEPTH_SLOPE by taking the lower envelope min_q z(q) + k |p - q|.
    A turn of the head by angle a folds the picture over itself wherever the depth rises
    faster than cot(a) (2.7 at 20 degrees); a fold has no unique inverse and tears.
    z: shape = (gh, gw) pixels. Returns the same shape."""
    r = 6
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    cone = -MAX_DEPTH_SLOPE * cell * np.hypot(yy, xx)
    out = grey_erosion(z.astype(np.float64), structure=cone, mode="nearest")
    return out.astype(np.float32)


def _head_mask(lm: np.ndarray, grid_xy: np.ndarray, frame: FaceFrame, inside: np.ndarray) -> np.ndarray:
    """1 on the head (face, hair, ears), fading to 0 over the neck and the background: an
    ellipse around the face outline, taller above it for the hair."""
    uv = frame.to_local(lm[list(R.FACE_OVAL)])
    u0 = (uv[:, 0].min() + uv[:, 0].max()) / 2
    half_w = (uv[:, 0].max() - uv[:, 0].min()) / 2 * 1.25
    top, chin = uv[:, 1].min() - 0.45, frame.to_local(lm[R.CHIN])[1] + 0.05
    mid = (top + chin) / 2
    g = frame.to_local(grid_xy.reshape(-1, 2))
    dx = (g[:, 0] - u0) / half_w
    dy = np.where(g[:, 1] < mid, (g[:, 1] - mid) / (mid - top), (g[:, 1] - mid) / (chin - mid))
    rho = np.hypot(dx, dy)
    # The band is narrower below the chin: the neck bends, the collar and torso stay.
    band = np.where(g[:, 1] > chin, 0.3, 0.45)
    t = np.clip((rho - 1.0) / band, 0, 1)
    mask = 1 - t * t * (3 - 2 * t)
    mask[inside] = 1.0
    return mask.astype(np.float32)


def _disk(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.clip(radius + 0.5 - np.hypot(xx - centre[0], yy - centre[1]), 0, 1)


def _polygon_mask(shape: tuple[int, int], pts: np.ndarray, offset=(0.0, 0.0)) -> np.ndarray:
    """Anti-aliased filled polygon, float32 0..1."""
    mask = np.zeros(shape, np.uint8)
    p = np.round((pts[:, :2] - np.asarray(offset)) * 16).astype(np.int32)
    cv2.fillPoly(mask, [p], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255


def _sclera(roi: np.ndarray, opening: np.ndarray, disk: np.ndarray) -> np.ndarray:
    """The white of the eye: the brighter part of what the opening shows beside the iris."""
    seen = roi[(opening > 0.5) & (disk < 0.05)]
    if len(seen) >= 4:
        # Bright and colourless: a small or shaded eye shows as much lid skin and lash shadow
        # as white, and those are the saturated part.
        score = seen.mean(1) - 1.5 * (seen.max(1) - seen.min(1))
        return np.median(seen[score >= np.percentile(score, 80)], 0)
    return np.array([232.0, 226.0, 220.0]) * np.clip(roi.mean() / 150, 0.4, 1.1)


def _eye(image: np.ndarray, lm: np.ndarray, upper, lower, iris) -> tuple[EyeRig, np.ndarray]:
    """Take the eye apart: the iris (what the lids hide filled by mirroring what shows), the
    eyeball behind it (sclera where the iris was and around the opening, shaded darker towards
    the lids), and the picture with the opening painted the dark of the lash line, so that a
    closing lid leaves a dark seam, not a streak of sclera. Returns the rig and the picture."""
    polygon = R.contour_polygon(upper, lower)
    pts = lm[list(polygon), :2].astype(np.float64)
    centre = lm[iris[0], :2].astype(np.float64)
    radius = float(np.mean(np.hypot(*(lm[list(iris[1:]), :2] - centre).T)))
    eye_w = float(np.hypot(*(pts[0] - pts[len(upper) - 1])))
    margin = int(np.ceil(0.35 * eye_w + radius + 2))
    H, W = image.shape[:2]
    x0, y0 = np.floor(pts.min(0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(0)).astype(int) + margin
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    corners = (upper[0], upper[-1])
    if radius < 1 or x1 - x0 < 4 or y1 - y0 < 4:
        empty = np.zeros((1, 1, 3), np.float32)
        return EyeRig(polygon, corners, iris[0], np.zeros((1, 1, 4), np.float32), 0.0, empty, (0, 0), 0.0), image
    roi = image[y0:y1, x0:x1].astype(np.float32)
    shape = roi.shape[:2]
    local_c = centre - (x0, y0)
    opening = _polygon_mask(shape, pts, (x0, y0))
    # The patch reaches a pixel past the iris (its anti-aliased rim then lies on sclera, and an
    # unmoved iris reproduces the photo exactly).
    disk = _disk(shape, local_c, radius + 1)
    visible = (opening > 0.02) & (disk > 0)

    # Iris patch: hidden pixels from their mirror image across the iris's horizontal axis.
    patch = roi.copy()
    if visible.any():
        mean = roi[visible].mean(0)
        for y, x in zip(*np.nonzero((disk > 0) & ~visible)):
            my = int(round(2 * local_c[1] - y))
            patch[y, x] = roi[my, x] if 0 <= my < shape[0] and visible[my, x] else mean
    # Cut at whole pixels (no resampling, so an unmoved iris is the photo's own pixels).
    h = int(np.ceil(radius + 2))
    ix, iy = int(round(local_c[0])), int(round(local_c[1]))
    ys = np.clip(np.arange(iy - h, iy + h + 1), 0, shape[0] - 1)
    xs = np.clip(np.arange(ix - h, ix + h + 1), 0, shape[1] - 1)
    rgb = patch[np.ix_(ys, xs)]
    offset = local_c - (ix - h, iy - h)                     # the iris centre in patch pixels
    iris_patch = np.dstack([rgb, _disk(rgb.shape[:2], offset, radius + 1)]).astype(np.float32)

    # Eyeball: the photo's own sclera where it shows; elsewhere (where the iris was, and
    # around the opening, seen when a lid lifts) sclera of its colour, shaded darker towards
    # the lids as the lids' shadow and the eyeball's curve make it.
    sclera = _sclera(roi, opening, disk)
    inside = (opening > 0.5).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    open_h = max(float(depth.max()) * 2, 1.0)
    shade = 0.84 + 0.16 * np.clip(depth / (0.3 * open_h), 0, 1)
    synth = cv2.GaussianBlur((sclera * shade[..., None]).astype(np.float32), (0, 0), max(radius * 0.15, 0.7))
    # The opening grown by a pixel: its anti-aliased rim belongs to the eye layer too.
    rim = cv2.dilate((opening > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    keep = rim * ((disk < 0.999) | (opening < 0.5))   # photo wherever the iris is not fully drawn over it
    eyeball = synth + (roi - synth) * keep[..., None]

    # The picture: the opening (and its rim) painted the colour of the lash line.
    ring = cv2.dilate(inside, np.ones((5, 5), np.uint8)) - inside
    lash = np.percentile(roi[ring > 0], 15, axis=0) if ring.any() else roi.min((0, 1))
    out = image.copy()
    out[y0:y1, x0:x1] = np.where(rim[..., None] > 0, lash, roi).astype(np.uint8)
    return EyeRig(polygon, corners, iris[0], iris_patch, radius, eyeball.astype(np.float32), (int(x0), int(y0)),
                  float(opening.sum()), (float(offset[0]), float(offset[1])), tuple(map(float, lash)),
                  tuple(map(float, sclera)), tuple(map(float, _lid_skin(roi, inside, eye_w)))), out


def _lid_skin(roi: np.ndarray, inside: np.ndarray, eye_w: float) -> np.ndarray:
    """The colour of the skin around an eye (RGB): the median of the ring round the opening
    (a third of the eye's width wide) without its darkest quarter (brows, lashes, the frames of
    glasses) and its brightest fifth (highlights on skin or lenses)."""
    near = cv2.dilate(inside, np.ones((3, 3), np.uint8))
    ring = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(0.66 * eye_w) | 1,) * 2)) - near
    px = roi[ring > 0]
    if len(px) < 8:
        return roi.reshape(-1, 3).mean(0)
    lum = px @ np.array([0.299, 0.587, 0.114])
    lo, hi = np.percentile(lum, [25, 80])
    keep = px[(lum >= lo) & (lum <= hi)]
    return np.median(keep, 0) if len(keep) else np.median(px, 0)


def _lightness(rgb) -> float:
    return float(cv2.cvtColor(np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255, cv2.COLOR_RGB2LAB)[0, 0, 0])


def ivory(sclera: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Teeth for a face whose photo shows none (RGB): ivory of the sclera's lightness less
    4 L* (teeth are never whiter than the whites of the eyes). Where the measured sclera is no
    lighter than the skin round the eyes (a small, narrowed or shaded eye: what was measured
    is mostly lid and lashes) a tone 16 L* over that skin stands in for it (beside the skin,
    teeth any darker read as grey). The hue: an ivory
    in the photo's own light (a third of the skin's a* and b*: a warm photo has warm teeth, and
    teeth of a neutral ivory look grey beside its skin), its chroma falling with its lightness
    (a dark yellow reads as khaki, not as teeth in shadow)."""
    light = float(np.clip(max(_lightness(sclera), _lightness(skin) + SKIN_TO_TEETH + 4) - 4, 35, 92))
    skin_ab = cv2.cvtColor(np.asarray(skin, np.float32).reshape(1, 1, 3) / 255, cv2.COLOR_RGB2LAB)[0, 0, 1:]
    a, b = 1.0 + 0.3 * np.clip(skin_ab[0], 0, 40), 7.0 + 0.45 * np.clip(skin_ab[1], 0, 40)
    k = float(np.clip(light / 80, 0.5, 1.0))
    lab = np.array([[[light, a * k, b * k]]], np.float32)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).reshape(3) * 255, 0, 255)


def _mouth(image: np.ndarray, lm: np.ndarray, frame: FaceFrame, sclera: np.ndarray, skin: np.ndarray) -> MouthRig:
    up, lo = list(R.LIP_UPPER_INNER[1:-1]), list(R.LIP_LOWER_INNER[1:-1])
    gap = np.hypot(*(lm[lo, :2] - lm[up, :2]).T).astype(np.float32)
    H, W = image.shape[:2]
    lips = np.zeros((H, W), np.uint8)
    cv2.fillPoly(lips, [np.round(lm[list(R.contour_polygon(R.LIP_UPPER_OUTER, R.LIP_UPPER_INNER)), :2]).astype(np.int32),
                        np.round(lm[list(R.contour_polygon(R.LIP_LOWER_OUTER, R.LIP_LOWER_INNER)), :2]).astype(np.int32)], 1)
    lip_color = np.median(image[lips > 0], 0) if lips.any() else np.array([150, 80, 80])
    teeth = ivory(sclera, skin)
    photo_interior = bool(np.median(gap) > 0.04 * frame.s)
    if photo_interior:
        inner = _polygon_mask((H, W), lm[list(R.contour_polygon(R.LIP_UPPER_INNER, R.LIP_LOWER_INNER))])
        bright = image[inner > 0.5]
        if len(bright):
            lum = bright.mean(1)
            top = bright[lum >= np.percentile(lum, 80)]
            teeth = top.mean(0)
    rim = max(3, int(round(0.02 * frame.s)) | 1)
    area = float(_polygon_mask((H, W), lm[list(R.contour_polygon(R.LIP_UPPER_INNER, R.LIP_LOWER_INNER))]).sum())
    curves = LipCurves.of(frame, lm[list(R.LIP_UPPER_INNER), :2], lm[list(R.LIP_LOWER_INNER), :2])
    return MouthRig(photo_interior, curves, lip_color.astype(np.float32), teeth.astype(np.float32), rim, area)


def build_rig(image: np.ndarray, landmarks: np.ndarray, size: int = 512, framing: str = "face",
              faces_found: int = 1) -> Rig:
    """image: shape = (H, W, 3) uint8 RGB, the whole photo; landmarks: shape = (478, 3) float
    pixels of that photo (z like x). Returns the rig for `size` and `framing`."""
    picture, lm = frame_portrait(image, np.asarray(landmarks, np.float32), size, framing)
    frame = FaceFrame.of(lm)
    height, width = picture.shape[:2]
    cell, grid_xy = _grid(width, height)
    spread, grid_z, inside = _spread_operator(lm, grid_xy, cell, frame)
    grid_z = _limit_slope(grid_z.reshape(grid_xy.shape[:2]), cell).ravel()
    head_mask = _head_mask(lm, grid_xy, frame, inside)
    hinge = lm[list(R.JAW_HINGES)].mean(0)
    pivot = np.array([lm[list(R.FACE_OVAL), 0].mean(), hinge[1], hinge[2] + HEAD_CENTRE_DEPTH * frame.s], np.float32)
    irisless = np.ascontiguousarray(picture)
    eyes = []
    for upper, lower, iris in ((R.EYE_RIGHT_UPPER, R.EYE_RIGHT_LOWER, R.IRIS_RIGHT),
                               (R.EYE_LEFT_UPPER, R.EYE_LEFT_LOWER, R.IRIS_LEFT)):
        eye, irisless = _eye(irisless, lm, upper, lower, iris)
        eyes.append(eye)
    mouth = _mouth(picture, lm, frame, np.mean([e.sclera for e in eyes], 0), np.mean([e.lid_color for e in eyes], 0))
    if mouth.photo_interior:
        # The renderer draws the photo's interior itself; in the warped picture a closing mouth
        # should leave the dark seam of lips meeting, not a streak of squeezed teeth.
        inner = _polygon_mask((height, width), lm[list(R.contour_polygon(R.LIP_UPPER_INNER, R.LIP_LOWER_INNER))])
        # (grown by a couple of percent of the face: the landmark contour runs a little inside
        # the teeth's true edge, and teeth left outside it would streak a closed mouth)
        rim = cv2.dilate((inner > 0.02).astype(np.uint8), np.ones((mouth.rim, mouth.rim), np.uint8))
        # ...but not past the corners, where the lips themselves meet.
        ys, xs = np.mgrid[:height, :width]
        u = frame.to_local(np.stack([xs, ys], -1).astype(np.float32))[..., 0]
        ua, ub = sorted(frame.to_local(lm[list(R.MOUTH_INNER_CORNERS), :2])[:, 0])
        rim = rim * ((u >= ua) & (u <= ub) | (inner > 0.02))
        # Inside the opening: the dark of lips pressed together; on the rim (lip surface the
        # contour missed): the lips' own colour, so sealed lips meet in one thin dark line.
        # A squeezed opening keeps some width on the coarse warp grid, so the dark is kept to
        # its middle (a few pixels from its edges) and the rest reads as lip.
        depth = cv2.distanceTransform((inner > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        dark = cv2.GaussianBlur(np.clip((depth - 2.0) / 4.0, 0, 1).astype(np.float32), (0, 0), 1.0)[..., None]
        fill = mouth.lip_color * (0.9 - 0.45 * dark)
        # Feathered by a pixel: the warp squeezes this paint, and a hard edge turns to stairs.
        # (inside the rim, which the renderer draws over: outside it the picture stays the photo)
        shrunk = cv2.erode(rim.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
        soft = (np.maximum(cv2.GaussianBlur(shrunk, (0, 0), 0.8), inner) * rim)[..., None]
        irisless = np.clip(irisless + (fill - irisless) * soft + 0.5, 0, 255).astype(np.uint8)
    rig = Rig(size=(width, height), cell=cell, image=irisless, photo=np.ascontiguousarray(picture), landmarks=lm,
              basis=expression_basis(lm), seal=seal_displacement(lm), grid_xy=grid_xy, grid_z=grid_z,
              head_mask=head_mask, spread=spread, pivot=pivot, px_per_mm=frame.s / EYE_DISTANCE_MM,
              eyes=(eyes[0], eyes[1]), mouth=mouth, frame=frame,
              faces_found=faces_found)
    for a in (rig.image, rig.photo, rig.landmarks, rig.basis, rig.seal, rig.grid_xy, rig.grid_z, rig.head_mask):
        a.setflags(write=False)
    log.info("rig.built", size=rig.size, cell=cell, grid=grid_xy.shape[:2], face_px=round(frame.s, 1),
             photo_interior=rig.mouth.photo_interior)
    return rig
