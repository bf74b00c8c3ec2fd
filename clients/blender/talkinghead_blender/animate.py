"""What Bake and Live write into Blender data (main thread only): the rig's channels, actions,
the sound strip, the portrait plane and its image sequence.

Keyframes: one action per bake. Blender 4.4+ (slotted actions; the only API in 5.0): one slot per
animated datablock (the mesh's shape keys, the armature, a head object), one layer with one
keyframe strip, a channelbag per slot whose F-Curves are filled in bulk (`keyframe_points.add` +
`foreach_set`). Blender 4.2/4.3 (one datablock per action): `action.fcurves`, one action per
datablock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy
import numpy as np

from . import convert
from .errors import AddonError

LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value

# Which keyframe API this Blender has (the tests assert that each Blender line runs its own):
# ACTIONS "slotted" (4.4+: layers, slots, channelbags; slotted actions were only an experiment in
# 4.3) or "legacy" (4.2/4.3: action.fcurves, one datablock per action); FCURVE_GROUPS
# "group_name" (5.0+: channelbag.fcurves.new(group_name=)), "by hand" (4.4/4.5: no group_name,
# the group made and assigned) or "action_group" (legacy action.fcurves.new(action_group=)).
ACTIONS = "slotted" if bpy.app.version >= (4, 4, 0) else "legacy"
if ACTIONS == "legacy":
    FCURVE_GROUPS = "action_group"
elif "group_name" in bpy.types.ActionChannelbagFCurves.bl_rna.functions["new"].parameters:
    FCURVE_GROUPS = "group_name"
else:
    FCURVE_GROUPS = "by hand"
PLANE = "talkinghead portrait"
REST_PROP = "talkinghead_rest"       # an object head's rotation + location before it was first driven


# -- what to drive ----------------------------------------------------------------------------

@dataclass
class CharacterRig:
    """What a character bake or Live drives, by name: Blender's Python objects do not survive undo
    or renames, so they are looked up again on every use. Rest matrices are read once, at start."""

    key: str = ""                                     # bpy.data.shape_keys name
    mapping: dict[str, str] = field(default_factory=dict)   # ARKit -> shape key
    armature: str = ""
    head_bone: str = ""
    eyes: dict[str, str] = field(default_factory=dict)      # "left"/"right" -> bone
    rest: dict[str, np.ndarray] = field(default_factory=dict)
    head_object: str = ""
    object_rest: np.ndarray | None = None             # 3x3 rotation | location, shape = (3, 4)
    axes: np.ndarray = field(default_factory=convert.character_axes)
    use_location: bool = False
    units_per_metre: float = 1.0


def _matrix3(m) -> np.ndarray:
    return np.array([list(row) for row in m.to_3x3()], np.float64)


def _units_per_metre(scene, ob) -> float:
    scale = ob.matrix_world.to_scale()[0] if ob is not None else 1.0
    return 1.0 / max(scene.unit_settings.scale_length * abs(scale), 1e-9)


def _object_rest(ob) -> np.ndarray:
    stored = ob.get(REST_PROP)
    if stored is not None and len(stored) == 12:
        return np.array(stored, np.float64).reshape(3, 4)
    rest = np.concatenate([_matrix3(ob.matrix_basis.to_quaternion().to_matrix()),
                           np.array(ob.location, np.float64)[:, None]], 1)
    ob[REST_PROP] = rest.ravel().tolist()
    return rest


def character_rig(scene, s) -> CharacterRig:
    rig = CharacterRig(axes=convert.character_axes(s.forward_axis, s.up_axis), use_location=s.use_head_location)
    if s.mesh is not None:
        key = s.mesh.data.shape_keys
        if key is None:
            raise AddonError(f"the mesh {s.mesh.name} has no shape keys: give it the 52 ARKit shape keys, or "
                             "clear the face mesh")
        overrides = {m.arkit: m.shape_key for m in s.mapping if m.arkit}
        rig.key, rig.mapping = key.name, convert.match_shape_keys(key.key_blocks.keys(), s.prefix, overrides)
        if not rig.mapping:
            raise AddonError(f"none of the 52 ARKit names matches a shape key of {s.mesh.name}: set the prefix, "
                             "or press Auto-map and fill in the mapping")
    bones = {}
    if s.head_target == 'BONE' and s.head_bone:
        bones["head"] = s.head_bone
    for side in ("left", "right"):
        if getattr(s, f"eye_{side}_bone"):
            bones[side] = getattr(s, f"eye_{side}_bone")
    if bones:
        arm = s.armature
        if arm is None:
            raise AddonError("head or eye bones are set but no armature: pick the armature in the talkinghead panel")
        for role, name in bones.items():
            if name not in arm.data.bones:
                raise AddonError(f"the armature {arm.name} has no bone {name!r} (the {role}): pick one of its bones")
            rig.rest[name] = _matrix3(arm.data.bones[name].matrix_local)
        rig.armature, rig.head_bone = arm.name, bones.get("head", "")
        rig.eyes = {side: bones[side] for side in ("left", "right") if side in bones}
        rig.units_per_metre = _units_per_metre(scene, arm)
    if s.head_target == 'OBJECT':
        if s.head_object is None:
            raise AddonError("the head is set to an object but none is picked: pick the head object")
        rig.head_object, rig.object_rest = s.head_object.name, _object_rest(s.head_object)
        rig.units_per_metre = _units_per_metre(scene, s.head_object.parent)
    if not (rig.mapping or rig.head_bone or rig.eyes or rig.head_object):
        raise AddonError("nothing to drive: pick a face mesh with ARKit shape keys, a head (bone or object) "
                         "or eye bones in the talkinghead panel")
    return rig


def character_channels(rig: CharacterRig, take: convert.Take) -> dict:
    """{datablock: [Channel]} for the take: the shape keys' Key, the armature, the head object."""
    out: dict = {}
    key = bpy.data.shape_keys.get(rig.key) if rig.key else None
    if key is not None and rig.mapping:
        out[key] = convert.shape_key_channels(take, rig.mapping)
    arm = bpy.data.objects.get(rig.armature) if rig.armature else None
    if arm is not None:
        chans = []
        head = convert.to_armature(convert.head_rotations(take), rig.axes)
        targets = [(rig.head_bone, head)] if rig.head_bone else []
        targets += [(bone, convert.to_armature(convert.gaze_rotations(take, side), rig.axes))
                    for side, bone in rig.eyes.items()]
        for bone, rotations in targets:
            pbone = arm.pose.bones.get(bone)
            if pbone is None:
                raise AddonError(f"the bone {bone!r} is gone from {arm.name}: pick the bones again")
            prefix = f'pose.bones["{convert.escape_name(bone)}"].'
            chans += convert.rotation_channels(prefix, convert.to_bone(rotations, rig.rest[bone]),
                                               pbone.rotation_mode, bone)
        if rig.head_bone and rig.use_location:
            offsets = convert.head_offsets(take, rig.axes, rig.units_per_metre) @ rig.rest[rig.head_bone]
            chans += convert.location_channels(f'pose.bones["{convert.escape_name(rig.head_bone)}"].', offsets,
                                               group=rig.head_bone)
        out[arm] = chans
    ob = bpy.data.objects.get(rig.head_object) if rig.head_object else None
    if ob is not None:
        rest = rig.object_rest
        rotations = convert.to_armature(convert.head_rotations(take), rig.axes) @ rest[:, :3]
        chans = convert.rotation_channels("", rotations, ob.rotation_mode, "Object Transforms")
        if rig.use_location:
            chans += convert.location_channels("", convert.head_offsets(take, rig.axes, rig.units_per_metre),
                                               rest[:, 3], "Object Transforms")
        out[ob] = out.get(ob, []) + chans
    return out


