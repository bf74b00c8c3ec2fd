"""The Blender extension in real Blender (the `bpy` wheel of one Blender line, headless,
in-process) against a real server on a loopback port: built with `talkinghead blender-addon`,
checked by Blender's own validator, installed from the zip, then Bake / Live / Stop on a
52-shape-key character and a portrait plane. Live is driven by calling the add-on's timer
callback, as Blender would. Run by tests/test_blender_lines.py in each line's venv (conftest.py)."""

from __future__ import annotations

import importlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# Blender reads where its user files live once, at import: keep the test's extensions out of ~.
_USER = tempfile.mkdtemp(prefix="talkinghead_blender_user_")
os.environ["BLENDER_USER_RESOURCES"] = _USER
bpy = pytest.importorskip("bpy")

import mathutils  # noqa: E402  (ships with the bpy wheel)

BLENDER_SCRIPTS = Path(bpy.utils.system_resource("SCRIPTS"))         # where blender_ext.py ships


def test_this_venv_runs_the_blender_line_it_was_made_for(harness):
    assert ".".join(map(str, bpy.app.version)) == harness.expect.bpy
    assert int(np.__version__.split(".")[0]) == 1                  # what Blender 4.2 to 5.0 bundle


@pytest.fixture(scope="session")
def blender(harness):
    """Factory settings, then the extension zip (Linux x64 wheels, built by the main suite) installed."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    out = harness.zip
    result = bpy.ops.extensions.package_install_files(filepath=str(out), repo="user_default", enable_on_install=True)
    assert result == {'FINISHED'}
    name = "bl_ext.user_default.talkinghead"
    assert name in bpy.context.preferences.addons
    yield SimpleNamespace(zip=out, name=name, ops=importlib.import_module(name + ".ops"),
                          prefs=bpy.context.preferences.addons[name].preferences)
    shutil.rmtree(_USER, ignore_errors=True)


@pytest.fixture()
def scene(blender, harness):
    """The one scene, emptied, with the add-on pointed at the test server."""
    sc = bpy.context.scene
    for coll in (bpy.data.objects, bpy.data.meshes, bpy.data.armatures, bpy.data.actions, bpy.data.images,
                 bpy.data.materials, bpy.data.sounds):
        for item in list(coll):
            coll.remove(item)
    if sc.sequence_editor:
        sc.sequence_editor_clear()
    for prop in sc.talkinghead.bl_rna.properties.keys():
        if prop != "rna_type":
            sc.talkinghead.property_unset(prop)
    sc.talkinghead.mapping.clear()                                  # property_unset leaves collections
    sc.render.fps, sc.render.fps_base, sc.frame_start, sc.frame_end = 30, 1.0, 1, 20
    blender.prefs.address, blender.prefs.token = harness.server, harness.token
    sc.talkinghead.audio_file = str(harness.wav)
    # Acoustic lips: the phone recogniser keeps state between calls, so only acoustic lips give the
    # same answer to the add-on and to the reference call below.
    sc.talkinghead.lipsync = 'ACOUSTIC'
    yield sc
    blender.ops.stop()


def make_character(sc, names):
    """A mesh with Basis + the 52 ARKit shape keys (prefixed "ARKit_", jawOpen called "JawDown") and
    an armature facing -Y: a vertical "head" bone and two eye bones pointing forward, its children."""
    mesh = bpy.data.meshes.new("Face")
    mesh.from_pydata([(x, 0, z) for z in (0, 1, 2) for x in (0, 1, 2)], [],
                     [(0, 1, 4, 3), (1, 2, 5, 4), (3, 4, 7, 6), (4, 5, 8, 7)])
    face = bpy.data.objects.new("Face", mesh)
    sc.collection.objects.link(face)
    face.shape_key_add(name="Basis")
    for name in names:
        face.shape_key_add(name="JawDown" if name == "jawOpen" else f"ARKit_{name}", from_mix=False)
    rig = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    sc.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode='EDIT')
    bones = rig.data.edit_bones
    head = bones.new("head")
    head.head, head.tail = (0, 0, 1.5), (0, 0, 1.8)
    for name, x in (("eye.L", 0.03), ("eye.R", -0.03)):       # the subject's left eye is at +X
        eye = bones.new(name)
        eye.head, eye.tail, eye.parent = (x, -0.08, 1.62), (x, -0.1, 1.62), head
    bpy.ops.object.mode_set(mode='OBJECT')
    rig.pose.bones["eye.L"].rotation_mode = 'XYZ'              # one Euler target, the others quaternions
    s = sc.talkinghead
    s.mesh, s.armature, s.head_bone, s.eye_left_bone, s.eye_right_bone = face, rig, "head", "eye.L", "eye.R"
    return face, rig


def run_ticks(ops, seconds: float, until=None) -> None:
    """Blender's timer loop, by hand: call the add-on's timer callback every 1/60 s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        ops.tick()
        if until is not None and until():
            return
        time.sleep(1 / 60)


