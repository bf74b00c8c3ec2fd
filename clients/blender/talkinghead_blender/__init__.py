"""talkinghead for Blender: lip-sync a character, or animate a portrait plane, from speech.

A Blender extension (blender_manifest.toml) that talks to a `talkinghead serve` server over gRPC.
The panel is in the 3D View's sidebar (N), tab "talkinghead". Layout:

    convert.py, audio.py, errors.py   bpy-free: frames -> keyframe arrays, names, units, audio
    client.py (+ _proto/)             bpy-free: the gRPC client, jobs on a worker thread
    props.py, prefs.py, ops.py, animate.py, panel.py
                                      Blender: settings, preferences, operators, writing data, the panel

The Blender modules are imported in register(), so the bpy-free ones import (and test) without
Blender. Build the installable zip with `talkinghead blender-addon -o talkinghead_blender.zip`.
"""

MODULES = ("props", "prefs", "ops", "panel")


def _modules():
    import importlib

    return [importlib.import_module(f".{name}", __package__) for name in MODULES]


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
