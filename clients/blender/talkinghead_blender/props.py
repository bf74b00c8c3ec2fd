"""Per-scene settings (saved in the .blend) and the runtime status the panel shows."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from .convert import AXES

AXIS_ITEMS = [(a, a, f"the character's axis along {a} of its armature (or parent)") for a in AXES]


def _is_armature(_self, ob) -> bool:
    return ob.type == 'ARMATURE'


def _is_mesh(_self, ob) -> bool:
    return ob.type == 'MESH'


class TALKINGHEAD_PG_mapping_item(bpy.types.PropertyGroup):
    arkit: StringProperty(name="ARKit", description="ARKit blendshape name")
    shape_key: StringProperty(name="Shape key", description="the shape key that plays it (empty: not driven)")


class TALKINGHEAD_PG_settings(bpy.types.PropertyGroup):
    mode: EnumProperty(name="Mode", items=[
        ('CHARACTER', "Character", "drive a rig: ARKit shape keys, head and eye bones"),
        ('IMAGE', "Portrait plane", "a plane showing the animated portrait photo"),
    ], default='CHARACTER')

    # -- audio
    audio_source: EnumProperty(name="Audio", items=[
        ('FILE', "File", "a speech file; Bake adds it as a sound strip at the start frame"),
        ('STRIP', "Sound strip", "a sound strip of this scene; the animation starts where the strip starts"),
    ], default='FILE')
    audio_file: StringProperty(name="Audio file", subtype='FILE_PATH',
                               description="speech: WAV, FLAC, OGG, MP3 or M4A (Live streams WAV, or whatever "
                                           "Blender can play)")
    audio_strip: StringProperty(name="Sound strip", description="a sound strip of this scene's sequencer")
    start_frame: IntProperty(name="Start frame", default=1,
                             description="the scene frame of the audio's first sample (audio from a file)")
    transcript: StringProperty(name="Transcript", description="the words spoken (optional; better lips in English)")

    # -- character
    mesh: PointerProperty(name="Face mesh", type=bpy.types.Object, poll=_is_mesh,
                          description="the mesh whose shape keys carry the ARKit names")
    prefix: StringProperty(name="Prefix", description="a prefix of the shape key names, e.g. 'ARKit_' (optional: "
                                                      "names are matched case-insensitively, any prefix)")
    mapping: CollectionProperty(type=TALKINGHEAD_PG_mapping_item)
    mapping_index: IntProperty()
    armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                              description="the rig with the head and eye bones")
    head_target: EnumProperty(name="Head", items=[
        ('BONE', "Bone", "turn a bone of the armature"),
        ('OBJECT', "Object", "turn an object (about its origin)"),
        ('NONE', "None", "leave the head still"),
    ], default='BONE')
    head_bone: StringProperty(name="Head bone", default="head")
    head_object: PointerProperty(name="Head object", type=bpy.types.Object)
    eye_left_bone: StringProperty(name="Left eye", description="the bone of the subject's left eye (optional)")
    eye_right_bone: StringProperty(name="Right eye", description="the bone of the subject's right eye (optional)")
    use_head_location: BoolProperty(name="Head position", default=False,
                                    description="also move the head (the service's millimetre offsets)")
    forward_axis: EnumProperty(name="Faces", items=AXIS_ITEMS, default='-Y',
                               description="the way the character looks, in its armature's space (Blender: -Y)")
    up_axis: EnumProperty(name="Up", items=AXIS_ITEMS, default='+Z',
                          description="the character's up, in its armature's space (Blender: +Z)")

    # -- image
    portrait: StringProperty(name="Portrait", subtype='FILE_PATH',
                             description="a photo with one face (JPEG, PNG, WebP, ...)")
    image_size: IntProperty(name="Size", default=512, min=256, max=1024, description="output pixels")
    framing: EnumProperty(name="Framing", items=[('FACE', "Face", "a square around the head"),
                                                 ('FULL', "Full", "the whole photo")], default='FACE')
    image_format: EnumProperty(name="Format", items=[('JPEG', "JPEG", "small files (quality 95)"),
                                                     ('PNG', "PNG", "lossless, larger")], default='JPEG')
    output_dir: StringProperty(name="Folder", subtype='DIR_PATH', default="//talkinghead",
                               description="where Bake writes the image sequence (a folder per line)")
    plane: PointerProperty(name="Plane", type=bpy.types.Object, poll=_is_mesh,
                           description="the plane to show the portrait on (empty: one is made)")

    # -- motion (the service's MotionOptions)
    seed: IntProperty(name="Seed", default=0, min=0, description="same seed, same blinks, gaze and head motion")
    expressiveness: FloatProperty(name="Expressiveness", default=1.0, min=0.0, max=2.0)
    head_motion: FloatProperty(name="Head motion", default=1.0, min=0.0, max=2.0, description="0 = still")
    blink_rate: FloatProperty(name="Blinks / min", default=17.0, min=0.0, max=60.0)
    emotion: EnumProperty(name="Emotion", items=[(e.upper(), e.title(), "") for e in
                                                 ("neutral", "happy", "sad", "angry", "surprised")])
    emotion_intensity: FloatProperty(name="Intensity", default=0.5, min=0.0, max=1.0)
    gaze: EnumProperty(name="Gaze", items=[('CAMERA', "Camera", "hold eye contact"),
                                           ('WANDER', "Wander", "look around more")])
    lipsync: EnumProperty(name="Lip sync", items=[
        ('AUTO', "Auto", "the transcript aligned (any language); without one, phones recognised (English) "
                         "with the phone model where they miss"),
        ('MODEL', "Phone model", "the project's phone model alone: any language"),
        ('ACOUSTIC', "Acoustic", "the old formant rules (kept for comparison)"),
    ])
    language: StringProperty(name="Language", default="en",
                             description="ISO code of the speech and transcript: en, it, fi, de, ... "
                                         "(any language espeak-ng speaks); auto = ignore the transcript")


class TALKINGHEAD_PG_status(bpy.types.PropertyGroup):
    """Runtime only (on the window manager, never saved)."""

    running: BoolProperty()
    job: StringProperty()            # "bake" or "live"
    stage: StringProperty()
    progress: FloatProperty(min=0.0, max=1.0, subtype='FACTOR')
    message: StringProperty()        # the last outcome, e.g. "baked 259 frames"
    error: StringProperty()


CLASSES = (TALKINGHEAD_PG_mapping_item, TALKINGHEAD_PG_settings, TALKINGHEAD_PG_status)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.Scene.talkinghead = PointerProperty(type=TALKINGHEAD_PG_settings)
    bpy.types.WindowManager.talkinghead_status = PointerProperty(type=TALKINGHEAD_PG_status)


def unregister() -> None:
    del bpy.types.WindowManager.talkinghead_status
    del bpy.types.Scene.talkinghead
    _unregister_classes()
