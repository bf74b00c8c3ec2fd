"""The Blender add-on in real Blender, on every Blender line it claims (4.2 LTS, 4.5 LTS, 5.0).

Each line's `bpy` lives in its own venv (tests/blender_lines.py) with the numpy that Blender ships;
this test runs the add-on's bpy tests (clients/blender/tests/) there as a subprocess, one test
per line, against the real server this process starts on a loopback port, and fails with that
line's pytest report. The subprocess gets what only the main stack can make (the server, a
spoken line, the project client's reference frames, a portrait, the built extension zip) through
a JSON file named by $TALKINGHEAD_BLENDER_HARNESS.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import blender_fixtures
import cv2
import numpy as np
import pytest
from blender_fixtures import TOKEN, reference
from blender_lines import LINES, ROOT, BlenderLine
from skimage import data
from talkinghead.arkit import BLENDSHAPE_NAMES

pytestmark = pytest.mark.slow   # bpy in a venv per Blender line

server, wav = blender_fixtures.server, blender_fixtures.wav          # the shared fixtures
ADDON_TESTS = ROOT / "clients" / "blender" / "tests"
REFERENCE_FPS, REFERENCE_SEED = 24, 3          # what the inner bake test asks the server for
# Tests a line may skip: only the one that needs Blender's online access off, if it is on.
MAY_SKIP = {"test_errors_are_reports_not_tracebacks[online access-online access is off]"}


@pytest.fixture(scope="module")
def harness(tmp_path_factory, server, wav) -> Path:
    root = tmp_path_factory.mktemp("blender_harness")
    zip_path = root / "talkinghead_blender.zip"
    # The command as a process: in-process, cli.main would reconfigure the tests' logging.
    build = subprocess.run([sys.executable, "-m", "talkinghead", "blender-addon", "-o", str(zip_path),
                            "--platform", "linux-x64"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0 and "wheels (grpcio-" in build.stdout, build.stdout + build.stderr
    portrait = root / "astronaut.png"
    cv2.imwrite(str(portrait), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    frames = reference(server, wav, REFERENCE_FPS, seed=REFERENCE_SEED)
    p = [f.params for f in frames]
    np.savez(root / "reference.npz",
             blendshapes=np.array([x.blendshapes for x in p], np.float32),
             head=np.array([[x.head.yaw, x.head.pitch, x.head.roll] for x in p], np.float64),
             gaze=np.array([[x.gaze_left.yaw, x.gaze_left.pitch, x.gaze_right.yaw, x.gaze_right.pitch] for x in p]))
    spec = {"server": server.target, "token": TOKEN, "wav": str(wav), "portrait": str(portrait),
            "zip": str(zip_path), "reference": str(root / "reference.npz"), "reference_fps": REFERENCE_FPS,
            "reference_seed": REFERENCE_SEED, "blendshape_names": list(BLENDSHAPE_NAMES),
            "version": importlib.metadata.version("talkinghead")}
    path = root / "harness.json"
    path.write_text(json.dumps(spec))
    return path


def _results(junit: Path) -> dict[str, tuple[str, str]]:
    """test name -> (passed / failure / error / skipped, its message), from pytest's JUnit XML."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        found = [child for child in case if child.tag in ("failure", "error", "skipped")]
        out[case.get("name")] = (found[0].tag, (found[0].text or found[0].get("message") or "")) if found else ("passed", "")
    return out


@pytest.mark.parametrize("line", LINES, ids=lambda line: f"blender-{line.name}")
def test_the_addon_suite_passes_on_the_blender_line(line: BlenderLine, harness, tmp_path):
    if not line.ready():
        pytest.skip(f"no venv for Blender {line.name} ({line.venv.name}): create it with "
                    f"`python tests/blender_lines.py {line.name}` (scripts/test.sh does)")
    spec = json.loads(harness.read_text())
    spec["expect"] = {"bpy": line.bpy_version, "actions": line.actions, "fcurve_groups": line.fcurve_groups,
                      "audio": line.audio}
    (tmp_path / "harness.json").write_text(json.dumps(spec))
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TALKINGHEAD_BLENDER_HARNESS"] = str(tmp_path / "harness.json")
    run = subprocess.run([str(line.python), "-m", "pytest", str(ADDON_TESTS), "-q", "-p", "no:cacheprovider",
                          f"--junitxml={junit}", f"--basetemp={tmp_path / 'inner'}"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    report = f"Blender {line.name} ({line.python}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert junit.exists(), report
    results = _results(junit)
    failed = {name: text for name, (kind, text) in results.items() if kind in ("failure", "error")}
    skipped = {name for name, (kind, _) in results.items() if kind == "skipped"} - MAY_SKIP
    details = "".join(f"\n--- {name}\n{text[-2500:]}" for name, text in failed.items())
    assert run.returncode == 0 and not failed, f"{len(failed)} failed on Blender {line.name}:{details}\n\n{report}"
    assert not skipped, f"skipped on Blender {line.name}: {sorted(skipped)}\n{report}"
    assert len(results) >= 15, report          # the whole add-on suite was collected
