"""The renderer, closed loop: the real landmark model measures what the rendered frames show.

Everything runs on a real portrait (skimage's astronaut) through the real MediaPipe model; the
speech clips are festival's, whose phone timings are known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from talkinghead.arkit import BS, pose_vector
from talkinghead.face import FaceLandmarker, analyze_portrait
from talkinghead.render import deformed_landmarks, render
from talkinghead.track import FaceParams, HeadPose

SIZE = 512


@pytest.fixture(scope="module")
def landmarker():
    with FaceLandmarker() as lm:
        yield lm


@pytest.fixture(scope="module")
def rig(landmarker):
    return analyze_portrait(data.astronaut(), SIZE, "face", landmarker)


def frame(rig, head: HeadPose | None = None, **weights: float) -> np.ndarray:
    return render(rig, FaceParams(t=0.0, blendshapes=pose_vector(weights), head=head or HeadPose()))


def measure(landmarker, image):
    face = landmarker.detect(image)
    assert face is not None, "the landmark model found no face in a rendered frame"
    return face


def lip_gap(face) -> float:
    """Inner-lip opening at the middle of the mouth, in outer-eye-corner distances."""
    lm = face.landmarks
    s = np.hypot(*(lm[263, :2] - lm[33, :2]))
    return float(np.hypot(*(lm[14, :2] - lm[13, :2])) / s)


def test_rest_frame_is_the_photo(rig):
    rest = frame(rig)
    assert rest.shape == (SIZE, SIZE, 3) and rest.dtype == np.uint8
    assert np.abs(rest.astype(int) - rig.photo).max() <= 2


@pytest.mark.parametrize("head, weights", [
    (HeadPose(yaw=20), {}), (HeadPose(yaw=-20, pitch=10), {}), (HeadPose(roll=15, x=8, y=-5, z=20), {}),
    (HeadPose(), {"jawOpen": 0.8, "mouthSmile*": 1, "eyeBlink*": 1, "browInnerUp": 1}),
])
def test_far_pixels_stay_and_frames_are_sane(rig, head, weights):
    out = frame(rig, head, **weights)
    assert np.isfinite(out).all() and out.mean() > 40
    corner = SIZE // 8
    for ys, xs in ((slice(0, corner), slice(0, corner)), (slice(0, corner), slice(-corner, None)),
                   (slice(-corner // 2, None), slice(0, corner)), (slice(-corner // 2, None), slice(-corner, None))):
        assert np.array_equal(out[ys, xs], rig.photo[ys, xs]), "background corners / torso moved"
    assert not np.array_equal(out, rig.photo)


def test_measured_jaw_follows_commanded_jaw(rig, landmarker):
    commanded = np.linspace(0.0, 0.8, 9)
    measured = [measure(landmarker, frame(rig, jawOpen=j)).blendshape("jawOpen") for j in commanded]
    r = np.corrcoef(commanded, measured)[0, 1]
    assert r >= 0.9, f"jawOpen measured {np.round(measured, 2)} for {commanded}"
    assert measured[-1] > measured[0] + 0.2


def test_full_blink_is_measured_as_a_blink(rig, landmarker):
    rest = measure(landmarker, frame(rig))
    shut = measure(landmarker, frame(rig, eyeBlinkLeft=1, eyeBlinkRight=1))
    closed = [shut.blendshape(f"eyeBlink{side}") for side in ("Left", "Right")]
    assert np.mean(closed) >= 0.5 and min(closed) >= 0.45, closed
    assert max(rest.blendshape("eyeBlinkLeft"), rest.blendshape("eyeBlinkRight")) < 0.2


def test_one_eye_blinks_the_subjects_own_side(rig, landmarker):
    """eyeBlinkLeft is the subject's left eye: the image's right eye, and MediaPipe's Left too."""
    face = measure(landmarker, frame(rig, eyeBlinkLeft=1))
    assert face.blendshape("eyeBlinkLeft") > face.blendshape("eyeBlinkRight") + 0.15
    lm = face.landmarks
    assert np.hypot(*(lm[386, :2] - lm[374, :2])) < 0.7 * np.hypot(*(lm[159, :2] - lm[145, :2]))


@pytest.mark.parametrize("axis, angle", [("yaw", 20), ("yaw", -20), ("yaw", 10), ("pitch", 15), ("pitch", -15),
                                         ("pitch", 8), ("roll", 15), ("roll", -10)])
def test_head_pose_is_measured_back(rig, landmarker, axis, angle):
    rest = np.array(measure(landmarker, frame(rig)).head_angles)
    turned = np.array(measure(landmarker, frame(rig, HeadPose(**{axis: angle}))).head_angles)
    delta = dict(zip(("yaw", "pitch", "roll"), turned - rest))
    assert abs(delta[axis] - angle) <= 3.0, f"commanded {axis} {angle}, measured {delta}"


