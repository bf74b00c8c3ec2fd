"""How each ARKit blendshape moves the portrait's landmarks.

`expression_basis(landmarks)` gives, for every blendshape, a displacement of every landmark at
weight 1, shape = (52, 478, 3) in the landmarks' own pixels. A frame's expression is the
weighted sum (linear, as ARKit blendshapes are); the renderer spreads it over the picture.

Displacements are authored in the face's own frame: u along the line between the outer eye
corners (towards the subject's left), v perpendicular to it (down the face), both in units of
`s`, the outer-eye-corner distance (about 93 mm on an adult). Sizes follow facial anatomy at
full activation: the jaw drops the lower lip about 0.3 s (~28 mm), a smile pulls the corner
~0.07 s up and out, a blink carries the upper lid onto the lower one.

The photo's own expression is the neutral: weight 0 leaves every landmark where the photo has
it (a smiling photo keeps its smile at rest). The one exception is lip closure, handled by
`seal_displacement`: p/b/m must seal the lips even when the photo shows its teeth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.arkit import BLENDSHAPE_NAMES, BS
from talkinghead.face import regions as R

JAW_DROP = 0.26        # lower-lip drop at jawOpen = 1, in s
CLOSE_SHARE = 0.30     # where sealed lips meet with the jaw open: this share of the drop below rest
SIDES = (("Left", +1.0), ("Right", -1.0))


@dataclass(frozen=True)
class FaceFrame:
    """The face's own 2-D frame in picture pixels: origin between the outer eye corners,
    `ex` towards the subject's left, `ey` down the face, `s` the outer-eye-corner distance."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    s: float

    @classmethod
    def of(cls, landmarks: np.ndarray) -> "FaceFrame":
        right, left = landmarks[R.EYE_OUTER_CORNERS[0], :2], landmarks[R.EYE_OUTER_CORNERS[1], :2]
        axis = left - right
        s = float(np.hypot(*axis))
        ex = axis / s
        return cls((left + right) / 2, ex, np.array([-ex[1], ex[0]]), s)

    def to_local(self, xy: np.ndarray) -> np.ndarray:
        d = xy[..., :2] - self.origin
        return np.stack([d @ self.ex, d @ self.ey], -1) / self.s

    def to_pixels(self, duv: np.ndarray) -> np.ndarray:
        """Local displacements (..., 2) in s -> picture displacements (..., 2) in pixels."""
        return self.s * (duv[..., :1] * self.ex + duv[..., 1:2] * self.ey)


class _Builder:
    def __init__(self, landmarks: np.ndarray) -> None:
        self.frame = FaceFrame.of(landmarks)
        self.uv = self.frame.to_local(landmarks)
        self.n = len(landmarks)
        self.basis = np.zeros((len(BLENDSHAPE_NAMES), self.n, 2), np.float64)
        uv = self.uv
        self.upper_lip = self._inside(R.contour_polygon(R.LIP_UPPER_OUTER, R.LIP_UPPER_INNER))
        self.lower_lip = self._inside(R.contour_polygon(R.LIP_LOWER_OUTER, R.LIP_LOWER_INNER))
        # Each lip's own contours belong to it alone: with the lips together the inner contours
        # lie on each other (or cross a little), and a point counted in both lips would ride
        # on the jaw with the lower lip and pull the upper lip's edge down with it.
        for own, other in ((R.LIP_UPPER_INNER, self.lower_lip), (R.LIP_UPPER_OUTER, self.lower_lip),
                           (R.LIP_LOWER_INNER, self.upper_lip), (R.LIP_LOWER_OUTER, self.upper_lip)):
            other[list(own[1:-1])] = False
        self.upper_lip[list(R.LIP_UPPER_INNER[1:-1] + R.LIP_UPPER_OUTER[1:-1])] = True
        self.lower_lip[list(R.LIP_LOWER_INNER[1:-1] + R.LIP_LOWER_OUTER[1:-1])] = True
        # Which side of the mouth's seam each landmark is on (the seam: the midline between the
        # inner lip contours, extended past the corners as the line through the corners).
        mid = (uv[list(R.LIP_UPPER_INNER)] + uv[list(R.LIP_LOWER_INNER)]) / 2
        order = np.argsort(mid[:, 0])
        seam_v = np.interp(uv[:, 0], mid[order, 0], mid[order, 1])
        below = uv[:, 1] > seam_v
        self.lower_side = (below | self.lower_lip) & ~(self.upper_lip & ~self.lower_lip)
        self.upper_side = ~self.lower_side
        self.mouth_u = float(mid[:, 0].mean())
        self.mouth_half = float(abs(uv[R.MOUTH_CORNERS[1], 0] - uv[R.MOUTH_CORNERS[0], 0]) / 2)
        self.eye_line_v = float(uv[list(R.EYE_LEFT_UPPER + R.EYE_RIGHT_UPPER), 1].min())
        self.iris = np.zeros(self.n, bool)
        self.iris[R.N_MESH:] = True

    def _inside(self, polygon: tuple[int, ...]) -> np.ndarray:
        poly = (self.uv[list(polygon)] * 1000).astype(np.float32)
        pts = self.uv * 1000
        d = np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), True) for x, y in pts])
        return d >= -2.0   # on the contour (within 0.002 s) counts as inside

    def spread(self, handles, disp, sigma: float, mask: np.ndarray | None = None) -> np.ndarray:
        """Handle displacements (k, 2) spread to every landmark with a Gaussian of `sigma` s:
        a handle keeps (about) its own value, others fade with distance to the nearest handles."""
        handles = list(handles)
        disp = np.broadcast_to(np.asarray(disp, np.float64), (len(handles), 2))
        d2 = ((self.uv[:, None, :] - self.uv[None, handles, :]) ** 2).sum(-1)
        k = np.exp(-d2 / (2 * sigma**2))
        out = (k @ disp) / k.sum(1, keepdims=True).clip(1e-9) * k.max(1, keepdims=True)
        if mask is not None:
            out[~mask] = 0.0
        out[self.iris] = 0.0     # irises move only with gaze
        return out

    def add(self, name: str, disp: np.ndarray) -> None:
        self.basis[BS[name]] += disp

    def side(self, sign: float) -> np.ndarray:
        return (self.uv[:, 0] - self.mouth_u) * sign > 0