def all_strips(sc) -> list:
    se = sc.sequence_editor
    if se is None:
        return []
    return list(se.strips_all if hasattr(se, "strips_all") else se.sequences_all)      # 5.0 dropped sequences


def assert_sound_strip(scene, status, harness, start: int) -> None:
    """The bake added the line's audio as a sound strip at `start`, or, in a Blender without audio,
    said it could not."""
    assert bool(bpy.app.build_options.audaspace) == harness.expect.audio
    strips = all_strips(scene)
    if harness.expect.audio:
        assert len(strips) == 1 and strips[0].type == 'SOUND' and int(strips[0].frame_start) == start
        assert Path(bpy.path.abspath(strips[0].sound.filepath)) == harness.wav
        assert "sound strip" not in status.message
    else:
        assert strips == [] and "no sound strip: this Blender was built without audio" in status.message


# -- packaging --------------------------------------------------------------------------------

def _validate(path) -> subprocess.CompletedProcess:
    tool = BLENDER_SCRIPTS / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    tags = BLENDER_SCRIPTS / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return subprocess.run([sys.executable, str(tool), "validate", "--valid-tags", str(tags), str(path)],
                          capture_output=True, text=True)


def test_blenders_validator_accepts_the_sources_and_the_zip(blender):
    source = Path(__file__).resolve().parents[1] / "talkinghead_blender"
    for path in (source, blender.zip):
        out = _validate(path)
        assert out.returncode == 0 and "Success" in out.stdout, out.stdout + out.stderr


def test_the_zip_bundles_linux_wheels_and_relative_stubs(blender, harness):
    with zipfile.ZipFile(blender.zip) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        stubs = zf.read("_proto/talkinghead_pb2_grpc.py").decode()
        sources = {n: zf.read(n).decode() for n in names if n.endswith(".py")}
    assert manifest["platforms"] == ["linux-x64"] and "network" in manifest["permissions"]
    wheels = [w.removeprefix("./") for w in manifest["wheels"]]
    assert set(wheels) == {n for n in names if n.startswith("wheels/")}
    assert any(w.startswith("wheels/grpcio-") and "manylinux" in w and "cp311" in w for w in wheels)
    assert any(w.startswith("wheels/protobuf-") for w in wheels)
    assert "from . import talkinghead_pb2 as" in stubs
    for name, text in sources.items():
        assert not re.search(r"^\s*(from|import) talkinghead\b", text, flags=re.M), name
    assert manifest["version"] == harness.version


