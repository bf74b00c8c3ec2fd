"""What a person sees in a rendered mouth and eyes, as numbers measured on the frame itself with
the landmark model's own contours (not the rig's): shared by tests/test_portraits.py and
benchmarks/portrait_look.py.

Thresholds, and why:
- DARK_MAX 0.45: the darkest fifth of the pixels inside the inner lips, over the lips' median
  L*. The issue's photos of real open mouths measure 0.16-0.31 (our two, obama.jpg and
  obama2.jpg, 0.20 and 0.31 on the photo itself); the old invented interiors 0.56-0.90. 0.45 sits
  above every real mouth and below every flat plate.
- OFF_COLOUR_MAX 1 %: pixels whose Lab hue is green (a* < -4) or blue (b* < -4) with some
  chroma; a mouth's cavity, tongue, gums and teeth are all warm (a*, b* >= 0), and the real
  mouths measure 0 %. 1 % leaves room for a few anti-aliased pixels against a blue background.
- TEETH_OVER_SCLERA 3 L*: the brightest interior pixels (95th percentile L*) at most this much
  over the sclera's (the same percentile inside the eye openings, off the iris); 3 L* is about
  the spread between the two eyes' sclera on our portraits. Where the eyes are too small or
  shaded to show their white (the sclera measures no lighter than the skin round them: biden,
  grace_hopper, obama3 at 512 px), the renderer's stand-in, SKIN_TO_TEETH over that skin, is
  the reference instead (`teeth_reference`).
- SHIMMER_MAX 4 L*: the mean |dL*| inside the mouth between jawOpen 0.50 and 0.51 (a steady
  opening), where the warped skin around it moves by about 1 L*; teeth that pop or a texture
  that crawls moves tens of L* over their area.
"""

from __future__ import annotations

import cv2
import numpy as np

LIP_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIP_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIP_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIP_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
EYES = ((33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7), 468, 469),\
       ((263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249), 473, 474)

DARK_MAX = 0.45
OFF_COLOUR_MAX = 0.01
TEETH_OVER_SCLERA = 3.0
SHIMMER_MAX = 4.0


def lab(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> CIE Lab float32 (L* 0..100, a*, b*)."""
    return cv2.cvtColor(frame.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def _poly(shape, pts) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(pts[:, :2]).astype(np.int32)], 1)
    return m.astype(bool)


def mouth_masks(shape, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside the inner lips, shrunk by a pixel; the lips themselves), bool (H, W)."""
    inner = _poly(shape, lm[list(LIP_UPPER_INNER) + list(LIP_LOWER_INNER[::-1])])
    inner = cv2.erode(inner.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    lips = _poly(shape, lm[list(LIP_UPPER_OUTER) + list(LIP_UPPER_INNER[::-1])]) | \
        _poly(shape, lm[list(LIP_LOWER_OUTER) + list(LIP_LOWER_INNER[::-1])])
    return inner, lips & ~inner


def sclera_l95(frame: np.ndarray, lm: np.ndarray) -> float:
    """95th percentile L* of the eye openings off the irises."""
    L = lab(frame)[..., 0]
    vals = []
    for contour, c, ring in EYES:
        m = _poly(frame.shape, lm[list(contour)])
        yy, xx = np.mgrid[:frame.shape[0], :frame.shape[1]]
        r = np.hypot(*(lm[ring, :2] - lm[c, :2]))
        m &= np.hypot(xx - lm[c, 0], yy - lm[c, 1]) > 1.15 * r
        vals.append(L[m])
    v = np.concatenate(vals)
    return float(np.percentile(v, 95)) if len(v) >= 8 else float("nan")


def skin_l(frame: np.ndarray, lm: np.ndarray) -> float:
    """Median L* of the skin just below the eyes (a band under each lower lid)."""
    L = lab(frame)[..., 0]
    vals = []
    for contour, _, _ in EYES:
        pts = lm[list(contour), :2]
        w = np.hypot(*(pts[8] - pts[0]))
        below = pts[8:].copy()
        band = np.concatenate([below + [0, 0.15 * w], (below + [0, 0.35 * w])[::-1]])
        vals.append(L[_poly(frame.shape, band)])
    return float(np.median(np.concatenate(vals)))


def teeth_reference(frame: np.ndarray, lm: np.ndarray) -> float:
    """What synthesized teeth may reach (L*): the sclera, or where it measures no lighter than
    the skin round the eyes, that skin plus the renderer's SKIN_TO_TEETH."""
    from talkinghead.face.rig import SKIN_TO_TEETH

    sclera, skin = sclera_l95(frame, lm), skin_l(frame, lm)
    return sclera if sclera > skin else skin + SKIN_TO_TEETH


def mouth_look(frame: np.ndarray, lm: np.ndarray) -> dict[str, float]:
    """Figures of one frame's mouth, given the landmark model's landmarks on it (478, 2+)
    pixels: dark (darkest fifth's mean L* / lips' median L*), off_colour (share of green/blue
    interior pixels), teeth (95th percentile interior L*), sclera (the same in the eyes),
    n (interior pixels)."""
    inner, lips = mouth_masks(frame.shape, lm)
    c = lab(frame)
    L = c[..., 0][inner]
    if len(L) < 10:
        return {"dark": float("nan"), "off_colour": float("nan"), "teeth": float("nan"),
                "sclera": sclera_l95(frame, lm), "n": float(len(L))}
    darkest = np.sort(L)[: max(len(L) // 5, 1)].mean()
    a, b = c[..., 1][inner], c[..., 2][inner]
    chroma = np.hypot(a, b)
    off = ((a < -4) | (b < -4)) & (chroma > 5)
    return {"dark": float(darkest / max(np.median(c[..., 0][lips]), 1e-3)), "off_colour": float(off.mean()),
            "teeth": float(np.percentile(L, 95)), "sclera": sclera_l95(frame, lm), "n": float(len(L))}


def shimmer(a: np.ndarray, b: np.ndarray, lm: np.ndarray) -> float:
    """Mean |dL*| inside the inner lips (landmarks of frame a) between two frames."""
    inner, _ = mouth_masks(a.shape, lm)
    if inner.sum() < 10:
        return float("nan")
    return float(np.abs(lab(a)[..., 0] - lab(b)[..., 0])[inner].mean())