def test_gaze_moves_the_irises_inside_the_eyes(rig, landmarker):
    rest = measure(landmarker, frame(rig)).landmarks
    look = measure(landmarker, frame(rig, eyeLookOutLeft=1, eyeLookInRight=1)).landmarks   # to her left
    s = np.hypot(*(rest[263, :2] - rest[33, :2]))
    for iris in (468, 473):
        assert (look[iris, 0] - rest[iris, 0]) / s > 0.03      # subject's left = image right
    for corner in (33, 133, 263, 362):                          # the eyes themselves stay
        assert np.hypot(*(look[corner, :2] - rest[corner, :2])) / s < 0.02


def test_mouth_shapes_move_the_landmarks_as_commanded(rig, landmarker):
    rest = measure(landmarker, frame(rig))
    sealed = measure(landmarker, frame(rig, jawOpen=0.25, mouthClose=0.25))
    pucker = measure(landmarker, frame(rig, mouthPucker=1.0))
    width = lambda f: np.hypot(*(f.landmarks[291, :2] - f.landmarks[61, :2]))  # noqa: E731
    assert lip_gap(sealed) < 0.5 * lip_gap(rest), "p/b/m must seal even a photo that shows its teeth"
    assert width(pucker) < 0.9 * width(rest)


def test_rendered_landmarks_move_where_the_rig_moves_them(rig, landmarker):
    """Where the rig says the landmarks go is where the model finds them: their moves from the
    rest frame agree within 4 % of the eye-corner distance (median over the face's features)."""
    params = FaceParams(t=0, blendshapes=pose_vector({"jawOpen": 0.4, "mouthSmileLeft": 0.5}),
                        head=HeadPose(yaw=8, pitch=-4, roll=3))
    rest = FaceParams(t=0, blendshapes=np.zeros(52, np.float32))
    points = [1, 152, 61, 291, 33, 133, 263, 362, 13, 14, 17, 0, 199]
    found = measure(landmarker, render(rig, params)).landmarks[points, :2] - \
        measure(landmarker, render(rig, rest)).landmarks[points, :2]
    expected = deformed_landmarks(rig, params)[points] - deformed_landmarks(rig, rest)[points]
    s = np.hypot(*(rig.landmarks[263, :2] - rig.landmarks[33, :2]))
    err = np.hypot(*(found - expected).T) / s
    assert np.median(err) < 0.04, err.round(3)
    assert np.hypot(*expected.T).max() / s > 0.1          # the frame did move


@pytest.mark.parametrize("size, framing", [(256, "face"), (1024, "face"), (384, "full")])
def test_sizes_and_framings(landmarker, size, framing):
    image = data.astronaut()
    r = analyze_portrait(image, size, framing, landmarker)
    out = frame(r, HeadPose(yaw=10), jawOpen=0.5)
    h, w = out.shape[:2]
    assert max(h, w) == size and h % 2 == 0 and w % 2 == 0
    if framing == "full":
        assert (h, w) == (size, size)          # the astronaut is square
    assert landmarker.detect(out) is not None


@pytest.fixture(scope="module")
def spoken(rig, landmarker, tmp_path_factory):
    """A festival sentence with known phone timings, rendered at 30 fps and measured frame by
    frame: (segments, lip gap per frame, frames)."""
    from speech import spoken_track

    from talkinghead.render import render_frames

    segs, track = spoken_track("Bob bought a map of the big palm park, and my mom paid.", tmp_path_factory.mktemp("spoken"))
    frames = list(render_frames(rig, track))
    gaps = np.array([lip_gap(measure(landmarker, f)) for f in frames])
    return segs, gaps, frames, track


def _window(values, t, fps=30):
    c = int(round(t * fps))
    return values[max(c - 1, 0):c + 2]


@pytest.mark.slow
def test_spoken_clip_closes_on_bilabials_and_opens_on_vowels(spoken):
    from speech import FESTIVAL_BILABIALS, FESTIVAL_OPEN_VOWELS

    segs, gaps, _, _ = spoken
    closures = [s for s in segs if s.phone in FESTIVAL_BILABIALS]
    vowels = [s for s in segs if s.phone in FESTIVAL_OPEN_VOWELS and s.end - s.start >= 0.06]
    assert len(closures) >= 8 and len(vowels) >= 4
    open_gap = np.median([_window(gaps, (s.start + s.end) / 2).max() for s in vowels])
    for s in closures:
        shut = _window(gaps, (s.start + s.end) / 2).min()
        assert shut < 0.35 * open_gap, f"/{s.phone}/ at {s.start:.2f}s: gap {shut:.3f} vs open {open_gap:.3f}"
    for s in vowels:
        assert _window(gaps, (s.start + s.end) / 2).max() > 0.6 * open_gap, f"/{s.phone}/ at {s.start:.2f}s"


def test_spoken_clip_has_no_black_nan_or_frozen_frames(spoken):
    _, _, frames, track = spoken
    assert len(frames) == track.n_frames
    means = np.array([f.mean() for f in frames])
    assert means.min() > 40
    still = [i for i in range(1, len(frames)) if np.array_equal(frames[i], frames[i - 1])]
    assert not still, f"frozen frames at {still[:10]}"


def _region_of(name: str) -> str:
    if name.startswith("cheek"):
        return "cheeks"
    if name.startswith("eye"):
        return "eyes"
    if name.startswith("brow"):
        return "brows"
    return "mouth"


