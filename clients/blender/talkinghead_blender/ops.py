"""Operators (Bake, Live, Stop, Auto-map) and the main-thread half of a job.

Threads: a job (client.py) talks to the server on its own thread and only fills a queue. Blender
data is touched here, on the main thread, by `tick()`: a `bpy.app.timers` callback that drains the
queue every 1/60 s (Live applies the newest frame, Bake writes everything once the last frame is
in). Stop cancels the gRPC call at once and forgets the session.

Errors: every mistake the user can fix is an `AddonError`. What is known when the button is
pressed (no audio, no shape keys, online access off) is reported by the operator; what the
server says later (down, wrong token) ends the session with the message in the panel and, when
the button was pressed in the UI, as the operator's report (a small modal watcher). Scripts and
background Blender wait for a bake (`bpy.ops.talkinghead.bake(wait=True)`, the default there), so
the report comes back from the call.

Writing into Blender data (keyframes, strips, the plane) is in animate.py.
"""

from __future__ import annotations

import os
import queue
import re
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy.props import BoolProperty

from . import audio, convert, prefs
from .animate import (CharacterRig, add_sound_strip, apply_values, character_channels, character_rig,
                      image_sequence, portrait_plane, strips, write_action)
from .errors import AddonError

TICK = 1 / 60
LIVE_IMAGE = "talkinghead live"

_session: "Session | None" = None


def status(context=None):
    return (context or bpy.context).window_manager.talkinghead_status


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {'VIEW_3D', 'PROPERTIES'}:
                area.tag_redraw()


def _client():
    try:
        from . import client
    except ImportError as exc:
        raise AddonError(f"the add-on's network libraries are missing ({exc.name}): install the extension from "
                         "the zip that `talkinghead blender-addon` builds (it bundles grpcio and protobuf)") from exc
    return client


# -- the session: one job at a time -----------------------------------------------------------

@dataclass
class AudioChoice:
    path: str            # a readable file (a packed sound is written to a temporary file)
    start: int           # scene frame of its first sample
    name: str
    add_strip: bool      # a file: Bake adds it to the sequencer


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "line"


def audio_choice(scene, s) -> AudioChoice:
    if s.audio_source == 'STRIP':
        strip = strips(scene, True).get(s.audio_strip) if s.audio_strip else None
        if strip is None or strip.type != 'SOUND' or strip.sound is None:
            raise AddonError("no sound strip chosen: pick a sound strip of this scene, or switch the audio to File")
        sound = strip.sound
        if sound.packed_file is not None:
            fd, path = tempfile.mkstemp(suffix=Path(sound.filepath).suffix or ".wav", prefix="talkinghead_")
            with os.fdopen(fd, "wb") as fh:
                fh.write(sound.packed_file.data)
        else:
            path = bpy.path.abspath(sound.filepath, library=sound.library)
        if not os.path.isfile(path):
            raise AddonError(f"the sound strip {strip.name} plays {path}, which does not exist: fix its file")
        return AudioChoice(path, int(strip.frame_start), Path(sound.filepath).stem or strip.name, False)
    if not s.audio_file:
        raise AddonError("no audio: choose a speech file (or a sound strip) in the talkinghead panel")
    path = bpy.path.abspath(s.audio_file)
    if not os.path.isfile(path):
        raise AddonError(f"the audio file {path} does not exist: choose a speech file")
    return AudioChoice(path, s.start_frame, Path(path).stem, True)


def _scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def _motion(s, fps: float):
    return _client().MotionSettings(fps=fps, seed=s.seed, expressiveness=s.expressiveness, head_motion=s.head_motion,
                                    blink_rate=s.blink_rate, emotion=s.emotion.lower(),
                                    emotion_intensity=s.emotion_intensity, gaze=s.gaze.lower(),
                                    lipsync=s.lipsync.lower(), language=s.language.strip() or "en")


def _portrait(s, size: int | None = None):
    path = bpy.path.abspath(s.portrait)
    if not s.portrait or not os.path.isfile(path):
        raise AddonError("no portrait: choose a photo with one face in the talkinghead panel (image mode)")
    return _client().PortraitSettings(Path(path).read_bytes(), size or s.image_size, s.framing)


def _output_dir(s, name: str) -> str:
    if s.output_dir.startswith("//") and not bpy.data.filepath:
        raise AddonError("the output folder is relative to the .blend file, which is not saved yet: save it, "
                         "or choose an absolute folder")
    return os.path.join(bpy.path.abspath(s.output_dir), _safe(name))


def _check_access(settings) -> None:
    convert.check_online_access(settings.target, bool(bpy.app.online_access))