# -- writing ----------------------------------------------------------------------------------

def _fill(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    points = fcurve.keyframe_points
    points.add(len(frames))
    points.foreach_set("co", convert.keyframe_co(frames, values))
    points.foreach_set("interpolation", np.full(len(frames), LINEAR, np.int32))
    fcurve.update()


def _new_fcurve(bag, c):
    if FCURVE_GROUPS == "group_name":
        return bag.fcurves.new(c.data_path, index=c.index, group_name=c.group)
    fcurve = bag.fcurves.new(c.data_path, index=c.index)
    if c.group:
        fcurve.group = bag.groups.get(c.group) or bag.groups.new(c.group)
    return fcurve


def write_action(name: str, channels: dict, frames: np.ndarray) -> list:
    """Keyframes for every channel at `frames` (scene frames), assigned to their datablocks.
    Returns the actions made: one (slotted actions, 4.4+) or one per datablock (4.2/4.3)."""
    action = bpy.data.actions.new(name)
    action.use_fake_user = True                       # earlier takes stay around for the NLA
    actions = [action]
    layered = ACTIONS == "slotted"
    if layered:
        strip = action.layers.new("talkinghead").strips.new(type='KEYFRAME')
    for n, (id_block, chans) in enumerate(channels.items()):
        if not chans:
            continue
        if layered:
            slot = action.slots.new(id_type=id_block.id_type, name=id_block.name)
            bag = strip.channelbags.new(slot)
            for c in chans:
                _fill(_new_fcurve(bag, c), frames, c.values)
            target = action
        else:                                         # Blender 4.2/4.3: an action animates one datablock
            target = action if n == 0 else bpy.data.actions.new(f"{name} ({id_block.name})")
            if target not in actions:
                target.use_fake_user = True
                actions.append(target)
            target.id_root = id_block.id_type
            for c in chans:
                _fill(target.fcurves.new(c.data_path, index=c.index, action_group=c.group), frames, c.values)
        anim = id_block.animation_data or id_block.animation_data_create()
        anim.action = target
        if layered:
            anim.action_slot = slot
    return actions


def apply_values(channels: dict, i: int = -1) -> None:
    """Pose the channels' targets at take frame `i` (Live: no keyframes)."""
    for id_block, chans in channels.items():
        for c in chans:
            owner_path, _, prop = c.data_path.rpartition(".")
            owner = id_block.path_resolve(owner_path) if owner_path else id_block
            value = float(c.values[i])
            current = getattr(owner, prop)
            if hasattr(current, "__len__"):
                current[c.index] = value
            else:
                setattr(owner, prop, value)


def strips(scene, everything: bool = False):
    se = scene.sequence_editor or scene.sequence_editor_create()
    if hasattr(se, "strips"):                         # 4.4+ ("sequences" went away in 5.0)
        return se.strips_all if everything else se.strips
    return se.sequences_all if everything else se.sequences


def add_sound_strip(scene, filepath: str, start: int, name: str):
    """The line's audio as a sound strip from `start`, so playback is in sync (reused when the same
    file already starts there). None in a Blender built without audio (the `bpy` module of 4.2),
    which cannot make sound strips."""
    if not bpy.app.build_options.audaspace:
        return None
    path = os.path.normpath(bpy.path.abspath(filepath))
    for s in strips(scene, True):
        if (s.type == 'SOUND' and s.sound and int(s.frame_start) == start
                and os.path.normpath(bpy.path.abspath(s.sound.filepath)) == path):
            return s
    channel = min(128, 1 + max((s.channel for s in strips(scene, True)), default=0))
    return strips(scene).new_sound(name, filepath, channel, start)


def portrait_plane(scene, s, image, width: int, height: int):
    """The plane that shows `image` (emission, so it looks like the photo whatever the lights):
    the panel's plane, or a new one 1 unit tall at the 3D cursor facing -Y (the front view)."""
    plane = s.plane
    if plane is None:
        a, b = 0.5 * width / max(height, 1), 0.5
        mesh = bpy.data.meshes.new(PLANE)
        mesh.from_pydata([(-a, 0, -b), (a, 0, -b), (a, 0, b), (-a, 0, b)], [], [(0, 1, 2, 3)])
        uv = mesh.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", [0, 0, 1, 0, 1, 1, 0, 1])
        plane = bpy.data.objects.new(PLANE, mesh)
        plane.location = scene.cursor.location
        scene.collection.objects.link(plane)
        s.plane = plane
    mat = plane.active_material
    if mat is None or mat.get("talkinghead") is None:
        mat = bpy.data.materials.new(PLANE)
        mat["talkinghead"] = 1
        if bpy.app.version < (5, 0, 0):          # 5.0: materials always use nodes
            mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        nodes.clear()
        tex = nodes.new("ShaderNodeTexImage")
        tex.name = "talkinghead image"
        emit = nodes.new("ShaderNodeEmission")
        out = nodes.new("ShaderNodeOutputMaterial")
        tex.location, emit.location, out.location = (-400, 0), (-100, 0), (150, 0)
        links.new(tex.outputs["Color"], emit.inputs["Color"])
        links.new(emit.outputs["Emission"], out.inputs["Surface"])
        if plane.data.materials:
            plane.data.materials[0] = mat
        else:
            plane.data.materials.append(mat)
    tex = mat.node_tree.nodes["talkinghead image"]
    tex.image = image
    return plane, tex


def image_sequence(scene, s, files: list[str], start: int, width: int, height: int, name: str):
    """The baked frames as an image sequence on the plane: file k shows at scene frame start + k - 1."""
    image = bpy.data.images.load(files[0], check_existing=False)
    image.name = f"talkinghead {name}"
    image.source = 'SEQUENCE'
    plane, tex = portrait_plane(scene, s, image, width, height)
    user = tex.image_user
    user.frame_duration = len(files)
    user.frame_start = start
    user.frame_offset = 0
    user.use_auto_refresh = True
    user.use_cyclic = False
    return plane, image
