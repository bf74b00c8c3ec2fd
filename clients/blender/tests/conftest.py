"""The add-on's tests in real Blender (bpy). They run in a Blender line's own venv, started by the
main suite's tests/test_blender_lines.py, which serves them a real talkinghead server and the files
only the main stack can make, named in the JSON file $TALKINGHEAD_BLENDER_HARNESS:

    server, token        the server's address on a loopback port and its token
    wav, portrait, zip   a spoken line, a portrait PNG, the extension built for linux-x64
    reference            .npz of the project client's frames for the line (reference_fps, _seed):
                         blendshapes (n, 52), head (n, 3) yaw/pitch/roll deg, gaze (n, 4) deg
    blendshape_names     the 52 ARKit names in the project's order; version: the package's
    expect               bpy: the version this venv must have; actions, fcurve_groups, audio: the
                         code paths this line must run (see tests/blender_lines.py)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

HARNESS = os.environ.get("TALKINGHEAD_BLENDER_HARNESS")


def pytest_collection_modifyitems(config, items):
    if HARNESS:
        return
    skip = pytest.mark.skip(reason="run by the main suite: pytest tests/test_blender_lines.py "
                                   "(it starts the server and runs these in each Blender line's venv)")
    for item in items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def harness() -> SimpleNamespace:
    spec = json.loads(Path(HARNESS).read_text())
    ref = np.load(spec["reference"])
    spec.update(wav=Path(spec["wav"]), portrait=Path(spec["portrait"]), zip=Path(spec["zip"]),
                reference=SimpleNamespace(**{k: ref[k] for k in ref.files}),
                BS={name: i for i, name in enumerate(spec["blendshape_names"])},
                expect=SimpleNamespace(**spec["expect"]))
    return SimpleNamespace(**spec)
