"""MediaPipe face-mesh landmark indices the rig needs, named by what they are.

Sides are the subject's: LEFT = the subject's left = the image's right in a photo that is not
mirrored (MediaPipe's "left eye" is landmark 263's eye, which is the image's right eye).
Contours run from one corner to the other so that index k of an upper contour pairs with
index k of the matching lower contour (same position along the mouth or the eye).
"""

from __future__ import annotations

import numpy as np

N_MESH = 468      # face-mesh vertices (the tessellation uses these)
N_LANDMARKS = 478  # + 10 iris points

LIP_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIP_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIP_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIP_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_CORNERS = (61, 291)           # outer corners: subject's right, left
MOUTH_INNER_CORNERS = (78, 308)

EYE_RIGHT_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)   # image left
EYE_RIGHT_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_LEFT_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)   # image right
EYE_LEFT_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
EYE_OUTER_CORNERS = (33, 263)       # right, left: the face's horizontal axis and scale

IRIS_RIGHT = (468, 469, 470, 471, 472)   # centre first, then the ring
IRIS_LEFT = (473, 474, 475, 476, 477)

BROW_RIGHT_INNER = (107, 55, 66, 65)
BROW_RIGHT_OUTER = (70, 46, 63, 53)
BROW_RIGHT_MID = (105, 52)
BROW_LEFT_INNER = (336, 285, 296, 295)
BROW_LEFT_OUTER = (300, 276, 293, 283)
BROW_LEFT_MID = (334, 282)

NOSE_WING_RIGHT = (129, 98, 64, 48, 102)
NOSE_WING_LEFT = (358, 327, 294, 278, 331)
CHIN = 152
JAW_HINGES = (234, 454)   # face-oval points at the ears: the jaw rotates about the line through them

FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def mesh_triangles() -> np.ndarray:
    """MediaPipe's face-mesh tessellation plus fans that close its three holes (the mouth and
    both eye openings), so every point inside the face oval lies in a triangle.

    shape = (n_triangles, 3) int32 landmark indices.
    """
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as conn

    edges = conn.FACE_LANDMARKS_TESSELATION
    tris = [(edges[i].start, edges[i + 1].start, edges[i + 2].start) for i in range(0, len(edges), 3)]
    # Holes as strips between the paired upper and lower contours: a point inside the opening
    # then interpolates between the upper and the lower lid (or lip) at the same position.
    for upper, lower in ((LIP_UPPER_INNER, LIP_LOWER_INNER), (EYE_RIGHT_UPPER, EYE_RIGHT_LOWER),
                         (EYE_LEFT_UPPER, EYE_LEFT_LOWER)):
        for k in range(len(upper) - 1):
            a, b, c, d = upper[k], upper[k + 1], lower[k], lower[k + 1]
            if k == 0:
                tris.append((a, b, d))              # a == c: the corner
            elif k == len(upper) - 2:
                tris.append((a, b, c))              # b == d: the other corner
            else:
                tris += [(a, b, d), (a, d, c)]
    return np.asarray(tris, np.int32)


def contour_polygon(upper: tuple[int, ...], lower: tuple[int, ...]) -> tuple[int, ...]:
    """A closed polygon: along the upper contour, back along the lower one (corners once)."""
    return tuple(upper) + tuple(lower[-2:0:-1])
