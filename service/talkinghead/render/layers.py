"""What a warp cannot make, drawn over the warped frame in small regions of interest.

- Eyes: the iris (cut out of the photo by the rig) is drawn at its moved centre, clipped by the
  moved eye opening, so gaze moves the iris inside fixed lids and a blink covers it.
- Mouth: inside the moved inner-lip contour, the interior. Positions there are measured from
  the moved upper lip down and from the moved lower lip up, in the face's own frame: the upper
  teeth hang from the upper lip, the lower teeth and the tongue ride on the jaw, and the
  cavity fills what is between. The teeth are the photo's own when it shows them, otherwise
  synthesized: a dental arch in the photo's own light, darker towards the corners and the back.
- Lids: a closing lid is drawn over the eye from the skin round it, with a crease and lashes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from talkinghead.arkit import BS
from talkinghead.face import regions as R
from talkinghead.face.expressions import FaceFrame
from talkinghead.face.rig import LipCurves, Rig

_UP, _LO = list(R.LIP_UPPER_INNER), list(R.LIP_LOWER_INNER)
_MOUTH_POLY = list(R.contour_polygon(R.LIP_UPPER_INNER, R.LIP_LOWER_INNER))


def seal_fraction(weights: np.ndarray) -> float:
    """How sealed the lips are, 0..1: mouthClose relative to the jaw's opening (mouthClose =
    jawOpen is a p/b/m). Closes the photo's own lip gap (renderer) and hides the interior."""
    return float(np.clip(weights[BS["mouthClose"]] / max(weights[BS["jawOpen"]], 0.05), 0.0, 1.0))


