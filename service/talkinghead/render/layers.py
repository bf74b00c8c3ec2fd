"""What a warp cannot make, drawn over the warped frame in small regions of interest.

- Eyes: the iris (cut out of the photo by the rig) is drawn at its moved centre, clipped by the
  moved eye opening, so gaze moves the iris inside fixed lids and a blink covers it.
- Mouth: inside the moved inner-lip contour, the interior. Positions there are measured from
  the moved upper lip down and from the moved lower lip up, in the face's own frame: the upper
  teeth hang from the upper lip, the lower teeth and the tongue ride on the jaw, and the
  cavity fills what is between. The teeth are the photo's own when it shows them, otherwise
  synthesized: shaded with the face's light, darker towards the corners and the back.
"""

from __future__ import annotations

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
    x0, y0 = np.floor(points.min(0)).astype(int) - pad
    x1, y1 = np.ceil(points.max(0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _mask(shape: tuple[int, int], pts: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round((pts - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return m.astype(np.float32) * (1 / 255)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the similarity (rotation, scale, shift) taking src[0], src[1] to dst[0], dst[1]."""
    a, b = src[1] - src[0], dst[1] - dst[0]
    k = complex(b[0], b[1]) / complex(a[0], a[1]) if np.hypot(*a) > 1e-6 else 1.0
    m = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return np.column_stack([m, dst[0] - m @ src[0]])


def composite_eyes(frame: np.ndarray, rig: Rig, landmarks: np.ndarray) -> None:
    """Draw each eyeball (moved rigidly with the eye's corners) and its iris (at its moved
    centre) inside the moved eye opening (in place). A closed eye has no opening to draw in."""
    h, w = frame.shape[:2]
    for eye in rig.eyes:
        if eye.iris_radius <= 0:
            continue
        poly = landmarks[list(eye.polygon)]
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
        ball += (iris[..., :3] - ball) * (iris[..., 3] * np.clip(opening * 2, 0, 1))[..., None]
        # The opening grown by a pixel (the rig painted that rim the lash colour), fading out
        # as the lids meet so a closed eye shows the lash line, not a sliver of eyeball.
        closing = np.clip(opening.sum() / max(0.15 * eye.open_area * k * k, 1e-6), 0, 1)
        rim = cv2.dilate((opening > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
        alpha = (rim * closing)[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi + (ball - roi) * alpha + 0.5, 0, 255).astype(np.uint8)


def composite_lids(frame: np.ndarray, rig: Rig, landmarks: np.ndarray, unblinked: np.ndarray) -> None:
    """Draw the closing upper lids (in place): the band between where each upper lid would be
    without the blink and where it is, filled with the lid's own skin (lighter than the
    lashes the warp would otherwise stretch over the eye), the lash line along its edge."""
    h, w = frame.shape[:2]
    n_up = len(R.EYE_LEFT_UPPER)
    for eye in rig.eyes:
        upper = list(eye.polygon[:n_up])
        now, before = landmarks[upper], unblinked[upper]
        if np.abs(now - before).max() < 0.5:
            continue
        band = np.concatenate([before, now[::-1]])
        box = _roi(band, 3, w, h)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        eye_w = np.hypot(*(now[-1] - now[0]))
        cover = _mask((y1 - y0, x1 - x0), band, (x0, y0))
        # Feathered, so the lid's top blends into the skin above it.
        cover = np.minimum(cover, cv2.GaussianBlur(cover, (0, 0), max(0.03 * eye_w, 0.6)) * 1.6)
        # The lid's skin: the skin just above where the lid was, mirrored down across that
        # line (continuous with it, with the photo's own texture and light), shaded a little
        # darker towards the lashes, where the lid curves away.
        xs = np.arange(x0, x1, dtype=np.float32)
        order = np.argsort(before[:, 0])
        top = np.interp(xs, before[order, 0], before[order, 1]).astype(np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        map_y = np.clip(2 * top[None, :] - ys, 0, h - 1).astype(np.float32)
        map_x = np.broadcast_to(xs[None, :], map_y.shape).astype(np.float32)
        skin = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        depth = np.clip((ys - top[None, :]) / max(0.3 * eye_w, 1.0), 0, 1)
        layer = skin * (1.0 - 0.12 * depth)[..., None]
        lash = np.zeros((y1 - y0, x1 - x0), np.uint8)
        thick = max(1, int(round(0.035 * eye_w)))
        # As the lids meet, the lashes fold down over the lower lid's margin: one dark line,
        # not two (two thin dark lines read as an eye still a little open).
        shut = np.clip(1 - opening_height(now, eye, landmarks) / max(0.05 * eye_w, 1e-6), 0, 1)
        line = now + np.array([0.0, 0.6 * thick * shut])
        cv2.polylines(lash, [np.round((line - (x0, y0)) * 16).astype(np.int32)], False, 255, thick,
                      cv2.LINE_AA, shift=4)
        lash = cv2.GaussianBlur(lash, (0, 0), max(0.012 * eye_w, 0.5))
        a_lash = lash.astype(np.float32)[..., None] / 255
        layer = layer + (np.asarray(eye.lash_color, np.float32) - layer) * a_lash
        alpha = np.maximum(cover, lash.astype(np.float32) / 255)[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi + (layer - roi) * alpha + 0.5, 0, 255).astype(np.uint8)


def opening_height(upper: np.ndarray, eye, landmarks: np.ndarray) -> float:
    """The largest gap between an eye's upper and lower contours, in pixels."""
    n_up = len(upper)
    lower = landmarks[list(eye.polygon[n_up - 1:]) + [eye.polygon[0]]][::-1]
    return float(np.max(np.hypot(*(upper[1:-1] - lower[1:-1]).T)))


def composite_mouth(frame: np.ndarray, rig: Rig, landmarks: np.ndarray, weights: np.ndarray) -> None:
    """Fill the moved inner-lip opening with the mouth's interior (in place)."""
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
    lips = LipCurves.of(now, landmarks[_UP], landmarks[_LO])
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    uv = now.to_local(np.stack([xs, ys], -1))
    t_raw = (uv[..., 0] - lips.ua) / lips.span
    t = np.clip(t_raw, 0, 1)
    below_upper = uv[..., 1] - lips.up(t)                    # s units, >= 0 inside
    above_lower = lips.lo(t) - uv[..., 1]
    gap = np.maximum(below_upper + above_lower, 1e-4)
    side = 1 - np.clip(np.abs(t - 0.5) / 0.5, 0, 1) ** 3     # 1 mid-mouth, 0 at the corners
    depth = np.clip(above_lower / np.maximum(gap, 0.02), 0, 1)  # 0 at the lower lip, 1 at the upper
    cavity = m.lip_color * (0.42 - 0.17 * depth)[..., None] * (0.55 + 0.45 * side)[..., None]
    # Tongue: a low, rounded hump on the floor of the mouth behind the lower teeth, seen
    # when the jaw is well open.
    lower_band = _photo_half_gap(m.curves, t) if m.photo_interior else _lower_teeth_height(t, gap)
    tongue_h = np.clip(gap * 0.3, 0, 0.06) * (1 - ((t - 0.5) / 0.36) ** 2).clip(0)
    tongue = (above_lower < lower_band + tongue_h)[..., None]
    hump = np.clip((lower_band + tongue_h - above_lower) / np.maximum(tongue_h, 1e-4), 0, 1)   # 0 at its top edge
    tongue_col = (m.lip_color * np.array([0.8, 0.52, 0.55]) + 10) * ((0.5 + 0.35 * hump) * (0.6 + 0.4 * side))[..., None]
    out = np.where(tongue, tongue_col, cavity)
    # Lips shade what is just inside them.
    edge = np.clip(np.minimum(below_upper, above_lower) / 0.012, 0, 1)
    out *= (0.65 + 0.35 * edge)[..., None]
    if m.photo_interior:
        out = _photo_interior(rig, out, t, t_raw, below_upper, above_lower)
    else:
        out = _synth_interior(rig, out, t, side, below_upper, above_lower, gap)
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    # The opening grown by the rig's rim (painted lip colour there), not past the corners.
    rim = cv2.dilate((opening > 0.02).astype(np.uint8), np.ones((m.rim, m.rim), np.uint8)).astype(np.float32)
    rim *= ((t_raw >= 0) & (t_raw <= 1)) | (opening > 0.02)       # not past the corners (as the rig)
    alpha = (rim * closing)[..., None]
    frame[y0:y1, x0:x1] = np.clip(roi + (out - roi) * alpha + 0.5, 0, 255).astype(np.uint8)


def _synth_interior(rig, out, t, side, below_upper, above_lower, gap):
    m = rig.mouth
    # Upper incisors and canines hang from the upper lip; lower ones show when wide open.
    up_h = 0.07 * np.clip(1 - ((t - 0.5) / 0.46) ** 4, 0, 1)
    lo_h = _lower_teeth_height(t, gap)
    tooth_w = 0.115                                           # in t: the central incisors
    ridge = np.abs(((t - 0.5) / tooth_w + 0.5) % 1.0 - 0.5)   # 0 at tooth edges
    gaps = 0.93 + 0.07 * np.clip(ridge / 0.12, 0, 1)
    for band, height, bright in ((above_lower, lo_h, 0.8), (below_upper, up_h, 1.0)):
        tooth = band < height
        tip = np.clip((height - band) / np.maximum(height * 0.35, 1e-4), 0, 1)   # darker at the biting edge
        col = m.teeth_color * (bright * (0.62 + 0.38 * side) * gaps * (0.85 + 0.15 * tip))[..., None]
        out = np.where(tooth[..., None], col, out)
    return out


def _lower_teeth_height(t: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Synthesized lower teeth show (in s units) only once the jaw is well open."""
    return 0.055 * np.clip((gap - 0.07) / 0.08, 0, 1) * np.clip(1 - ((t - 0.5) / 0.40) ** 4, 0, 1)


def _photo_half_gap(curves: LipCurves, t: np.ndarray) -> np.ndarray:
    return np.maximum((curves.lo(t) - curves.up(t)) / 2, 1e-4)


def _photo_interior(rig, out, t, t_raw, below_upper, above_lower):
    """The photo's own interior: its upper half hangs from the upper lip, its lower half rides
    on the lower lip; a wider opening than the photo's shows cavity between them."""
    base, src_lips = rig.frame, rig.mouth.curves
    half = _photo_half_gap(src_lips, t)
    use_upper = (below_upper <= half) & (below_upper <= above_lower)
    use_lower = (above_lower <= half) & ~use_upper
    u_src = src_lips.ua + t_raw * src_lips.span   # unclipped: identity at rest, past the corners too
    v_src = np.where(use_upper, src_lips.up(t) + below_upper, src_lips.lo(t) - above_lower)
    src = base.origin + base.s * (u_src[..., None] * base.ex + v_src[..., None] * base.ey)
    sample = cv2.remap(rig.photo, src[..., 0].astype(np.float32), src[..., 1].astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    use = (use_upper | use_lower)[..., None]
    return np.where(use, sample, out)
