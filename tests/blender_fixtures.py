"""Fixtures and helpers shared by the Blender add-on's tests (test_blender_addon.py,
test_blender_client.py): a real server on a loopback port, a spoken line, and the reference
answer of the project's own client. Import the fixtures into a test module to use them."""

from __future__ import annotations

import pytest
from grpc_server import ServerThread
from speech import espeak_say
from talkinghead.client import TalkingHeadClient
from talkinghead.motion.options import MotionOptions
from talkinghead.server import ServerConfig

TOKEN = "s3cret"
LINE = "Bob bought a map of the big palm park."


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServerConfig(port=0, token=TOKEN)) as srv:
        yield srv


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "line.wav"
    espeak_say(LINE, "en-us", path)
    return path


def reference(server, wav, fps: float, seed: int = 0):
    """The frames the project's client gets for the line (parameters only, acoustic lips: the phone
    recogniser keeps state between calls, so only acoustic lips give the same answer twice)."""
    with TalkingHeadClient(server.target, token=TOKEN) as c:
        return c.generate_all(wav, params_only=True, motion=MotionOptions(fps=fps, seed=seed, lipsync="acoustic"))[1]