def _roi(points: np.ndarray, pad: int, w: int, h: int) -> tuple[int, int, int, int] | None:
    (lx, ly), (hx, hy) = points.min(0).tolist(), points.max(0).tolist()
    x0, y0 = max(math.floor(lx) - pad, 0), max(math.floor(ly) - pad, 0)
    x1, y1 = min(math.ceil(hx) + pad + 1, w), min(math.ceil(hy) + pad + 1, h)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _mask(shape: tuple[int, int], pts: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round((pts - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return np.multiply(m, np.float32(1 / 255), dtype=np.float32)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the similarity (rotation, scale, shift) taking src[0], src[1] to dst[0], dst[1]."""
    (sx0, sy0), (sx1, sy1) = src.tolist()
    (dx0, dy0), (dx1, dy1) = dst.tolist()
    ax, ay, bx, by = sx1 - sx0, sy1 - sy0, dx1 - dx0, dy1 - dy0
    n = ax * ax + ay * ay
    # k = b / a as complex numbers: the rotation and scale.
    kr, ki = ((bx * ax + by * ay) / n, (by * ax - bx * ay) / n) if n > 1e-12 else (1.0, 0.0)
    return np.array([[kr, -ki, dx0 - (kr * sx0 - ki * sy0)], [ki, kr, dy0 - (ki * sx0 + kr * sy0)]])


def composite_eyes(frame: np.ndarray, rig: Rig, landmarks: np.ndarray) -> None:
    """Draw each eyeball (moved rigidly with the eye's corners) and its iris (at its moved
    centre) inside the moved eye opening (in place). A closed eye has no opening to draw in."""
    h, w = frame.shape[:2]
    down = FaceFrame.of(landmarks).ey
    n_up = len(R.EYE_LEFT_UPPER)
    for eye in rig.eyes:
        if eye.iris_radius <= 0:
            continue
        poly = landmarks[list(eye.polygon)].copy()
        # An upper lid carried past the lower one (a blink's overshoot) leaves no opening, not
        # an inverted sliver of eyeball under the lashes.
        lower = lower_lid(eye, landmarks)
        past = np.minimum((lower - poly[:n_up]) @ down, 0.0)
        poly[:n_up] += past[:, None] * down
        box = _roi(poly, 2, w, h)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        opening = _mask((y1 - y0, x1 - x0), poly, (x0, y0))
        if opening.max() < 0.05:
            continue
        size = (x1 - x0, y1 - y0)
        corners = list(eye.corners)
        move = _similarity(rig.landmarks[corners, :2] - eye.origin, landmarks[corners] - (x0, y0))
        k = np.hypot(move[0, 0], move[1, 0])
        ball = cv2.warpAffine(eye.eyeball, move, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ox, oy = eye.iris_offset
        cx, cy = landmarks[eye.iris_index] - (x0, y0)
        place = np.array([[k, 0, cx - k * ox], [0, k, cy - k * oy]], np.float64)
        iris = cv2.warpAffine(eye.iris_patch, place, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        ball += (iris[..., :3] - ball) * (iris[..., 3] * np.minimum(opening * 2, 1))[..., None]
        # The opening grown by a pixel (the rig painted that rim the lash colour), fading out
        # as the lids meet so a closed eye shows the lash line, not a sliver of eyeball.
        closing = min(max(float(opening.sum()) / max(0.15 * eye.open_area * k * k, 1e-6), 0.0), 1.0)
        rim = cv2.dilate((opening > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
        alpha = (rim * closing)[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi + (ball - roi) * alpha + 0.5, 0, 255).astype(np.uint8)


def composite_lids(frame: np.ndarray, rig: Rig, landmarks: np.ndarray, unblinked: np.ndarray) -> None:
    """Draw the closing upper lids (in place): the band between where each upper lid would be
    without the blink and where it is, filled with the lid's own skin: the skin colour round the
    eye (the same recipe on both eyes, half of it their common colour, so a blink never reads
    as a wink), the fine texture of the skin under the eye mirrored up across the lower lid,
    shaded as a lid curves (darker into the crease at its top and towards its edge), with the
    lashes along its edge. Nothing of the photo's brows, lashes or glasses is copied onto it."""
    h, w = frame.shape[:2]
    n_up = len(R.EYE_LEFT_UPPER)
    common = None
    for eye in rig.eyes:
        upper = list(eye.polygon[:n_up])
        now, before = landmarks[upper], unblinked[upper]
        if np.abs(now - before).max() < 0.5:
            continue
        lower = lower_lid(eye, landmarks)
        eye_w = float(np.hypot(*(now[-1] - now[0])))
        # As the lids meet the lid reaches all the way down to the lower lid (and a little over
        # its margin): no sliver of eyeball under the lashes.
        shut = np.clip(1 - opening_height(now, lower) / max(0.12 * eye_w, 1e-6), 0, 1)
        now = now + shut * (np.maximum(lower[:, 1], now[:, 1]) - now[:, 1] + 0.02 * eye_w)[:, None] * [0.0, 1.0]
        # From a little above where the lid was where the warp has stretched lashes or a low
        # brow down over it (darker there than the lid's skin), else from where it was.
        probe = (before[1:-1] - [0.0, 0.08 * eye_w]).astype(np.float32)
        seen = cv2.remap(frame, probe[:, :1].reshape(1, -1), probe[:, 1:].reshape(1, -1), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3).astype(np.float32)
        lifted = float(np.median(seen.mean(1))) < 0.85 * float(np.mean(eye.lid_color))
        band = np.concatenate([before - _LID_UP * lifted * shut * eye_w * np.array([0.0, 1.0]), now[::-1]])
        box = _roi(np.concatenate([band, lower]), int(np.ceil(0.12 * eye_w)) + 3, w, h)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        cover = _mask((y1 - y0, x1 - x0), band, (x0, y0))
        # Feathered at its top, so the lid blends into the skin above it.
        cover = np.minimum(cover, cv2.GaussianBlur(cover, (0, 0), max(0.03 * eye_w, 0.6)) * 1.6)
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        top = _curve_at(xs, before)
        edge = _curve_at(xs, now)
        floor = _curve_at(xs, lower)
        # Texture: the skin below the lower lid, mirrored up across it, high-passed and limited
        # so only its grain comes (not its shadows or a glasses frame).
        map_y = np.clip(2 * floor[None, :] + 0.15 * eye_w - ys, 0, h - 1).astype(np.float32)
        map_x = np.broadcast_to(xs[None, :], map_y.shape).astype(np.float32)
        src = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        grain = np.clip(src - cv2.GaussianBlur(src, (0, 0), max(0.06 * eye_w, 1.0)), -5, 5)
        if common is None:
            common = np.mean([e.lid_color for e in rig.eyes], 0)
        lid = _LID_GAIN * (np.asarray(eye.lid_color, np.float32) + common)
        # Shading across the lid: 0 at the crease (where the lid was), 1 at its edge.
        across = np.clip((ys - top[None, :]) / np.maximum(edge - top, 1.0)[None, :], 0, 1)
        # Its top continues the skin just above it, column by column (the median of three rows,
        # its lightness held near the lid's so a lash or a brow there is not carried down).
        rows = top[None, :] - np.array([[0.06], [0.11], [0.16]], np.float32) * eye_w
        above = cv2.remap(frame, np.broadcast_to(xs[None, :], rows.shape).astype(np.float32),
                          np.clip(rows, 0, h - 1).astype(np.float32), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        above = cv2.GaussianBlur(np.median(above, 0)[None], (0, 0), max(0.05 * eye_w, 0.8))[0]
        gain = np.clip(lid.mean() / np.maximum(above.mean(1, keepdims=True), 1.0), 0.9, 1.25)
        above = above * gain
        blend = np.clip(across / _LID_TOP, 0, 1)[..., None]
        colour = above[None, :, :] * (1 - blend) + lid * blend
        shade = 0.93 + 0.07 * np.sin(np.pi * np.clip(across * 1.15, 0, 1)) - 0.1 * across ** 4
        along = np.clip((xs - now[:, 0].min()) / max(eye_w, 1.0), 0, 1)
        shade = shade * (0.94 + 0.06 * np.sin(np.pi * along))[None, :]
        layer = colour * shade[..., None] + grain
        # The crease: a soft darker line just above where the lid was open.
        crease = np.exp(-((ys - top[None, :] + 0.05 * eye_w) / max(0.035 * eye_w, 0.6)) ** 2)
        layer *= (1 - 0.16 * shut * crease)[..., None]
        alpha = np.maximum(cover, 0.7 * shut * crease * (ys < top[None, :]))
        # Lashes along the edge, thicker mid-lid, folding down over the lower lid's margin as
        # the lids meet (one dark line, not two).
        lash = np.zeros((y1 - y0, x1 - x0), np.uint8)
        thick = max(_LASH * eye_w, 1.0)
        line = np.round((now - (x0, y0)) * 16).astype(np.int32)
        cv2.polylines(lash, [line], False, 255, max(1, int(round(0.6 * thick))), cv2.LINE_AA, shift=4)
        mid = line[2:-2]
        cv2.polylines(lash, [mid], False, 255, max(1, int(round(thick))), cv2.LINE_AA, shift=4)
        a_lash = cv2.GaussianBlur(lash, (0, 0), max(0.015 * eye_w, 0.5)).astype(np.float32) / 255 * (0.35 + 0.65 * shut)
        layer = layer + (np.asarray(eye.lash_color, np.float32) - layer) * a_lash[..., None]
        alpha = np.maximum(alpha, a_lash)[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi + (layer - roi) * alpha + 0.5, 0, 255).astype(np.uint8)


# The closed lid, chosen by looking at the six test portraits and by MediaPipe's blink on them:
# its colour (x the two eyes' mean skin colour), how far down it continues the skin above it
# (share of its height), the lashes' thickness and how far above the open lid's edge it starts
# where the warp has stretched lashes or a brow down (all in eye widths but the first two).
_LID_GAIN, _LID_TOP, _LASH, _LID_UP = 0.5, 0.6, 0.055, 0.2


def _curve_at(xs: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """A contour's y at each x (shape = xs.shape), held flat past its ends."""
    order = np.argsort(pts[:, 0])
    return np.interp(xs, pts[order, 0], pts[order, 1]).astype(np.float32)


def lower_lid(eye, landmarks: np.ndarray) -> np.ndarray:
    """An eye's lower contour from corner to corner, in the upper contour's order: shape = (n_up, 2)."""
    n_up = len(R.EYE_LEFT_UPPER)
    return landmarks[list(eye.polygon[n_up - 1:]) + [eye.polygon[0]]][::-1]


def opening_height(upper: np.ndarray, lower: np.ndarray) -> float:
    """The largest gap between an eye's upper and lower contours (both shape = (n, 2)), in pixels."""
    return float(np.max(np.hypot(*(upper[1:-1] - lower[1:-1]).T)))


# The upper dental arch as seen from the front, from the middle out to a mouth corner: each
# tooth's projected width in t (0..1 corner to corner of the inner lips; an incisor is about a
# fifth of a speaking mouth's opening) and how far its biting edge reaches below the upper lip
# (s units: outer-eye-corner distances, ~90 mm), and the same for the lower arch.
_UPPER_W = np.array([0.125, 0.10, 0.085, 0.07, 0.06, 0.06])
_UPPER_L = np.array([0.062, 0.050, 0.054, 0.040, 0.028, 0.018])
_LOWER_W = np.array([0.07, 0.065, 0.065])
_LOWER_L = np.array([0.026, 0.026, 0.020])


def _arch(widths: np.ndarray, lengths: np.ndarray):
    """Tooth boundaries (from the middle, in |t - 0.5|) and the lengths between them."""
    return np.concatenate([[0.0], np.cumsum(widths)]), lengths


_UPPER, _LOWER = _arch(_UPPER_W, _UPPER_L), _arch(_LOWER_W, _LOWER_L)


def _teeth(t: np.ndarray, band: np.ndarray, arch, length_scale, px: float) -> tuple[np.ndarray, np.ndarray]:
    """One dental arch: (coverage 0..1, shade) per pixel. `band` is the distance (s units) from
    the lip the arch hangs from; coverage is anti-aliased over a pixel (`px`, s units), each
    tooth's biting edge rounded at its corners; shade darkens the seams between teeth and the
    teeth towards the corners (they turn away, into the mouth's shadow)."""
    bounds, lengths = arch
    x = np.abs(t - 0.5)
    k = np.clip(np.searchsorted(bounds, x) - 1, 0, len(lengths) - 1)
    lo, hi = bounds[k], bounds[k + 1]
    d = np.clip((x - lo) / (hi - lo), 0, 1) * 2 - 1                  # -1..1 across the tooth
    length = lengths[k] * length_scale * (1 - 0.22 * d ** 6)         # rounded corners of the edge
    cover = np.clip((length - band) / px + 0.5, 0, 1) * (x < bounds[-1])
    seam_px = np.minimum(x - lo, hi - x) / px                        # pixels to the nearest seam
    shade = (1 - 0.16 * np.exp(-seam_px ** 2)) * (1 - 0.6 * np.clip(x / bounds[-1], 0, 1) ** 1.6)
    # The biting edge is translucent: a little darker over its last stretch.
    shade *= 1 - 0.18 * np.clip(1 - (length - band) / np.maximum(0.3 * length, px), 0, 1)
    return cover, shade


def composite_mouth(frame: np.ndarray, rig: Rig, landmarks: np.ndarray, weights: np.ndarray) -> None:
    """Fill the moved inner-lip opening with the mouth's interior (in place). The interior is
    computed only at the pixels it covers (the opening grown by its rim), as one row of pixels:
    every step below is per pixel, so this is the whole box's arithmetic on a fraction of it."""
    h, w = frame.shape[:2]
    poly = landmarks[_MOUTH_POLY]
    box = _roi(poly, 2 + rig.mouth.rim, w, h)
    if box is None:
        return
    x0, y0, x1, y1 = box
    opening = _mask((y1 - y0, x1 - x0), poly, (x0, y0))
    if opening.max() < 0.02:
        return                                              # lips together
    m = rig.mouth
    now = FaceFrame.of(landmarks)
    # How much interior shows: a photo with its lips (nearly) together keeps its own mouth until
    # they part further; sealed lips (p/b/m: mouthClose = jawOpen) show none, only their seam.
    extra = opening.sum() - (0.0 if m.photo_interior else m.open_area)
    closing = np.clip(extra / (0.0015 * now.s * now.s), 0, 1) * (1 - seal_fraction(weights) ** 2)
    if closing <= 0:
        return
    if m.photo_interior:
        # The opening grown by the rig's rim (painted lip colour there), not past the corners,
        # exactly as the rig painted it: what is drawn there is the photo's own lip and teeth,
        # so the rim's edge never shows; the edges that do (teeth against cavity) are smooth.
        grown = cv2.dilate((opening > 0.02).astype(np.uint8), np.ones((m.rim, m.rim), np.uint8))
    else:
        # The anti-aliased opening grown by a pixel (over the stretched seam of the lips).
        grown = cv2.dilate(opening, np.ones((3, 3), np.uint8))
    rows, cols = np.nonzero(grown)
    if not len(rows):
        return
    lips = LipCurves.of(now, landmarks[_UP], landmarks[_LO])
    # The covered pixels as one row: shape = (1, n) (a picture one pixel high, for cv2.remap).
    px_xy = np.stack([cols + x0, rows + y0], -1).astype(np.float32)[None]
    uv = now.to_local(px_xy).astype(np.float32)
    t_raw = (uv[..., 0] - lips.ua) / lips.span
    t = np.clip(t_raw, 0, 1)
    up, lo = lips.up(t).astype(np.float32), lips.lo(t).astype(np.float32)
    below_upper = uv[..., 1] - up                            # s units, >= 0 inside
    above_lower = lo - uv[..., 1]
    gap = np.maximum(below_upper + above_lower, 1e-4)
    px = 1.0 / now.s                                         # one pixel in s units
    side = 1 - np.clip(np.abs(t - 0.5) / 0.5, 0, 1) ** 2     # 1 mid-mouth, 0 at the corners
    out = _cavity(m.lip_color, t, side, below_upper, above_lower, gap, px)
    inside = opening[rows, cols][None]
    if m.photo_interior:
        out = _photo_interior(rig, out, t, t_raw, below_upper, above_lower)
        rim = grown[rows, cols][None].astype(np.float32) * (((t_raw >= 0) & (t_raw <= 1)) | (inside > 0.02))
    else:
        out = _synth_teeth(m.teeth_color, out, t, below_upper, above_lower, gap, px, weights)
        # Its edge kept soft, and not past the corners.
        rim = grown[rows, cols][None] * (np.clip(np.minimum(t_raw, 1 - t_raw) * lips.span / (2 * px) + 0.5, 0, 1)
                                         * (1 - inside) + inside)
    alpha = (rim * closing)[0, :, None]
    ys, xs = rows + y0, cols + x0
    under = frame[ys, xs].astype(np.float32)
    frame[ys, xs] = np.clip(under + (out[0] - under) * alpha + 0.5, 0, 255).astype(np.uint8)


def _cavity(lip_color, t, side, below_upper, above_lower, gap, px):
    """The dark of the mouth behind the teeth, warm (the lips' hue, deepened towards red) and
    darker towards the back and the corners; a tongue on its floor once the jaw is open enough
    for the floor to show, lit at its front, falling into the dark behind."""
    warm = np.asarray(lip_color, np.float32) * np.array([1.0, 0.72, 0.7], np.float32)
    mid = np.clip(np.minimum(below_upper, above_lower) / np.maximum(0.5 * gap, px), 0, 1)
    shadow = (0.6 + 0.4 * np.clip(below_upper / 0.03, 0, 1)) * (0.75 + 0.25 * np.clip(above_lower / 0.02, 0, 1))
    cavity = (shadow * (0.42 - 0.2 * mid) * (0.5 + 0.5 * side))[..., None] * warm
    # Tongue: its top an arch from corner to corner, rising to a third of the gap mid-mouth.
    show = np.clip((gap - 0.05) / 0.06, 0, 1)
    top = 0.34 * gap * np.sqrt(np.clip(1 - ((t - 0.5) / 0.42) ** 2, 0, 1)) * show
    cover = np.clip((top - above_lower) / px + 0.5, 0, 1)[..., None]
    front = np.clip(1 - above_lower / np.maximum(top, px), 0, 1)      # 1 at the lower lip, 0 at its top
    tongue = np.asarray(lip_color, np.float32) * np.array([0.95, 0.6, 0.62], np.float32) * \
        ((0.36 + 0.3 * front) * (0.55 + 0.45 * side))[..., None]
    return cavity + (tongue - cavity) * cover


def _synth_teeth(teeth_color, out, t, below_upper, above_lower, gap, px, weights):
    """Upper teeth hanging from the upper lip (more of them as it lifts), lower teeth rising
    from the lower lip once the jaw is well open; the lower in the upper's shadow."""
    teeth = np.asarray(teeth_color, np.float32)
    open_scale = np.clip((gap - 0.02) / 0.05, 0, 1)          # no teeth in a slit
    lift = 1 + 0.8 * float(weights[BS["mouthUpperUpLeft"]] + weights[BS["mouthUpperUpRight"]]) / 2
    lo_scale = np.clip((gap - 0.12) / 0.08, 0, 1)             # only when well open
    for band, arch, scale, bright in ((above_lower, _LOWER, lo_scale, 0.72), (below_upper, _UPPER, open_scale * lift, 1.0)):
        cover, shade = _teeth(t, band, arch, scale, px)
        # Lit from the lip it comes from, fading into the dark towards its edge.
        col = teeth * (bright * shade * (0.9 + 0.1 * np.clip(1 - band / 0.05, 0, 1)))[..., None]
        # The lips shade what is just inside them (the upper lip overhangs more).
        col *= ((0.8 + 0.2 * np.clip(below_upper / 0.02, 0, 1)) * (0.85 + 0.15 * np.clip(above_lower / 0.015, 0, 1)))[..., None]
        out = out + (col - out) * cover[..., None]
    return out


def _photo_interior(rig, out, t, t_raw, below_upper, above_lower):
    """The photo's own interior: its upper half hangs from the upper lip, its lower half rides
    on the lower lip; a wider opening than the photo's shows cavity between them. The halves
    end in an anti-aliased edge (a pixel wide), not a stair-step. Arrays: one row of pixels,
    shape = (1, n) (`out`: (1, n, 3))."""
    base, src_lips = rig.frame, rig.mouth.curves
    px = 1.0 / base.s
    gap = below_upper + above_lower
    src_up, src_lo = src_lips.up(t).astype(np.float32), src_lips.lo(t).astype(np.float32)
    split = np.minimum(np.maximum((src_lo - src_up) / 2, 1e-4), np.maximum(gap / 2, 0))
    u_src = src_lips.ua + t_raw * src_lips.span   # unclipped: identity at rest, past the corners too
    ox, oy = (float(v) for v in base.origin)
    (exx, exy), (eyx, eyy) = (base.s * np.asarray(base.ex, np.float64)), (base.s * np.asarray(base.ey, np.float64))
    ux, uy = ox + u_src * exx, oy + u_src * exy
    blend = np.zeros_like(out)
    total = np.zeros(out.shape[:2] + (1,), np.float32)
    for v_src, band in ((src_up + below_upper, below_upper), (src_lo - above_lower, above_lower)):
        sample = cv2.remap(rig.photo, (ux + v_src * eyx).astype(np.float32), (uy + v_src * eyy).astype(np.float32),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        # Where the halves meet (split = gap / 2) their coverages add up to one.
        cover = np.clip((split - band) / px + 0.5, 0, 1)[..., None]
        blend += sample * cover
        total += cover
    return blend + out * np.clip(1 - total, 0, 1)