class Session:
    """A running job and what the main thread does with its messages."""

    def __init__(self, kind: str, job, scene, audio: AudioChoice, rig: CharacterRig | None) -> None:
        self.kind, self.job, self.scene_name, self.audio, self.rig = kind, job, scene.name, audio, rig
        self.frames_applied = 0
        self.playback = None
        self.line_playing = False
        self.live_image = None

    @property
    def scene(self):
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise AddonError(f"the scene {self.scene_name} is gone: start again")
        return scene

    def drain(self) -> bool:
        """Apply what the worker has sent. False once the job is over."""
        latest = None
        while True:
            try:
                msg = self.job.queue.get_nowait()
            except queue.Empty:
                break
            if msg.kind == "frame":
                latest = msg.data
            elif msg.kind == "progress":
                st = status()
                st.stage, st.progress = msg.data[0], msg.data[1]
            elif msg.kind == "warning":
                status().message = msg.data
            elif msg.kind == "header" and self.kind == "live" and msg.data.width:
                self._live_image(msg.data.width, msg.data.height)
            elif msg.kind == "done":
                self.close(self._baked(msg.data) if self.kind == "bake" else "Live ended")
                return False
            elif msg.kind == "error":
                self.close(error=msg.data)
                return False
            elif msg.kind == "cancelled":
                self.close("stopped")
                return False
        if latest is not None:
            self._apply_live(latest)
        return True

    # -- Live
    def _live_image(self, width: int, height: int) -> None:
        image = bpy.data.images.get(LIVE_IMAGE)
        if image is None or tuple(image.size) != (width, height):
            if image is not None:
                bpy.data.images.remove(image)
            image = bpy.data.images.new(LIVE_IMAGE, width, height)
        self.live_image = image.name
        portrait_plane(self.scene, self.scene.talkinghead, image, width, height)

    def _apply_live(self, frame) -> None:
        if self.rig is not None:
            apply_values(character_channels(self.rig, frame.take))
        if frame.pixels is not None and self.live_image:
            image = bpy.data.images.get(self.live_image)
            if image is not None:
                image.pixels.foreach_set(frame.pixels)
                image.update()
        if not frame.idle and not self.line_playing:
            self.line_playing = True
            self._play()
        self.frames_applied += 1
        st = status()
        st.stage = f"live: frame {frame.index}" + (" (idle)" if frame.idle else "")
        st.progress = 0.0
        _redraw()

    def _play(self) -> None:
        """Start the line's sound as its first frame shows (both are paced to real time)."""
        if not prefs.get().play_audio:
            return
        try:
            import aud
            self.playback = aud.Device().play(aud.Sound(self.audio.path))
        except Exception:  # noqa: BLE001 - no audio device (a server, a headless machine): play silently
            self.playback = None

    # -- Bake
    def _baked(self, result) -> str:
        scene, s, take = self.scene, self.scene.talkinghead, result.take
        start = self.audio.start
        if result.images:
            image_sequence(scene, s, result.images, start, result.width, result.height, self.audio.name)
            n_scene = len(result.images)
            what = f"an image sequence of {n_scene} frames in {os.path.dirname(result.images[0])}"
        else:
            frames = convert.scene_frames(take.n_frames, take.fps, _scene_fps(scene), start)
            actions = write_action(f"talkinghead {self.audio.name}", character_channels(self.rig, take), frames)
            n_scene = int(round(float(frames[-1]))) - start + 1
            what = f"{take.n_frames} frames into {', '.join(a.name for a in actions)}"
        sound = ""
        if self.audio.add_strip and add_sound_strip(scene, self.audio.path, start, Path(self.audio.path).name) is None:
            sound = "; no sound strip: this Blender was built without audio"
        if scene.frame_end < start + n_scene - 1:
            scene.frame_end = start + n_scene - 1
        return f"baked {what} ({take.duration:.2f} s from frame {start}){sound}"

    def close(self, message: str = "", error: str = "") -> None:
        global _session
        self.job.cancel()
        if self.playback is not None:
            try:
                self.playback.stop()
            except Exception:  # noqa: BLE001 - already finished
                pass
        st = status()
        st.running, st.progress = False, 0.0 if error else 1.0
        st.stage, st.message, st.error = "", message, error
        if error:
            print(f"talkinghead: {error}")
        if _session is self:
            _session = None
        _redraw()


def tick():
    """The timer: drain the session's queue on the main thread. Returns the next interval, or
    None (stop) when no session runs."""
    session = _session
    if session is None:
        return None
    try:
        alive = session.drain()
    except AddonError as exc:
        session.close(error=str(exc))
        alive = False
    except Exception as exc:  # noqa: BLE001 - a timer that raises is dropped silently by Blender
        traceback.print_exc()
        session.close(error=f"internal error in the talkinghead add-on ({type(exc).__name__}: {exc}); see the "
                            "system console")
        alive = False
    return TICK if alive else None