def _jaw_weight(b: _Builder, landmarks: np.ndarray) -> np.ndarray:
    """How much of the jaw's drop each landmark gets: the mandible rotates about the hinge line
    between the ears, so in a frontal view a point drops in proportion to how far in front of
    the hinge it is (its depth), and only points below the mouth's seam ride on the jaw."""
    z = landmarks[:, 2]
    z_hinge = z[list(R.JAW_HINGES)].mean()
    depth = np.clip((z_hinge - z) / max(z_hinge - z[R.CHIN], 1e-6), 0.0, 1.0)
    w = np.where(b.lower_side, depth, 0.0)
    w[b.lower_lip] = 1.0
    # Skin beside the corners stretches between the fixed upper face and the jaw.
    # (Below the lips themselves the whole chin rides on the jaw.)
    rel = b.uv[:, 1] - b.uv[list(R.MOUTH_CORNERS), 1].mean()
    ramp = np.clip((rel + 0.05) / 0.35, 0.0, 1.0)
    lateral = np.clip((np.abs(b.uv[:, 0] - b.mouth_u) - 0.8 * b.mouth_half) / (0.6 * b.mouth_half), 0.0, 1.0)
    w = np.where(b.lower_lip, 1.0, w * (1 - lateral * (1 - ramp)))
    w[list(R.MOUTH_CORNERS + R.MOUTH_INNER_CORNERS)] = 0.45
    w[b.iris] = 0.0
    return w


