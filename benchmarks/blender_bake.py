"""Blender add-on bake time: a 60 s line onto a character with the 52 ARKit shape keys, a head bone
and two eye bones (64 F-Curves: 52 + 3 quaternions), in real Blender (the bpy module, headless)
against a local server.

    python benchmarks/blender_bake.py [--seconds 60] [--lipsync acoustic|auto] [--fps 30]

It needs bpy and talkinghead in one Python 3.11 environment (the test venvs keep them apart), e.g.
    python3.11 -m venv .venv-bench && .venv-bench/bin/pip install -e . bpy==5.0.1
    .venv-bench/bin/python benchmarks/blender_bake.py

The server runs as `talkinghead serve` in its own process. Reported:
  bake (operator)     bpy.ops.talkinghead.bake(), start to keyframes and sound strip written
  of which Generate   the server's params-only Generate call, over gRPC (the add-on's worker thread)
  of which writing    frames -> channels -> one slotted action, keyframe_points.add + foreach_set
  Stream (params)     the same line through the Stream RPC, realtime=false, 2 s chunks (for comparison)
  keyframe_insert     the naive way, one keyframe_insert per shape key per frame, timed on 2 s and
                      scaled to the line (why the add-on writes in bulk)
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="talkinghead_bench_blender_")
import bpy  # noqa: E402  (after BLENDER_USER_RESOURCES: Blender reads it at import)

from talkinghead.arkit import BLENDSHAPE_NAMES  # noqa: E402
from talkinghead.audio.decode import SAMPLE_RATE, load_audio  # noqa: E402
from talkinghead.client import TalkingHeadClient, audio_chunk, control, stream_config  # noqa: E402
from talkinghead.motion.options import MotionOptions  # noqa: E402


def speech(seconds: float, path: Path) -> Path:
    line = load_audio(ROOT / "examples" / "hello.flac")
    pause = np.random.default_rng(0).normal(0, 3e-4, SAMPLE_RATE).astype(np.float32)
    reps = int(np.ceil(seconds * SAMPLE_RATE / (len(line) + len(pause))))
    sf.write(path, np.tile(np.concatenate([line, pause]), reps)[: int(seconds * SAMPLE_RATE)], SAMPLE_RATE,
             subtype="PCM_16")
    return path


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    with TalkingHeadClient(target) as c:
        for _ in range(300):
            try:
                if c.health() == "SERVING":
                    return proc, target
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def install_addon(folder: Path) -> None:
    sys.path.insert(0, str(ROOT / "clients" / "blender"))
    import build_extension

    zip_path = folder / "talkinghead_blender.zip"
    build_extension.build(zip_path, wheels=False)          # this environment has grpcio and protobuf
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    assert "bl_ext.user_default.talkinghead" in bpy.context.preferences.addons


def character(scene):
    mesh = bpy.data.meshes.new("Face")
    quads = [(v, v + 1, v + 11, v + 10) for v in (z * 10 + x for z in range(9) for x in range(9))]
    mesh.from_pydata([(x, 0, z) for z in range(10) for x in range(10)], [], quads)
    face = bpy.data.objects.new("Face", mesh)
    scene.collection.objects.link(face)
    face.shape_key_add(name="Basis")
    for name in BLENDSHAPE_NAMES:
        face.shape_key_add(name=name, from_mix=False)
    rig = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode='EDIT')
    head = rig.data.edit_bones.new("head")
    head.head, head.tail = (0, 0, 1.5), (0, 0, 1.8)
    for name, x in (("eye.L", 0.03), ("eye.R", -0.03)):
        eye = rig.data.edit_bones.new(name)
        eye.head, eye.tail, eye.parent = (x, -0.08, 1.62), (x, -0.1, 1.62), head
    bpy.ops.object.mode_set(mode='OBJECT')
    s = scene.talkinghead
    s.mesh, s.armature, s.head_bone, s.eye_left_bone, s.eye_right_bone = face, rig, "head", "eye.L", "eye.R"
    return face


def stream_seconds(target: str, wav: Path, fps: float) -> float:
    x = load_audio(wav)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    step = 2 * 2 * SAMPLE_RATE
    reqs = [stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False, motion=MotionOptions(fps=fps))]
    reqs += [audio_chunk(pcm[i:i + step]) for i in range(0, len(pcm), step)] + [control("flush")]
    t0 = time.perf_counter()
    with TalkingHeadClient(target, timeout=600) as c:
        n = sum(r.WhichOneof("payload") == "frame" for r in c.stream(reqs))
    assert n > 0
    return time.perf_counter() - t0


def keyframe_insert_seconds(face, frames: int) -> float:
    key = face.data.shape_keys
    key.animation_data_clear()                               # start from no action, as the bake does
    t0 = time.perf_counter()
    for f in range(frames):
        for kb in key.key_blocks[1:]:
            kb.value = 0.5
            kb.keyframe_insert("value", frame=f + 1)
    elapsed = time.perf_counter() - t0
    key.animation_data_clear()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--lipsync", choices=("acoustic", "auto"), default="acoustic")
    ap.add_argument("--fps", type=int, default=30)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="talkinghead_bench_"))
    wav = speech(args.seconds, tmp / "line.wav")
    proc, target = start_server()
    try:
        install_addon(tmp)
        client = importlib.import_module("bl_ext.user_default.talkinghead.client")
        convert = importlib.import_module("bl_ext.user_default.talkinghead.convert")
        animate = importlib.import_module("bl_ext.user_default.talkinghead.animate")
        scene = bpy.context.scene
        scene.render.fps = args.fps
        bpy.context.preferences.addons["bl_ext.user_default.talkinghead"].preferences.address = target
        face = character(scene)
        s = scene.talkinghead
        s.audio_file, s.lipsync = str(wav), args.lipsync.upper()

        # Warm-up (model files, decoders), then the operator end to end.
        bpy.ops.talkinghead.bake()
        t0 = time.perf_counter()
        assert bpy.ops.talkinghead.bake() == {'FINISHED'}
        total = time.perf_counter() - t0

        # The parts: Generate on the worker, then the main thread's writing.
        motion = client.MotionSettings(fps=args.fps, lipsync=args.lipsync)
        t0 = time.perf_counter()
        job = client.BakeJob(client.ServerSettings(target), wav.read_bytes(), motion).start()
        job.join()
        generate = time.perf_counter() - t0
        result = _last(job).data
        rig = animate.character_rig(scene, s)
        t0 = time.perf_counter()
        frames = convert.scene_frames(result.take.n_frames, result.take.fps, args.fps, 1)
        channels = animate.character_channels(rig, result.take)
        animate.write_action("bench", channels, frames)
        writing = time.perf_counter() - t0
        n_curves = sum(len(c) for c in channels.values())

        stream = stream_seconds(target, wav, args.fps)
        sample = 2 * args.fps
        naive = keyframe_insert_seconds(face, sample) * (result.take.n_frames / sample)
    finally:
        proc.terminate()
        proc.wait(30)

    n = result.take.n_frames
    print(f"{args.seconds:g} s line, {n} frames at {args.fps} fps, {n_curves} F-Curves "
          f"({n * n_curves} keyframes), lipsync {args.lipsync}, Blender {bpy.app.version_string}\n")
    print("| step | seconds | x real time |\n|---|---|---|")
    for name, sec in (("bake (operator, end to end)", total), ("of which Generate (server, gRPC)", generate),
                      ("of which writing the action", writing), ("Stream (params, realtime=false)", stream),
                      ("keyframe_insert per key (scaled)", naive)):
        print(f"| {name} | {sec:.3f} | {args.seconds / sec:.0f}x |")


def _last(job):
    last = None
    while not job.queue.empty():
        last = job.queue.get_nowait()
    return last


if __name__ == "__main__":
    main()
