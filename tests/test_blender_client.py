"""The Blender add-on's own gRPC client (bpy-free) against a real server on a loopback port."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time

import blender_fixtures
import cv2
import numpy as np
import pytest
from blender_fixtures import TOKEN, reference
from skimage import data
from talkinghead.arkit import BS

server, wav = blender_fixtures.server, blender_fixtures.wav          # the shared fixtures


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    """The extension built as a folder (no wheels: this environment has grpcio), imported as th_addon."""
    root = tmp_path_factory.mktemp("addon")
    build = [sys.executable, "-m", "talkinghead", "blender-addon", "-o", str(root / "th_addon"), "--no-wheels"]
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    sys.path.insert(0, str(root))
    yield root, importlib.import_module("th_addon.client")
    sys.path.remove(str(root))


def messages(job, timeout=60.0):
    assert job.join(timeout), "the job did not finish"
    out = []
    while not job.queue.empty():
        out.append(job.queue.get_nowait())
    return out


@pytest.mark.slow
def test_the_built_addon_imports_without_the_talkinghead_package(addon):
    root, _ = addon
    stubs = (root / "th_addon" / "_proto" / "talkinghead_pb2_grpc.py").read_text()
    assert "from . import talkinghead_pb2 as" in stubs
    for py in (root / "th_addon").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) talkinghead\b", py.read_text(), flags=re.M), py
    code = ("import sys; sys.modules['talkinghead'] = None; sys.path.insert(0, sys.argv[1]); "
            "import th_addon.client, th_addon.convert, th_addon.audio; print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, env=env, cwd=root)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.slow
def test_bake_job_gets_the_servers_parameters(addon, server, wav):
    _, client = addon
    settings = client.ServerSettings(server.target, token=TOKEN)
    # Acoustic lips: the phone recogniser's decoders keep state between calls (a first call in a
    # process differs from later ones), which would make two identical calls disagree.
    job = client.BakeJob(settings, wav.read_bytes(), client.MotionSettings(fps=24, seed=4, lipsync="acoustic"),
                         expected_seconds=2.5).start()
    got = messages(job)
    kinds = [m.kind for m in got]
    assert kinds[-1] == "done" and "progress" in kinds
    take = got[-1].data.take
    frames = reference(server, wav, 24, seed=4)
    assert take.fps == 24 and take.n_frames == len(frames)
    np.testing.assert_allclose(take.blendshapes, [f.params.blendshapes for f in frames], atol=1e-7)
    np.testing.assert_allclose(take.head[:, :3], [[f.params.head.yaw, f.params.head.pitch, f.params.head.roll]
                                                  for f in frames], atol=1e-6)
    np.testing.assert_allclose(take.gaze[:, 2], [f.params.gaze_right.yaw for f in frames], atol=1e-6)


@pytest.mark.slow
def test_image_bake_job_writes_one_file_per_scene_frame(addon, server, wav, tmp_path):
    _, client = addon
    png = cv2.imencode(".png", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    job = client.BakeJob(client.ServerSettings(server.target, token=TOKEN), wav.read_bytes(),
                         client.MotionSettings(fps=25), portrait=client.PortraitSettings(png, 256),
                         image_dir=str(tmp_path / "seq"), scene_fps=24).start()
    result = messages(job)[-1].data
    n_src = result.take.n_frames
    assert (result.width, result.height) == (256, 256)
    assert len(result.images) == round(n_src * 24 / 25)                 # resampled to the scene's 24 fps
    assert result.images[0].endswith("frame_000001.jpg") and all(os.path.isfile(p) for p in result.images)
    first = cv2.imread(result.images[0])
    assert first.shape == (256, 256, 3) and first.std() > 20


@pytest.mark.slow
def test_live_job_streams_in_real_time_and_stops_at_once(addon, server, wav):
    _, client = addon
    settings = client.ServerSettings(server.target, token=TOKEN)
    job = client.LiveJob(settings, str(wav), client.MotionSettings(fps=30)).start()
    t0, frames = time.monotonic(), []
    while time.monotonic() - t0 < 1.5:
        try:
            m = job.queue.get(timeout=0.5)
        except Exception:   # noqa: BLE001 - queue.Empty: keep waiting
            continue
        if m.kind == "frame":
            frames.append(m.data)
        assert m.kind != "error", m.data
    assert 25 <= len(frames) <= 55                                       # paced to real time: ~45 in 1.5 s
    assert any(not f.idle for f in frames) and frames[-1].take.n_frames == 1
    jaw = max(f.take.blendshapes[0, BS["jawOpen"]] for f in frames)
    assert jaw > 0.15
    t1 = time.monotonic()
    job.cancel()
    assert job.join(1.0) and time.monotonic() - t1 < 1.0
    assert messages(job)[-1].kind == "cancelled"


@pytest.mark.slow
def test_live_job_sends_the_transcript_and_warns_when_it_does_not_match(addon, server, wav):
    """The transcript rides on the first chunk (LineText, in the motion's language); a wrong one
    (another language's line) comes back as a warning sentence, the lips from the audio alone."""
    _, client = addon
    settings = client.ServerSettings(server.target, token=TOKEN)
    job = client.LiveJob(settings, str(wav), client.MotionSettings(fps=30, language="it"),
                         transcript="Il gatto dorme sul divano mentre la pioggia cade lenta sulla citta.").start()
    warnings, t0 = [], time.monotonic()
    while time.monotonic() - t0 < 20 and not warnings:
        try:
            m = job.queue.get(timeout=0.5)
        except Exception:   # noqa: BLE001 - queue.Empty: keep waiting
            continue
        assert m.kind != "error", m.data
        if m.kind == "warning":
            warnings.append(m.data)
    job.cancel()
    assert job.join(2.0)
    assert warnings and "does not match" in warnings[0], warnings


@pytest.mark.parametrize("case, words", [("down", "cannot reach"), ("token", "refused the token"),
                                         ("audio", "INVALID_ARGUMENT")])
def test_job_errors_are_sentences(addon, server, wav, case, words):
    _, client = addon
    target = "127.0.0.1:9" if case == "down" else server.target     # port 9 (discard): nothing listens
    token = "wrong" if case == "token" else TOKEN
    audio = b"not audio at all" if case == "audio" else wav.read_bytes()
    job = client.BakeJob(client.ServerSettings(target, token=token, timeout=20), audio, client.MotionSettings()).start()
    last = messages(job, 30)[-1]
    assert last.kind == "error" and words in last.data, last.data
