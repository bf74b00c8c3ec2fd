"""Unreal editor script: import a talkinghead take as an AnimSequence of ARKit curves (+ its audio).

Run it in the Unreal editor (Python Editor Script Plugin enabled), from the Output Log's `Cmd`
box (switch it to `Python` or prefix with `py`)::

    py "C:/talkinghead/clients/unreal/import_take.py" --take "C:/takes/line.csv"
       --skeleton /Game/MetaHumans/Common/Face/Face_Archetype_Skeleton
       --audio "C:/takes/line.wav" --destination /Game/Dialogue [--name Line01] [--fps 30]
       [--naming livelink|arkit] [--replace]
    py ".../import_take.py" --folder "C:/takes" --skeleton ... --destination /Game/Dialogue [--audio-folder DIR]

It creates `<destination>/AS_<name>` (an AnimSequence on --skeleton with one float curve per
ARKit channel, keyed every frame) and, with --audio, `<destination>/SW_<name>` (a SoundWave).
With --folder it imports every take `talkinghead batch -o` wrote there, each with its audio (the
file the batch report names, else `<id>.wav` etc. in --audio-folder or the folder itself); a take
that fails is reported and the others go on. See README.md in this folder for playing the result
on a MetaHuman.

Everything that does not need the editor (reading takes, naming, units, resampling) lives in
`talkinghead_take.py` next to this file and is tested with plain pytest; this file is only the
calls into the `unreal` API (names per Epic's Python API reference: AnimSequenceFactory,
AssetTools.create_asset, AnimationDataController.set_frame_rate / set_number_of_frames,
AnimationLibrary.add_curve / add_float_curve_keys, AssetImportTask, AssetTools.import_asset_tasks).
"""

from __future__ import annotations

import argparse
import os
import sys

import unreal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the pure half lives next to this file
import talkinghead_take as takes  # noqa: E402


class TakeImportError(Exception):
    """A problem the user can fix (missing skeleton, asset exists, audio failed to import)."""


