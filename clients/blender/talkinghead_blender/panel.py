"""The sidebar panel (3D View > Sidebar > talkinghead)."""

from __future__ import annotations

import bpy

from . import prefs


def _strips_collection(scene):
    se = scene.sequence_editor
    if se is None:
        return None, ""
    return se, "strips_all" if hasattr(se, "strips_all") else "sequences_all"


class TALKINGHEAD_UL_mapping(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0):
        s = context.scene.talkinghead
        row = layout.row(align=True)
        row.label(text=item.arkit)
        key = s.mesh.data.shape_keys if s.mesh is not None else None
        if key is not None:
            row.prop_search(item, "shape_key", key, "key_blocks", text="")
        else:
            row.prop(item, "shape_key", text="")


class _Sidebar:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "talkinghead"


class _Subpanel(_Sidebar):
    bl_parent_id = "TALKINGHEAD_PT_main"


class _ModeSubpanel(_Subpanel):
    """Shown only in one mode (scene.talkinghead.mode)."""

    settings_mode = ""

    @classmethod
    def poll(cls, context):
        return context.scene.talkinghead.mode == cls.settings_mode


def _settings_layout(panel, context):
    """The panel's layout (property split) and the scene's talkinghead settings."""
    layout = panel.layout
    layout.use_property_split = True
    return layout, context.scene.talkinghead


def _bone(layout, s, prop, arm) -> None:
    """A bone-name field: a search over the armature's bones when there is one."""
    if arm is not None:
        layout.prop_search(s, prop, arm, "bones")
    else:
        layout.prop(s, prop)


class TALKINGHEAD_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "talkinghead"

    def draw(self, context):
        layout = self.layout
        s, st = context.scene.talkinghead, context.window_manager.talkinghead_status
        p = prefs.get(context)
        col = layout.column(align=True)
        if hasattr(p, "bl_rna"):
            col.prop(p, "address", text="Server")
            col.prop(p, "token", text="Token")
        layout.row().prop(s, "mode", expand=True)

        row = layout.row(align=True)
        row.scale_y = 1.4
        busy = st.running
        sub = row.row(align=True)
        sub.enabled = not busy
        sub.operator("talkinghead.bake", icon='KEYINGSET' if s.mode == 'CHARACTER' else 'RENDER_ANIMATION')
        sub.operator("talkinghead.live", icon='PLAY')
        stop = row.row(align=True)
        stop.enabled = busy
        stop.operator("talkinghead.stop", icon='CANCEL')
        if busy:
            layout.progress(factor=st.progress, type='BAR', text=st.stage or st.job)
        elif st.message:
            layout.label(text=st.message, icon='INFO')
        if st.error:
            box = layout.box()
            box.alert = True
            for i, line in enumerate(_wrap(st.error, 48)):
                box.label(text=line, icon='ERROR' if i == 0 else 'BLANK1')


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


class TALKINGHEAD_PT_audio(_Subpanel, bpy.types.Panel):
    bl_label = "Audio"

    def draw(self, context):
        layout, s = _settings_layout(self, context)
        layout.prop(s, "audio_source", expand=True)
        if s.audio_source == 'FILE':
            layout.prop(s, "audio_file", text="File")
            layout.prop(s, "start_frame")
        else:
            se, coll = _strips_collection(context.scene)
            if se is not None:
                layout.prop_search(s, "audio_strip", se, coll, text="Strip")
            else:
                layout.label(text="This scene has no sound strips", icon='INFO')
        layout.prop(s, "transcript")
        layout.prop(s, "language")


class TALKINGHEAD_PT_character(_ModeSubpanel, bpy.types.Panel):
    bl_label = "Character"
    settings_mode = 'CHARACTER'

    def draw(self, context):
        layout, s = _settings_layout(self, context)
        layout.prop(s, "mesh")
        layout.prop(s, "prefix")
        row = layout.row(align=True)
        row.operator("talkinghead.auto_map")
        row.operator("talkinghead.clear_mapping", text="", icon='X')
        if len(s.mapping):
            layout.template_list("TALKINGHEAD_UL_mapping", "", s, "mapping", s, "mapping_index", rows=4)
        layout.separator()
        layout.prop(s, "armature")
        layout.prop(s, "head_target")
        arm = s.armature.data if s.armature is not None else None
        if s.head_target == 'BONE':
            _bone(layout, s, "head_bone", arm)
        elif s.head_target == 'OBJECT':
            layout.prop(s, "head_object")
        _bone(layout, s, "eye_left_bone", arm)
        _bone(layout, s, "eye_right_bone", arm)
        layout.prop(s, "use_head_location")
        col = layout.column(align=True)
        col.prop(s, "forward_axis")
        col.prop(s, "up_axis")


class TALKINGHEAD_PT_image(_ModeSubpanel, bpy.types.Panel):
    bl_label = "Portrait plane"
    settings_mode = 'IMAGE'

    def draw(self, context):
        layout, s = _settings_layout(self, context)
        for prop in ("portrait", "image_size", "framing", "image_format", "output_dir", "plane"):
            layout.prop(s, prop)


class TALKINGHEAD_PT_motion(_Subpanel, bpy.types.Panel):
    bl_label = "Motion"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout, s = _settings_layout(self, context)
        for prop in ("seed", "expressiveness", "head_motion", "blink_rate", "emotion", "emotion_intensity",
                     "gaze", "lipsync"):
            layout.prop(s, prop)


CLASSES = (TALKINGHEAD_UL_mapping, TALKINGHEAD_PT_main, TALKINGHEAD_PT_audio, TALKINGHEAD_PT_character,
           TALKINGHEAD_PT_image, TALKINGHEAD_PT_motion)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