def test_the_bundled_wheels_alone_run_a_bake(blender, harness):
    """Blender unpacked the zip's Linux wheels into its extensions' site-packages. In a fresh Python
    (this venv's, which has no grpcio or protobuf of its own) the add-on's client bakes with them."""
    ext = Path(sys.modules[blender.name].__file__).parent
    site = ext.parent.parent / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert (site / "grpc").is_dir() and (site / "google" / "protobuf").is_dir()
    code = f"""
import sys
sys.path[:0] = [{str(site)!r}, {str(ext.parent)!r}]
sys.modules["bpy"] = None                            # the client needs no Blender
from talkinghead import client                       # the extension (its folder is named after its id)
import grpc, google.protobuf
assert client.__file__.startswith({str(ext)!r}) and grpc.__file__.startswith({str(site)!r}), grpc.__file__
assert google.protobuf.__file__.startswith({str(site)!r})
job = client.BakeJob(client.ServerSettings({harness.server!r}, token={harness.token!r}), open({str(harness.wav)!r}, "rb").read(),
                     client.MotionSettings(lipsync="acoustic")).start()
job.join(60)
last = [job.queue.get_nowait() for _ in range(job.queue.qsize())][-1]
print(last.kind, last.data.take.n_frames if last.kind == "done" else last.data)
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ext.parent,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("done "), out.stdout + out.stderr
    assert int(out.stdout.split()[1]) > 60


def test_the_installed_extension_unregisters_and_registers_again(blender):
    import addon_utils

    assert hasattr(bpy.types, "TALKINGHEAD_OT_bake") and hasattr(bpy.types.Scene, "talkinghead")
    addon_utils.disable(blender.name)
    try:
        assert not hasattr(bpy.types, "TALKINGHEAD_OT_bake") and not hasattr(bpy.types.Scene, "talkinghead")
    finally:
        addon_utils.enable(blender.name)
    assert hasattr(bpy.types, "TALKINGHEAD_PT_main") and blender.name in bpy.context.preferences.addons
    blender.prefs = bpy.context.preferences.addons[blender.name].preferences
    blender.ops = importlib.import_module(blender.name + ".ops")


# -- character --------------------------------------------------------------------------------

def bake_fcurves(blender, key, rig, expect) -> dict:
    """{(data_path, index): F-Curve} of a character bake, found the way this Blender line stores
    them; asserts that the add-on took this line's code path and that the data shows it."""
    animate = importlib.import_module(blender.name + ".animate")
    assert (animate.ACTIONS, animate.FCURVE_GROUPS) == (expect.actions, expect.fcurve_groups)
    fcurves = {}
    if expect.actions == "slotted":                                # one action, a slot per datablock
        action = key.animation_data.action
        assert rig.animation_data.action == action and len(action.layers) == 1
        assert {sl.target_id_type for sl in action.slots} == {'KEY', 'OBJECT'}
        assert key.animation_data.action_slot.target_id_type == 'KEY'
        assert rig.animation_data.action_slot.target_id_type == 'OBJECT'
        bags = list(action.layers[0].strips[0].channelbags)
        assert len(bags) == 2
        for bag in bags:
            fcurves.update({(fc.data_path, fc.array_index): fc for fc in bag.fcurves})
    else:                                                          # 4.2: an action per datablock
        assert not hasattr(bpy.types, "ActionChannelbagFCurves")
        actions = key.animation_data.action, rig.animation_data.action
        assert actions[0] != actions[1] and [a.id_root for a in actions] == ['KEY', 'OBJECT']
        assert all(a.use_fake_user for a in actions)
        for a in actions:
            fcurves.update({(fc.data_path, fc.array_index): fc for fc in a.fcurves})
    # Grouped by bone and "ARKit" for the shape keys, whichever call made the groups.
    for (path, _), fc in fcurves.items():
        group = path.split('"')[1] if path.startswith("pose.bones") else "ARKit"
        assert fc.group is not None and fc.group.name == group, path
    return fcurves