@pytest.mark.parametrize("name", [n for n in __import__("talkinghead.arkit", fromlist=["x"]).BLENDSHAPE_NAMES
                                  if n != "tongueOut"])
def test_every_blendshape_moves_its_own_part_of_the_face(rig, name):
    """Each channel changes the picture, mostly where that part of the face is, and a Left
    channel changes the subject's left (the image's right) more than the other side."""
    lm = rig.landmarks
    diff = np.abs(frame(rig, **{name: 1.0}).astype(int) - rig.photo).max(2) > 12
    ys, xs = np.nonzero(diff)
    assert len(ys) > 20, f"{name} hardly changes the frame"
    s = np.hypot(*(lm[263, :2] - lm[33, :2]))
    centres = {"eyes": (lm[[33, 133, 263, 362], 1].mean(), 0.35 * s),
               "brows": (lm[[105, 334, 66, 296], 1].mean(), 0.45 * s),
               "mouth": (lm[[13, 14, 61, 291], 1].mean(), 0.55 * s),
               "cheeks": (lm[[33, 263, 61, 291], 1].mean(), 0.5 * s)}
    y0, reach = centres[_region_of(name)]
    assert abs(np.median(ys) - y0) < reach, f"{name} moves rows around {np.median(ys):.0f}, expected {y0:.0f}"
    mid = lm[[33, 263], 0].mean()
    if name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
        # These move the whole jaw or mouth sideways: towards the subject's left is image +x.
        moved = deformed_landmarks(rig, FaceParams(0.0, pose_vector({name: 1.0})))[[152, 14, 13]] - lm[[152, 14, 13], :2]
        assert np.sign(moved[:, 0].sum()) == (1 if name.endswith("Left") else -1)
    elif name.endswith("Left"):
        assert (xs > mid).sum() > 1.5 * (xs < mid).sum()
    elif name.endswith("Right"):
        assert (xs < mid).sum() > 1.5 * (xs > mid).sum()


def test_closed_mouth_photo_gets_a_synthesized_interior(rig, landmarker):
    """A portrait with its lips together (made here by sealing the astronaut's smile) keeps its
    closed mouth at rest; opening the jaw shows synthesized teeth (bright, under the upper lip)
    over a dark cavity, and the landmark model sees the mouth open."""
    closed = frame(rig, jawOpen=0.25, mouthClose=0.25)
    closed_rig = analyze_portrait(closed, SIZE, "full", landmarker)
    assert not closed_rig.mouth.photo_interior
    assert np.abs(frame(closed_rig).astype(int) - closed_rig.photo).max() <= 2
    opened = frame(closed_rig, jawOpen=0.5)
    lm = deformed_landmarks(closed_rig, FaceParams(0.0, pose_vector({"jawOpen": 0.5})))
    up, lo = lm[13], lm[14]
    x = int(round((up[0] + lo[0]) / 2))
    column = opened[int(up[1]) + 1:int(lo[1]), x].astype(float).mean(1)
    assert len(column) >= 8
    top, rest = column[: len(column) // 3], column[len(column) // 3:]
    assert top.max() > 150, "teeth under the upper lip"
    assert rest.min() < 90, "a dark cavity below them"
    assert lip_gap(measure(landmarker, opened)) > 2 * lip_gap(measure(landmarker, closed)) + 0.05


@pytest.mark.parametrize("yaw", [-20, 20])
def test_a_turned_head_has_no_specks_of_the_folded_layer(rig, yaw):
    """A head turned 20 degrees folds the face over itself (the nose over the far cheek, the
    jaw over the collar); Newton then found one layer at a grid point and the other beside it,
    specks all over the nose. Counted on the backward map near the folds, away from the lips
    (where `despeckle` works): grid points whose source is over a pixel from their neighbours'
    median. Without `despeckle` there are hundreds; with it, next to none."""
    import cv2

    from talkinghead.render import cpu

    renderer = cpu.Renderer(rig)
    head = HeadPose(yaw=yaw, pitch=5)
    disp = cpu.landmark_displacement(rig, pose_vector({"jawOpen": 0.4}))

    fwd4 = renderer._forward4(head, disp)
    fwd4[np.abs(fwd4) < cpu.STILL_PX] = 0
    k = 2 * cpu.SPECKLE_REACH + 1
    folded = cpu.folds(cpu._jacobian(fwd4, rig.cell))
    near = cv2.dilate(folded.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool) & ~cpu.lips_grid(rig)
    assert near.sum() > 100                          # the turn folds the face

    def specks(despeckle):
        original = cpu.despeckle
        cpu.despeckle = despeckle
        try:
            back, _ = renderer.backward_grid(head, disp)
        finally:
            cpu.despeckle = original
        return int((cpu._speckles(back, cv2.medianBlur(back, 3)) & near).sum())

    before, after = specks(lambda back, folded, lips: back), specks(cpu.despeckle)
    print(f"yaw {yaw}: {before} specks, {after} after")
    assert before >= 50 and after <= 0.1 * before