def start(kind: str, context) -> Session:
    """Start a Bake or Live session from the scene's settings (raises AddonError)."""
    global _session
    if _session is not None:
        raise AddonError(f"talkinghead is already running ({_session.kind}): press Stop first")
    scene, s = context.scene, context.scene.talkinghead
    client = _client()
    settings = prefs.server_settings(context)
    _check_access(settings)
    choice = audio_choice(scene, s)
    rig = character_rig(scene, s) if s.mode == 'CHARACTER' else None
    fps = _scene_fps(scene) if rig is not None else convert.image_fps(_scene_fps(scene))
    if kind == "live":
        portrait = _portrait(s) if rig is None else None
        job = client.LiveJob(settings, choice.path, _motion(s, fps), portrait=portrait, transcript=s.transcript)
    else:
        image = {} if rig is not None else {"portrait": _portrait(s), "image_dir": _output_dir(s, choice.name),
                                            "image_format": s.image_format, "scene_fps": _scene_fps(scene)}
        job = client.BakeJob(settings, Path(choice.path).read_bytes(), _motion(s, fps), transcript=s.transcript,
                             expected_seconds=audio.duration_seconds(choice.path), **image)
    _session = Session(kind, job, scene, choice, rig)
    st = status(context)
    st.running, st.job, st.stage, st.progress, st.message, st.error = True, kind, "connecting", 0.0, "", ""
    job.start()
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK)
    return _session


def stop() -> bool:
    """Cancel whatever runs, at once. True if something was running."""
    session = _session
    if session is None:
        return False
    session.close("stopped")
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    return True


def wait(session: Session, timeout: float | None = None) -> None:
    """Block until the session's job ends, then drain it (scripts, background Blender)."""
    session.job.join(timeout)
    while _session is session and tick() is not None:
        session.job.join(0.05)


# -- operators --------------------------------------------------------------------------------

class _Starts:
    """Bake and Live: start a session; in the UI a modal watcher then turns its outcome into the
    operator's report."""

    kind = ""
    _timer = None

    def _outcome(self, context, waited: bool) -> set[str]:
        st = status(context)
        if st.error:
            self.report({'ERROR'}, st.error)
            return {'CANCELLED'}
        self.report({'INFO'}, st.message or ("live: streaming" if not waited else "done"))
        return {'FINISHED'}

    def execute(self, context):
        try:
            session = start(self.kind, context)
        except AddonError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        if self.kind == "bake" and self._waits():
            wait(session)
            return self._outcome(context, True)
        return {'FINISHED'}

    def _waits(self) -> bool:
        return self.wait if self.properties.is_property_set("wait") else bpy.app.background

    def invoke(self, context, event):
        result = self.execute(context)
        if result != {'FINISHED'} or _session is None or context.window is None:
            return result
        self._watched = _session
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        running = _session is self._watched
        if running and not (self.kind == "live" and self._watched.frames_applied):
            return {'PASS_THROUGH'}
        context.window_manager.event_timer_remove(self._timer)
        return self._outcome(context, not running)


class TALKINGHEAD_OT_bake(_Starts, bpy.types.Operator):
    """Animate the whole line from the server: keyframes on the character (or an image sequence on
    the portrait plane) plus the audio as a sound strip, from the start frame"""

    bl_idname = "talkinghead.bake"
    bl_label = "Bake"
    # Not REGISTER: a redo would start a second bake. The data is written later, by the timer.
    kind = "bake"

    wait: BoolProperty(name="Wait", options={'SKIP_SAVE'},
                       description="block until the bake is done (the default in background mode and scripts)")


class TALKINGHEAD_OT_live(_Starts, bpy.types.Operator):
    """Stream the line to the server in real time and show each frame as it comes back (no
    keyframes); the face idles after the line until Stop"""

    bl_idname = "talkinghead.live"
    bl_label = "Live"
    kind = "live"


class TALKINGHEAD_OT_stop(bpy.types.Operator):
    """Stop the running bake or Live stream now"""

    bl_idname = "talkinghead.stop"
    bl_label = "Stop"

    def execute(self, context):
        if not stop():
            self.report({'INFO'}, "nothing is running")
        return {'FINISHED'}


class TALKINGHEAD_OT_auto_map(bpy.types.Operator):
    """Fill the mapping with the shape key found for each of the 52 ARKit names (edit the rest by hand)"""

    bl_idname = "talkinghead.auto_map"
    bl_label = "Auto-map"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        s = context.scene.talkinghead
        if s.mesh is None or s.mesh.data.shape_keys is None:
            self.report({'ERROR'}, "pick a face mesh with shape keys first")
            return {'CANCELLED'}
        found = convert.match_shape_keys(s.mesh.data.shape_keys.key_blocks.keys(), s.prefix)
        s.mapping.clear()
        for name in convert.ARKIT_NAMES:
            item = s.mapping.add()
            item.arkit, item.shape_key = name, found.get(name, "")
        self.report({'INFO'}, f"matched {len(found)} of 52 ARKit names")
        return {'FINISHED'}


class TALKINGHEAD_OT_clear_mapping(bpy.types.Operator):
    """Forget the mapping: match shape keys by name alone"""

    bl_idname = "talkinghead.clear_mapping"
    bl_label = "Clear mapping"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        context.scene.talkinghead.mapping.clear()
        return {'FINISHED'}


@bpy.app.handlers.persistent
def _on_load(*_args) -> None:
    stop()


CLASSES = (TALKINGHEAD_OT_bake, TALKINGHEAD_OT_live, TALKINGHEAD_OT_stop, TALKINGHEAD_OT_auto_map,
           TALKINGHEAD_OT_clear_mapping)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.app.handlers.load_pre.append(_on_load)


def unregister() -> None:
    stop()
    if _on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load)
    _unregister_classes()
