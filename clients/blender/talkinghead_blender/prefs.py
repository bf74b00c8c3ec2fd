"""Add-on preferences: where the server is and how to reach it (shared by every .blend file)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

TOKEN_ENV = "TALKINGHEAD_TOKEN"     # used when the token field is empty, like `talkinghead serve`


class TalkingHeadPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: StringProperty(name="Server", default="127.0.0.1:50051",
                            description="host:port of `talkinghead serve`")
    token: StringProperty(name="Token", subtype='PASSWORD', default="",
                          description=f"the server's --token (empty: ${TOKEN_ENV}, or none)")
    use_tls: BoolProperty(name="TLS", default=False, description="the server runs with --tls-cert")
    ca_file: StringProperty(name="CA", subtype='FILE_PATH',
                            description="the server's CA certificate (PEM); empty: the system's roots")
    timeout: FloatProperty(name="Bake timeout (s)", default=900.0, min=10.0)
    play_audio: BoolProperty(name="Play audio in Live", default=True,
                             description="play the line through Blender's audio device while Live runs")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "address")
        col.prop(self, "token")
        row = col.row()
        row.prop(self, "use_tls")
        sub = row.row()
        sub.active = self.use_tls
        sub.prop(self, "ca_file")
        col.prop(self, "timeout")
        col.prop(self, "play_audio")


_DEFAULTS = SimpleNamespace(address="127.0.0.1:50051", token="", use_tls=False, ca_file="", timeout=900.0,
                            play_audio=True)


def get(context=None):
    """The preferences, or the defaults when the add-on was registered outside Blender's add-on
    system (a script calling register())."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else _DEFAULTS


def server_settings(context=None):
    """client.ServerSettings from the preferences (client is imported here: it needs grpc)."""
    from .client import ServerSettings

    p = get(context)
    return ServerSettings(address=p.address, token=p.token or os.environ.get(TOKEN_ENV, ""), use_tls=p.use_tls,
                          ca_file=bpy.path.abspath(p.ca_file) if p.ca_file else "", timeout=p.timeout)


CLASSES = (TalkingHeadPreferences,)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
