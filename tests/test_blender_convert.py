"""The Blender add-on's bpy-free half: names, units, axes, keyframe arrays (plain pytest, no bpy)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "blender"))

from talkinghead_blender import convert  # noqa: E402  (imports neither bpy nor grpc)
from talkinghead_blender.errors import AddonError  # noqa: E402

from talkinghead.arkit import BLENDSHAPE_NAMES  # noqa: E402


def take_of(head=(0, 0, 0, 0, 0, 0), gaze=(0, 0, 0, 0), n=1) -> convert.Take:
    return convert.Take(30.0, np.zeros((n, 52), np.float32), np.tile(np.float32(head), (n, 1)),
                        np.tile(np.float32(gaze), (n, 1)))


def test_the_52_names_are_the_projects():
    assert convert.ARKIT_NAMES == BLENDSHAPE_NAMES


def test_no_arkit_name_ends_with_another_so_suffix_matching_is_unambiguous():
    normed = [convert._norm(n) for n in BLENDSHAPE_NAMES]
    for a in normed:
        assert [b for b in normed if b != a and b.endswith(a)] == []


def test_shape_keys_match_case_insensitively_with_any_prefix_and_side_suffixes():
    keys = ["Basis", "ARKit_jawOpen", "EYEBLINKLEFT", "Face.mouthSmile_L", "cc_base_mouth_smile_right",
            "browInnerUp", "bs_browInnerUp", "unrelated"]
    found = convert.match_shape_keys(keys)
    assert found["jawOpen"] == "ARKit_jawOpen"
    assert found["eyeBlinkLeft"] == "EYEBLINKLEFT"
    assert found["mouthSmileLeft"] == "Face.mouthSmile_L"
    assert found["mouthSmileRight"] == "cc_base_mouth_smile_right"
    assert found["browInnerUp"] == "browInnerUp"                        # the exact name beats a prefixed one
    assert convert.match_shape_keys(keys, prefix="bs_")["browInnerUp"] == "bs_browInnerUp"
    assert len(found) == 5 and "Basis" not in found.values()


def test_the_mapping_overrides_names_and_can_leave_a_channel_undriven():
    keys = ["Basis", "JawDown", "jawOpen", "eyeBlinkLeft"]
    found = convert.match_shape_keys(keys, overrides={"jawOpen": "JawDown", "eyeBlinkLeft": ""})
    assert found == {"jawOpen": "JawDown"}
    with pytest.raises(AddonError, match="does not have"):
        convert.match_shape_keys(keys, overrides={"jawOpen": "Missing"})


def test_shape_key_channels_escape_names_and_keep_arkit_columns():
    take = take_of(n=3)
    take.blendshapes[:, BLENDSHAPE_NAMES.index("jawOpen")] = [0.1, 0.5, 0.9]
    (ch,) = convert.shape_key_channels(take, {"jawOpen": 'jaw "open"'})
    assert ch.data_path == 'key_blocks["jaw \\"open\\""].value' and ch.index == 0
    np.testing.assert_allclose(ch.values, [0.1, 0.5, 0.9])


@pytest.mark.parametrize("order", convert.EULER_ORDERS)
def test_euler_decomposition_matches_blenders_convention(order):
    # Blender's 'XYZ' applies X first = scipy's extrinsic 'xyz'.
    rng = np.random.default_rng(1)
    angles = rng.uniform(-1.3, 1.3, (40, 3))
    m = Rotation.from_euler(order.lower(), np.stack([angles[:, "XYZ".index(c)] for c in order], 1)).as_matrix()
    np.testing.assert_allclose(convert.matrix_to_euler(m, order), angles, atol=1e-9)


def test_quaternions_match_and_stay_in_one_hemisphere():
    m = Rotation.random(500, random_state=2).as_matrix()
    q = convert.matrix_to_quaternion(m)
    ref = Rotation.from_matrix(m).as_quat()[:, [3, 0, 1, 2]]
    assert np.minimum(np.abs(q - ref).max(1), np.abs(q + ref).max(1)).max() < 1e-9
    spin = Rotation.from_euler("z", np.linspace(0, 4 * np.pi, 200)[:, None]).as_matrix()    # two full turns
    qs = convert.matrix_to_quaternion(spin)
    assert (np.sum(qs[1:] * qs[:-1], 1) > 0).all()                                 # no sign flips


def test_head_pose_signs_in_blenders_default_character_frame():
    """A character facing -Y, +Z up: yaw + turns the face toward the subject's left (+X), pitch +
    lifts the chin (+Z), roll + tilts the top of the head toward the left shoulder (+X)."""
    axes = convert.character_axes("-Y", "+Z")
    np.testing.assert_allclose(axes[:, 0], [1, 0, 0])            # the subject's left is +X
    face, top = np.array([0, -1, 0]), np.array([0, 0, 1])

    def turn(yaw=0.0, pitch=0.0, roll=0.0):
        return convert.to_armature(convert.head_rotations(take_of(head=(yaw, pitch, roll, 0, 0, 0))), axes)[0]

    assert (turn(yaw=20) @ face)[0] > 0.3
    assert (turn(pitch=20) @ face)[2] > 0.3
    assert (turn(roll=20) @ top)[0] > 0.3
    gaze = convert.to_armature(convert.gaze_rotations(take_of(gaze=(15, 10, -15, 0)), "left"), axes)[0] @ face
    assert gaze[0] > 0.2 and gaze[2] > 0.1                       # left eye: toward the left, up
    right = convert.to_armature(convert.gaze_rotations(take_of(gaze=(15, 10, -15, 0)), "right"), axes)[0] @ face
    assert right[0] < -0.2


def test_a_vertical_head_bone_turns_about_its_own_y_axis():
    # Blender's rest matrix of a bone from (0,0,0) to (0,0,1), roll 0: X = +X, Y = +Z, Z = -Y.
    rest = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)
    axes = convert.character_axes()
    turned = convert.to_armature(convert.head_rotations(take_of(head=(30, 0, 0, 0, 0, 0))), axes)
    local = convert.to_bone(turned, rest)[0]
    np.testing.assert_allclose(Rotation.from_matrix(local).as_rotvec(), [0, np.radians(30), 0], atol=1e-9)
    # Any rest frame: B . R_local . B^T gives back the armature-space rotation.
    b = Rotation.random(random_state=3).as_matrix()
    r = convert.to_armature(convert.head_rotations(take_of(head=(10, -5, 3, 0, 0, 0))), axes)
    np.testing.assert_allclose(b @ convert.to_bone(r, b)[0] @ b.T, r[0], atol=1e-12)


def test_rotation_channels_per_mode():
    r = Rotation.from_euler("xyz", [[0.1, 0.2, 0.3], [0.2, -0.1, 0.0]]).as_matrix()
    quat = convert.rotation_channels('pose.bones["head"].', r, "QUATERNION", "head")
    assert [c.data_path for c in quat] == ['pose.bones["head"].rotation_quaternion'] * 4
    assert [c.index for c in quat] == [0, 1, 2, 3]
    euler = convert.rotation_channels("", r, "XYZ")
    np.testing.assert_allclose(np.stack([c.values for c in euler], 1), [[0.1, 0.2, 0.3], [0.2, -0.1, 0.0]], atol=1e-6)
    aa = convert.rotation_channels("", r, "AXIS_ANGLE")
    angle, axis = aa[0].values, np.stack([c.values for c in aa[1:]], 1)
    np.testing.assert_allclose(Rotation.from_rotvec(axis * angle[:, None]).as_matrix(), r, atol=1e-6)
    with pytest.raises(AddonError):
        convert.rotation_channels("", r, "SIDEWAYS")


def test_head_offsets_are_millimetres_in_character_axes():
    off = convert.head_offsets(take_of(head=(0, 0, 0, 10, 20, 30)), convert.character_axes())
    np.testing.assert_allclose(off[0], [0.010, -0.030, 0.020])   # left +X, toward the camera -Y, up +Z
    with pytest.raises(AddonError, match="right angles"):
        convert.character_axes("-Y", "+Y")


def test_take_builder_reorders_columns_by_the_headers_names():
    from talkinghead.v1 import talkinghead_pb2 as pb

    names = list(BLENDSHAPE_NAMES[::-1])
    frames = [pb.Frame(index=i, params=pb.FaceParams(blendshapes=[float(j) for j in range(52)],
                                                      head=pb.HeadPose(yaw=i), gaze_left=pb.EyeGaze(pitch=2),
                                                      viseme="aa")) for i in range(3)]
    take = convert.take_from_frames(frames, 30, names)
    assert take.n_frames == 3 and take.blendshapes[0, 0] == 51 and take.blendshapes[0, 51] == 0
    np.testing.assert_allclose(take.head[:, 0], [0, 1, 2])
    np.testing.assert_allclose(take.gaze[:, 1], 2)
    with pytest.raises(AddonError, match="lacks"):
        convert.TakeBuilder(30, names[:51] + ["other"])


def test_keyframe_arrays_and_frame_rates():
    frames = convert.scene_frames(4, 30, 24, 10)
    np.testing.assert_allclose(frames, [10, 10.8, 11.6, 12.4], atol=1e-5)
    np.testing.assert_allclose(convert.keyframe_co(frames[:2], np.array([0.5, 0.25])), [10, 0.5, 10.8, 0.25], atol=1e-5)
    assert convert.image_fps(24) == 25 and convert.image_fps(29.97) == 30 and convert.image_fps(50) == 60
    idx = convert.resample_indices(30, 30, 24)                     # 1 s at 30 -> 24 scene frames
    assert len(idx) == 24 and idx[0] == 0 and idx[-1] == 29 and (np.diff(idx) >= 1).all()


def test_raw_frames_become_bottom_up_rgba():
    raw = np.zeros((2, 3, 3), np.uint8)
    raw[0] = 255                                                   # the top row is white
    px = convert.raw_rgb_to_pixels(raw.tobytes(), 3, 2).reshape(2, 3, 4)
    assert px[1, :, :3].min() == 1.0 and px[0, :, :3].max() == 0.0 and (px[..., 3] == 1).all()
    with pytest.raises(AddonError, match="frame size"):
        convert.raw_rgb_to_pixels(b"\0" * 10, 3, 2)


@pytest.mark.parametrize("given, target", [
    ("127.0.0.1:50051", "127.0.0.1:50051"), ("localhost", "localhost:50051"),
    ("grpc://host.lan:9000/", "host.lan:9000"),
    ("[::1]:7000", "[::1]:7000"), ("::1", "[::1]:50051"),
])
def test_addresses(given, target):
    assert convert.parse_address(given) == target


def test_bad_addresses_and_online_access():
    for bad in ("", "host:port", "host:70000", "a b:1"):
        with pytest.raises(AddonError):
            convert.parse_address(bad)
    convert.check_online_access("127.0.0.1:50051", False)          # this machine is never "online"
    convert.check_online_access("[::1]:1", False)
    convert.check_online_access("localhost:1", False)
    convert.check_online_access("10.0.0.5:50051", True)
    with pytest.raises(AddonError, match="online access is off"):
        convert.check_online_access("10.0.0.5:50051", False)


@pytest.mark.slow
def test_blender_addon_refuses_an_output_that_is_neither_zip_nor_folder(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "addon.txt"
    r = subprocess.run([sys.executable, "-m", "talkinghead", "blender-addon", "-o", str(out), "--no-wheels"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and ".zip" in r.stderr and not out.exists()