def _asset_path(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def _make_room(path: str, replace: bool) -> None:
    if unreal.EditorAssetLibrary.does_asset_exist(path):
        if not replace:
            raise TakeImportError(f"{path} already exists: pass --replace to overwrite it, or choose another --name")
        unreal.EditorAssetLibrary.delete_asset(path)


def create_anim_sequence(take: takes.Take, skeleton_path: str, folder: str, name: str, fps: float | None = None,
                         naming: str = "livelink", replace: bool = False):
    """An AnimSequence on the skeleton with the take's 61 curves keyed on every frame at `fps`."""
    skeleton = unreal.EditorAssetLibrary.load_asset(skeleton_path)
    if skeleton is None or not isinstance(skeleton, unreal.Skeleton):
        raise TakeImportError(f"no Skeleton at {skeleton_path}: give the face skeleton, e.g. "
                           "/Game/MetaHumans/Common/Face/Face_Archetype_Skeleton")
    fps = float(fps or take.fps)
    grid = takes.resample(take, fps)
    numerator, denominator = takes.frame_rate_fraction(fps)
    path = _asset_path(folder, name)
    _make_room(path, replace)

    factory = unreal.AnimSequenceFactory()
    factory.set_editor_property("target_skeleton", skeleton)
    anim = unreal.AssetToolsHelpers.get_asset_tools().create_asset(name, folder, unreal.AnimSequence, factory)
    if anim is None:
        raise TakeImportError(f"Unreal could not create {path} (see the Output Log)")

    controller = anim.get_editor_property("controller")
    controller.open_bracket("Import talkinghead take", False)  # one change notification, not 61 * n
    try:
        controller.set_frame_rate(unreal.FrameRate(numerator, denominator), False)
        controller.set_number_of_frames(unreal.FrameNumber(grid.n_frames), False)
        times = list(grid.times)
        for curve in takes.LIVELINK_CURVES:
            curve_name = takes.curve_name(curve, naming)
            unreal.AnimationLibrary.add_curve(anim, curve_name, unreal.RawCurveTrackTypes.RCT_FLOAT, False)
            unreal.AnimationLibrary.add_float_curve_keys(anim, curve_name, times, list(grid.curves[curve]))
    finally:
        controller.close_bracket(False)
    unreal.EditorAssetLibrary.save_loaded_asset(anim)
    return anim


def import_sound(audio_path: str, folder: str, name: str, replace: bool = False):
    """The audio file as a SoundWave asset (automated import, no dialogs)."""
    if not os.path.isfile(audio_path):
        raise TakeImportError(f"no audio file at {audio_path}: check --audio")
    _make_room(_asset_path(folder, name), replace)
    task = unreal.AssetImportTask()
    task.set_editor_property("filename", os.path.abspath(audio_path))
    task.set_editor_property("destination_path", folder)
    task.set_editor_property("destination_name", name)
    task.set_editor_property("automated", True)
    task.set_editor_property("replace_existing", replace)
    task.set_editor_property("save", True)
    unreal.AssetToolsHelpers.get_asset_tools().import_asset_tasks([task])
    imported = list(task.get_editor_property("imported_object_paths") or [])
    if not imported:
        raise TakeImportError(f"Unreal did not import {audio_path} as sound (see the Output Log); "
                           "WAV (16-bit PCM) always works")
    return unreal.EditorAssetLibrary.load_asset(imported[0])


def import_take(take_path: str, skeleton_path: str, folder: str = "/Game/TalkingHead", name: str | None = None,
                audio_path: str | None = None, fps: float | None = None, naming: str = "livelink",
                replace: bool = False):
    """Import one take (and optionally its audio). Returns (AnimSequence, SoundWave or None)."""
    take = takes.read_take(take_path)
    base = takes.asset_name(name or take_path)
    anim = create_anim_sequence(take, skeleton_path, folder, "AS_" + base, fps, naming, replace)
    sound = import_sound(audio_path, folder, "SW_" + base, replace) if audio_path else None
    unreal.log(f"talkinghead: imported {take_path} -> {anim.get_path_name()} ({take.n_frames} frames, "
               f"{take.duration:.2f} s)" + (f" and {sound.get_path_name()}" if sound else ""))
    return anim, sound


def import_folder(folder: str, skeleton_path: str, destination: str = "/Game/TalkingHead",
                  audio_folder: str | None = None, fps: float | None = None, naming: str = "livelink",
                  replace: bool = False, prefer: str = "json") -> tuple[list, list]:
    """Import every take of a folder (see talkinghead_take.folder_takes). Returns ([(name, anim,
    sound)], [(name, error)]): one take that fails does not stop the others."""
    done, failed = [], []
    for item in takes.folder_takes(folder, prefer, audio_folder):
        try:
            anim, sound = import_take(item.take, skeleton_path, destination, item.name, item.audio, fps, naming,
                                      replace)
            done.append((item.name, anim, sound))
        except (takes.TakeError, TakeImportError) as e:
            unreal.log_error(f"talkinghead: {item.name}: {e}")
            failed.append((item.name, str(e)))
    unreal.log(f"talkinghead: imported {len(done)} takes from {folder}" + (f", {len(failed)} failed" if failed else ""))
    return done, failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="import_take.py", description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--take", help="talkinghead take: .json or Live Link Face .csv")
    which.add_argument("--folder", help="a folder of takes (talkinghead batch -o FOLDER): import them all")
    p.add_argument("--skeleton", required=True, help="Skeleton asset path, e.g. the MetaHuman face skeleton")
    p.add_argument("--audio", help="the line's audio file (WAV) to import as a SoundWave")
    p.add_argument("--audio-folder", help="with --folder: where <take name>.wav etc. are, when the batch report's "
                                          "audio paths are not on this machine (default: the folder)")
    p.add_argument("--prefer", choices=("json", "csv"), default="json",
                   help="with --folder: the take to import when a line has both (default json)")
    p.add_argument("--destination", default="/Game/TalkingHead", help="content folder (default /Game/TalkingHead)")
    p.add_argument("--name", help="asset base name (default: the take's file name)")
    p.add_argument("--fps", type=float, help="key rate of the AnimSequence (default: the take's fps)")
    p.add_argument("--naming", choices=takes.NAMINGS, default="livelink",
                   help="curve names: livelink = EyeBlinkLeft.. (MetaHuman); arkit = eyeBlinkLeft.. (morph targets)")
    p.add_argument("--replace", action="store_true", help="overwrite existing assets of the same name")
    args = p.parse_args(argv)
    try:
        if args.folder:
            _, failed = import_folder(args.folder, args.skeleton, args.destination, args.audio_folder, args.fps,
                                      args.naming, args.replace, args.prefer)
            return 2 if failed else 0
        import_take(args.take, args.skeleton, args.destination, args.name, args.audio, args.fps, args.naming,
                    args.replace)
    except (takes.TakeError, TakeImportError) as e:
        unreal.log_error(f"talkinghead: {e}")
        return 2
    return 0


if __name__ == "__main__":
    # Unreal's `py script.py args` runs this as __main__ with sys.argv set; no sys.exit (it would
    # raise SystemExit inside the editor).
    main(sys.argv[1:])