def _mouth(b: _Builder, landmarks: np.ndarray) -> None:
    uv = b.uv
    lips = b.upper_lip | b.lower_lip
    jaw = _jaw_weight(b, landmarks)
    center_pull = -(uv[:, 0] - b.mouth_u) / max(b.mouth_half, 1e-6)   # -1..1 towards the centre
    b.add("jawOpen", np.stack([0.05 * center_pull * jaw * lips, JAW_DROP * jaw], -1))
    for name, sign in (("jawLeft", 1.0), ("jawRight", -1.0)):
        b.add(name, np.stack([0.08 * sign * jaw, 0.0 * jaw], -1))
    b.add("jawForward", np.stack([0.0 * jaw, -0.03 * jaw], -1))

    # Lips meet: the lower lip rides back up the jaw, the upper lip comes down a little.
    lower_only = b.lower_lip & ~b.upper_lip
    upper_only = b.upper_lip & ~b.lower_lip
    close = np.zeros((b.n, 2))
    close[lower_only, 1] = -(1 - CLOSE_SHARE) * JAW_DROP
    close[upper_only, 1] = CLOSE_SHARE * JAW_DROP
    close += b.spread(np.flatnonzero(lower_only), close[lower_only], 0.06, b.lower_side & ~lips) * 0.6
    b.add("mouthClose", close)

    corners = list(R.MOUTH_CORNERS) + list(R.MOUTH_INNER_CORNERS)
    corner_in = np.array([[1.0, 0], [-1.0, 0], [1.0, 0], [-1.0, 0]])   # towards the centre
    b.add("mouthPucker", b.spread(corners, 0.10 * corner_in, 0.12))
    funnel = b.spread(corners, 0.07 * corner_in, 0.12)
    centre = np.exp(-((uv[:, 0] - b.mouth_u) / max(b.mouth_half * 0.7, 1e-6)) ** 2)
    funnel[upper_only, 1] -= 0.035 * centre[upper_only]
    funnel[lower_only, 1] += 0.05 * centre[lower_only]
    b.add("mouthFunnel", funnel)

    mouth_area = list(np.flatnonzero(lips))
    for name, sign in (("mouthLeft", 1.0), ("mouthRight", -1.0)):
        b.add(name, b.spread(mouth_area, [0.07 * sign, 0.0], 0.10))

    for side, sign in SIDES:
        corner = R.MOUTH_CORNERS[0 if sign < 0 else 1]
        inner = R.MOUTH_INNER_CORNERS[0 if sign < 0 else 1]
        both = [corner, inner]
        b.add(f"mouthSmile{side}", b.spread(both, [0.07 * sign, -0.07], 0.16))
        b.add(f"mouthFrown{side}", b.spread(both, [0.01 * sign, 0.06], 0.14))
        b.add(f"mouthDimple{side}", b.spread(both, [0.045 * sign, -0.01], 0.12))
        stretch = b.spread(both, [0.07 * sign, 0.03], 0.14)
        b.add(f"mouthStretch{side}", stretch)
        half = b.side(sign)
        lateral = np.exp(-((np.abs(uv[:, 0] - b.mouth_u) - 0.5 * b.mouth_half) / max(b.mouth_half * 0.6, 1e-6)) ** 2)
        down = np.zeros((b.n, 2))
        down[lower_only & half, 1] = 0.08 * lateral[lower_only & half]
        down += b.spread(np.flatnonzero(lower_only & half), down[lower_only & half], 0.08, b.lower_side & ~lips) * 0.5
        b.add(f"mouthLowerDown{side}", down)
        up = np.zeros((b.n, 2))
        up[upper_only & half, 1] = -0.055 * lateral[upper_only & half]
        up += b.spread(np.flatnonzero(upper_only & half), up[upper_only & half], 0.08, b.upper_side & ~lips) * 0.5
        b.add(f"mouthUpperUp{side}", up)
        press = np.zeros((b.n, 2))
        press[list(set(R.LIP_UPPER_OUTER) & set(np.flatnonzero(half & upper_only))), 1] = 0.02
        press[list(set(R.LIP_LOWER_OUTER) & set(np.flatnonzero(half & lower_only))), 1] = -0.02
        press[corner, 0] = 0.015 * sign
        b.add(f"mouthPress{side}", press)
        b.add(f"noseSneer{side}", b.spread(R.NOSE_WING_LEFT if sign > 0 else R.NOSE_WING_RIGHT,
                                           [0.0, -0.04], 0.08, b.upper_side))

    roll_lower = np.zeros((b.n, 2))
    roll_lower[[i for i in R.LIP_LOWER_OUTER if i not in R.MOUTH_CORNERS], 1] = -0.04
    b.add("mouthRollLower", roll_lower)
    roll_upper = np.zeros((b.n, 2))
    roll_upper[[i for i in R.LIP_UPPER_OUTER if i not in R.MOUTH_CORNERS], 1] = 0.035
    b.add("mouthRollUpper", roll_upper)
    shrug_lower = np.zeros((b.n, 2))
    shrug_lower[b.lower_side, 1] = -0.035 * jaw[b.lower_side]
    b.add("mouthShrugLower", shrug_lower)
    b.add("mouthShrugUpper", b.spread(np.flatnonzero(upper_only), [0.0, -0.02], 0.06, b.upper_side))

    cheeks = [i for i in range(R.N_MESH) if 0.25 < abs(uv[i, 0]) < 0.62 and 0.25 < uv[i, 1] < 0.75]
    puff = np.zeros((b.n, 2))
    puff[cheeks, 0] = 0.05 * np.sign(uv[cheeks, 0])
    b.add("cheekPuff", b.spread(cheeks, puff[cheeks], 0.08))
    for side, sign in SIDES:
        under_eye = [i for i in cheeks if np.sign(uv[i, 0]) == sign and uv[i, 1] < 0.5]
        b.add(f"cheekSquint{side}", b.spread(under_eye, [0.0, -0.04], 0.08, b.upper_side))


