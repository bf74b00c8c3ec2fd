"""The fast renderer gives the reference renderer's frames, within a stated tolerance.

The reference is `Renderer(rig, exact=True)`: every grid point through all Newton steps from a
cold start, the whole frame remapped with exact float coordinates, nothing skipped. It is the
renderer as it was before the one-remap rewrite (commit 72cc1a3): rendered side by side on the
six test portraits (`tests/render_reference.py compare`), it differed from that commit's frames
by a mean of at most 0.001 levels (float32 head turn instead of float64). Since then both paths
mend the specks of a folded face (`cpu.despeckle`): against commit 6a3f2aa (before it) the
turned poses differ by a mean of up to ~1 level (the specks), the others by at most 0.07, the
spoken take's worst frame by 0.02 (`render_reference.py make` there, `compare` here).

Why these bounds. The fast path snaps the final remap's coordinates to 1/32 pixel (OpenCV's
fixed-point maps), stops Newton at a point once its step is under 0.02 pixel, treats moves
under 1/256 pixel as none, and samples the forward map exactly where the reference's
2-channel remap snaps it to 1/32 of a grid cell. Each is a level at most at a sharp edge, and
measured on the six portraits (poses, and 60 frames of a spoken take with its head motion) the
frames differ by a mean of at most 0.10 levels with at most 0.15 % of the values more than two
levels apart. Where the head turns far enough for the face to fold over itself (its far cheek,
the jaw over the collar: yaw 15-25 degrees here), Newton has no one answer, and a pixel there may
show either layer of the fold in either renderer (a speck either way): up to 2.0 % of the values
differ there, by up to the whole contrast of the edge. So: the tight bound everywhere but at
folds, and at folds a bound on how much of the frame differs, none on by how much.
"""

from __future__ import annotations

import numpy as np
import pytest
from render_reference import TAKE_FRAMES, differences, poses, take

from talkinghead.face import FaceLandmarker, analyze_portrait
from talkinghead.render.cpu import Renderer, render
from talkinghead.track import FaceParams

SIZE = 512
MEAN_MAX, OFF_MAX = 0.15, 0.003                 # no fold: mean levels, share > 2 levels off
FOLD_MEAN_MAX, FOLD_OFF_MAX = 0.5, 0.025        # a turned head's fold
FOLDS = ("turned", "turned far")


@pytest.fixture(scope="module")
def landmarker():
    with FaceLandmarker() as lm:
        yield lm


@pytest.fixture(scope="module")
def track():
    return take()


def _rig(name, landmarker):
    from portraits import Unavailable, load

    try:
        p = load(name)
    except Unavailable as exc:
        pytest.skip(f"portrait {name} not available: {exc}")
    return analyze_portrait(p.image, SIZE, p.framing, landmarker)


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "obama2", "obama3"])
def test_fast_frames_equal_the_reference(name, landmarker, track):
    rig = _rig(name, landmarker)
    fast, exact = Renderer(rig), Renderer(rig, exact=True)
    for label, (w, h) in poses().items():
        p = FaceParams(0.0, w, h)
        mean, off, top = differences(fast.render(p), exact.render(p))
        limits = (FOLD_MEAN_MAX, FOLD_OFF_MAX) if label in FOLDS else (MEAN_MAX, OFF_MAX)
        assert mean < limits[0] and off < limits[1], f"{name} {label}: mean {mean:.3f}, {100 * off:.3f} % off, max {top}"
    for i in range(0, TAKE_FRAMES, 2):
        p = track.frame(i)
        mean, off, top = differences(fast.render(p), exact.render(p))
        assert mean < MEAN_MAX and off < OFF_MAX, f"{name} take frame {i}: mean {mean:.3f}, {100 * off:.3f} % off"


def test_still_pixels_are_the_portraits_and_rest_is_exact(landmarker):
    """Where nothing moves the frame is the portrait byte for byte (the fast path copies it
    there, without a remap); the rest frame is the reference's exactly."""
    rig = _rig("astronaut", landmarker)
    rest = FaceParams(0.0, np.zeros(52, np.float32))
    assert np.array_equal(render(rig, rest), Renderer(rig, exact=True).render(rest))
    w, h = poses()["open vowel"]
    frame = render(rig, FaceParams(0.0, w, h))
    changed = (frame != rig.image).any(-1)
    assert 0 < changed.mean() < 0.35                      # the mouth, the jaw and the skin round them
    assert not changed[:100].any()                        # the top of the head, the background


def test_frames_do_not_depend_on_the_frames_before(landmarker, track):
    """One renderer for a whole take gives each frame as a fresh one would: a stream, a batch
    and a single frame agree."""
    rig = _rig("astronaut", landmarker)
    r = Renderer(rig)
    for i in (40, 5, 41):
        assert np.array_equal(r.render(track.frame(i)), render(rig, track.frame(i)))