def test_bake_keys_every_channel_with_the_servers_values_and_adds_the_sound(blender, scene, harness):
    face, rig = make_character(scene, harness.blendshape_names)
    s = scene.talkinghead
    s.start_frame, s.seed = 10, harness.reference_seed
    scene.render.fps = harness.reference_fps
    assert bpy.ops.talkinghead.auto_map() == {'FINISHED'}
    assert len(s.mapping) == 52 and sum(bool(m.shape_key) for m in s.mapping) == 51
    next(m for m in s.mapping if m.arkit == "jawOpen").shape_key = "JawDown"

    assert bpy.ops.talkinghead.bake() == {'FINISHED'}             # background Blender: waits for the bake
    status = bpy.context.window_manager.talkinghead_status
    assert not status.running and not status.error and "baked" in status.message

    ref = harness.reference                                        # the project client's frames
    n = len(ref.blendshapes)
    fcurves = bake_fcurves(blender, face.data.shape_keys, rig, harness.expect)
    # 52 shape keys, head quaternion (4), left eye Euler (3), right eye quaternion (4).
    assert len(fcurves) == 52 + 4 + 3 + 4
    for fc in fcurves.values():
        assert len(fc.keyframe_points) == n
        assert fc.keyframe_points[0].co[0] == 10 and fc.keyframe_points[-1].co[0] == 10 + n - 1
        assert fc.keyframe_points[n // 2].interpolation == 'LINEAR'

    for i in (0, n // 3, 2 * n // 3, n - 1):
        for name in harness.blendshape_names:
            target = "JawDown" if name == "jawOpen" else f"ARKit_{name}"
            got = fcurves[(f'key_blocks["{target}"].value', 0)].evaluate(10 + i)
            assert got == pytest.approx(ref.blendshapes[i, harness.BS[name]], abs=1e-6), (name, i)
        yaw, pitch, roll = ref.head[i]
        # The head bone points up with roll 0, so its own axes are the canonical ones: yaw about
        # +Y, pitch about -X, roll about -Z; mathutils, independently of the add-on's maths.
        want = mathutils.Euler((math.radians(-pitch), math.radians(yaw), math.radians(-roll)), 'ZXY').to_quaternion()
        got = [fcurves[('pose.bones["head"].rotation_quaternion', c)].evaluate(10 + i) for c in range(4)]
        assert min(np.abs(np.subtract(got, want)).max(), np.abs(np.add(got, want)).max()) < 1e-5

    # Where the head turns most, the face (the bone's -Y world... its local Z) turns that way.
    yaw = ref.head[:, 0]
    i = int(np.argmax(np.abs(yaw)))
    assert abs(yaw[i]) > 0.5
    scene.frame_set(10 + i)
    forward = rig.pose.bones["head"].matrix.col[2]
    assert np.sign(forward[0]) == np.sign(yaw[i])
    # The left eye's gaze, relative to the head: + yaw looks toward +X.
    gaze = ref.gaze[:, 0]
    j = int(np.argmax(np.abs(gaze)))
    scene.frame_set(10 + j)
    head = rig.pose.bones["head"].matrix.to_3x3() @ rig.data.bones["head"].matrix_local.to_3x3().inverted()
    look = head.inverted() @ rig.pose.bones["eye.L"].matrix.col[1].to_3d()
    assert abs(gaze[j]) > 0.3 and np.sign(look[0]) == np.sign(gaze[j])

    assert_sound_strip(scene, status, harness, 10)
    assert scene.frame_end >= 10 + n - 1


def test_live_applies_frames_when_the_timer_drains_and_stop_cancels_at_once(blender, scene, harness):
    face, rig = make_character(scene, harness.blendshape_names)
    row = scene.talkinghead.mapping.add()                            # one row; the rest match by name
    row.arkit, row.shape_key = "jawOpen", "JawDown"
    assert bpy.ops.talkinghead.live() == {'FINISHED'}
    session = blender.ops._session
    jaw, quats = [], set()

    def sample():
        jaw.append(face.data.shape_keys.key_blocks["JawDown"].value)
        quats.add(tuple(round(v, 5) for v in rig.pose.bones["head"].rotation_quaternion))
        return session.frames_applied > 30 and max(jaw) > 0.15 and len(quats) > 10

    # Frames come in real time (~60 in 2 s); on a loaded machine the first ones come later.
    run_ticks(blender.ops, 6.0, until=sample)
    status = bpy.context.window_manager.talkinghead_status
    assert status.running and not status.error, status.error
    assert session.frames_applied > 30 and max(jaw) > 0.15 and len(quats) > 10
    t1 = time.monotonic()
    assert bpy.ops.talkinghead.stop() == {'FINISHED'}
    assert not status.running and blender.ops._session is None
    assert session.job.join(1.0) and time.monotonic() - t1 < 1.0    # the call was cancelled at once
    assert not bpy.app.timers.is_registered(blender.ops.tick)


# -- portrait plane ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def portrait(harness):
    return harness.portrait


def rgb(path) -> np.ndarray:
    """An image file's pixels as Blender loads them, shape = (h, w, 3), 0..1."""
    image = bpy.data.images.load(str(path))
    px = np.empty(image.size[0] * image.size[1] * 4, np.float32)
    image.pixels.foreach_get(px)
    out = px.reshape(image.size[1], image.size[0], 4)[..., :3].copy()
    bpy.data.images.remove(image)
    return out


def test_image_bake_writes_a_sequence_that_loads_on_a_plane(blender, scene, portrait, tmp_path, harness):
    s = scene.talkinghead
    s.mode, s.portrait, s.image_size, s.output_dir, s.start_frame = 'IMAGE', str(portrait), 256, str(tmp_path), 5
    assert bpy.ops.talkinghead.bake() == {'FINISHED'}
    status = bpy.context.window_manager.talkinghead_status
    assert not status.error, status.error
    files = sorted((tmp_path / "line").glob("frame_*.jpg"))
    assert len(files) > 60 and files[0].name == "frame_000001.jpg"
    plane = s.plane
    tex = plane.active_material.node_tree.nodes["talkinghead image"]
    image = tex.image
    assert image.source == 'SEQUENCE' and Path(bpy.path.abspath(image.filepath)) == files[0]
    assert tex.image_user.frame_start == 5 and tex.image_user.frame_duration == len(files)
    middle, first = rgb(files[len(files) // 2]), rgb(files[0])
    assert middle.shape == (256, 256, 3) and middle.std() > 0.1
    assert np.abs(middle - first).mean() * 255 > 0.3                # it moves
    assert_sound_strip(scene, status, harness, 5)


def test_live_image_mode_paints_the_planes_image(blender, scene, portrait):
    s = scene.talkinghead
    s.mode, s.portrait, s.image_size = 'IMAGE', str(portrait), 256
    assert bpy.ops.talkinghead.live() == {'FINISHED'}
    session = blender.ops._session
    run_ticks(blender.ops, 6.0, until=lambda: session.frames_applied >= 20)
    assert session.frames_applied >= 20, bpy.context.window_manager.talkinghead_status.error
    image = bpy.data.images[blender.ops.LIVE_IMAGE]
    assert tuple(image.size) == (256, 256)
    assert s.plane.active_material.node_tree.nodes["talkinghead image"].image == image
    px = np.empty(256 * 256 * 4, np.float32)
    image.pixels.foreach_get(px)
    assert px.reshape(-1, 4)[:, :3].mean() > 0.1
    bpy.ops.talkinghead.stop()


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case, words", [
    ("server down", "cannot reach the talkinghead server"),
    ("bad token", "refused the token"),
    ("no audio", "no audio"),
    ("online access", "online access is off"),
    ("nothing to drive", "nothing to drive"),
])
def test_errors_are_reports_not_tracebacks(blender, scene, case, words, harness):
    make_character(scene, harness.blendshape_names)
    if case == "server down":
        blender.prefs.address = "127.0.0.1:9"
    elif case == "bad token":
        blender.prefs.token = "wrong"
    elif case == "no audio":
        scene.talkinghead.audio_file = ""
    elif case == "online access":
        if bpy.app.online_access:
            pytest.skip("this Blender runs with online access on")
        blender.prefs.address = "10.0.0.5:50051"
    else:
        s = scene.talkinghead
        s.mesh = s.armature = None
        s.eye_left_bone = s.eye_right_bone = ""
        s.head_target = 'NONE'
    with pytest.raises(RuntimeError, match=words):                 # how bpy.ops surfaces an ERROR report
        bpy.ops.talkinghead.bake()
    assert blender.ops._session is None


@pytest.mark.parametrize("op", ["bake", "live"])
def test_async_errors_end_the_session_with_the_message(blender, scene, op, harness):
    """In the UI a bake does not wait: the server's answer arrives through the timer."""
    make_character(scene, harness.blendshape_names)
    blender.prefs.token = "wrong"
    kwargs = {"wait": False} if op == "bake" else {}
    assert getattr(bpy.ops.talkinghead, op)(**kwargs) == {'FINISHED'}
    status = bpy.context.window_manager.talkinghead_status
    run_ticks(blender.ops, 10.0, until=lambda: not status.running)
    assert not status.running and "refused the token" in status.error
    assert blender.ops.tick() is None                              # the timer stops itself


# -- the panel --------------------------------------------------------------------------------

class FakeLayout:
    """Stands in for Blender's UILayout (headless Blender draws no panels): records what a panel
    draws and checks that every property, operator and list it names exists."""

    def __init__(self, drawn: list) -> None:
        self.drawn = drawn

    def _sub(self, *args, **kwargs) -> "FakeLayout":
        return FakeLayout(self.drawn)

    row = column = box = split = _sub

    def prop(self, data, prop, **kwargs) -> None:
        assert prop in data.bl_rna.properties, f"{type(data).__name__} has no property {prop!r}"
        self.drawn.append(prop)

    def prop_search(self, data, prop, search_data, search_prop, **kwargs) -> None:
        self.prop(data, prop)
        assert search_prop in search_data.bl_rna.properties, f"{type(search_data).__name__} has no {search_prop!r}"

    def operator(self, idname: str, **kwargs) -> None:
        module, name = idname.split(".")
        assert name in dir(getattr(bpy.ops, module)), idname
        self.drawn.append(idname)

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs) -> None:
        assert hasattr(bpy.types, list_type) and prop in data.bl_rna.properties
        assert active_prop in active_data.bl_rna.properties
        self.drawn.append(list_type)

    def progress(self, **kwargs) -> None:
        self.drawn.append("progress")

    def label(self, **kwargs) -> None:
        self.drawn.append(kwargs.get("text", ""))

    def separator(self, **kwargs) -> None:
        pass


def test_the_panels_draw_only_what_exists(blender, scene, harness):
    panel = importlib.import_module(blender.name + ".panel")
    make_character(scene, harness.blendshape_names)
    s, status = scene.talkinghead, bpy.context.window_manager.talkinghead_status
    bpy.ops.talkinghead.auto_map()
    scene.sequence_editor_create()                                  # the strip picker searches its strips
    drawn: list = []
    for mode, source, head, busy, error in (('CHARACTER', 'FILE', 'BONE', False, ""),
                                            ('CHARACTER', 'STRIP', 'OBJECT', True, "the server went away " * 4),
                                            ('IMAGE', 'FILE', 'NONE', False, "")):
        s.mode, s.audio_source, s.head_target = mode, source, head
        status.running, status.error = busy, error
        for cls in panel.CLASSES:
            if issubclass(cls, bpy.types.Panel) and (not hasattr(cls, "poll") or cls.poll(bpy.context)):
                cls.draw(SimpleNamespace(layout=FakeLayout(drawn)), bpy.context)
        item = s.mapping[0]
        panel.TALKINGHEAD_UL_mapping.draw_item(None, bpy.context, FakeLayout(drawn), s, item, 0, s, "mapping_index")
    status.running, status.error = False, ""
    for expected in ("address", "token", "talkinghead.bake", "talkinghead.live", "talkinghead.stop", "audio_file",
                     "audio_strip", "mesh", "TALKINGHEAD_UL_mapping", "head_bone", "head_object", "eye_left_bone",
                     "portrait", "output_dir", "progress", "seed", "lipsync", "shape_key"):
        assert expected in drawn, expected