def _eyes(b: _Builder) -> None:
    uv = b.uv
    for side, sign in SIDES:
        upper, lower = (R.EYE_LEFT_UPPER, R.EYE_LEFT_LOWER) if sign > 0 else (R.EYE_RIGHT_UPPER, R.EYE_RIGHT_LOWER)
        brow_in, brow_out, brow_mid = ((R.BROW_LEFT_INNER, R.BROW_LEFT_OUTER, R.BROW_LEFT_MID) if sign > 0
                                       else (R.BROW_RIGHT_INNER, R.BROW_RIGHT_OUTER, R.BROW_RIGHT_MID))
        iris = R.IRIS_LEFT if sign > 0 else R.IRIS_RIGHT
        up_i, lo_i = list(upper[1:-1]), list(lower[1:-1])
        gap = uv[lo_i] - uv[up_i]                         # (k, 2) upper -> lower lid
        contour = np.isin(np.arange(b.n), upper + lower)
        above = (uv[:, 1] < uv[up_i, 1].max() + 0.01) & (np.sign(uv[:, 0]) == sign) & ~contour
        below = (uv[:, 1] > uv[lo_i, 1].min() - 0.01) & (np.sign(uv[:, 0]) == sign) & ~contour
        lid_skin = above & (uv[:, 1] > uv[list(brow_mid), 1].max())

        def lids(upper_share: float, lower_share: float, crease: float = 1.0) -> np.ndarray:
            d = np.zeros((b.n, 2))
            d[up_i] = upper_share * gap
            d[lo_i] = -lower_share * gap
            # The lid moves as a piece near its margin (the lashes go with it) and the skin
            # fades back to still at the crease.
            skin = b.spread(up_i, d[up_i], 0.05, lid_skin) * crease
            skin[up_i] = 0
            d += skin
            d += b.spread(lo_i, d[lo_i], 0.05, below & ~np.isin(np.arange(b.n), lo_i)) * 0.4
            return d

        b.add(f"eyeBlink{side}", lids(1.15, 0.1))
        b.add(f"eyeSquint{side}", lids(0.10, 0.28))
        b.add(f"eyeWide{side}", lids(-0.30, -0.05))
        look = {"Up": (0.0, -0.055), "Down": (0.0, 0.055), "Out": (0.10 * sign, 0.0), "In": (-0.10 * sign, 0.0)}
        for name, (du, dv) in look.items():
            d = np.zeros((b.n, 2))
            d[list(iris)] = (du, dv)
            if name in ("Up", "Down"):     # the upper lid follows the eye up and down
                d[up_i, 1] += 0.5 * dv
                d += b.spread(up_i, d[up_i], 0.06, lid_skin) * 0.4 * (~np.isin(np.arange(b.n), up_i))[:, None]
            b.add(f"eyeLook{name}{side}", d)

        forehead = (uv[:, 1] < b.eye_line_v) & (np.sign(uv[:, 0]) == sign) & ~b.iris
        brow_all = list(brow_in + brow_out + brow_mid)
        b.add(f"browDown{side}", b.spread(brow_all, [-0.02 * sign, 0.06], 0.12, forehead))
        b.add(f"browOuterUp{side}", b.spread(brow_out, [0.0, -0.07], 0.13, forehead))
    inner = list(R.BROW_LEFT_INNER + R.BROW_RIGHT_INNER)
    b.add("browInnerUp", b.spread(inner, [0.0, -0.08], 0.14, (uv[:, 1] < b.eye_line_v) & ~b.iris))


def expression_basis(landmarks: np.ndarray) -> np.ndarray:
    """landmarks: shape = (478, 3) picture pixels -> shape = (52, 478, 3) float32 pixels of
    displacement per blendshape at weight 1 (z is left 0: expressions move the skin across
    the picture; depth matters for the head's turn)."""
    b = _Builder(landmarks)
    _mouth(b, landmarks)
    _eyes(b)
    out = np.zeros((len(BLENDSHAPE_NAMES), len(landmarks), 3), np.float32)
    out[..., :2] = b.frame.to_pixels(b.basis)
    return out


def seal_displacement(landmarks: np.ndarray) -> np.ndarray:
    """Displacement that closes the photo's own lip gap (teeth showing): each inner upper-lip
    point and its lower partner meet halfway; the rest of each lip moves with its inner edge.
    shape = (478, 3) pixels. Applied in proportion to how sealed the frame's lips are."""
    b = _Builder(landmarks)
    up, lo = list(R.LIP_UPPER_INNER[1:-1]), list(R.LIP_LOWER_INNER[1:-1])
    half_gap = (b.uv[lo] - b.uv[up]) / 2
    half_gap[:, 0] = 0.0
    d = b.spread(up, half_gap, 0.05, b.upper_side) + b.spread(lo, -half_gap, 0.05, b.lower_side)
    out = np.zeros((len(landmarks), 3), np.float32)
    out[:, :2] = b.frame.to_pixels(d)
    return out
