"""Shared test fixtures: synthesised speech, the astronaut portrait, an in-process server.

Markers (registered in pyproject.toml): `slow` marks tests that take more than a few seconds
(`pytest -m "not slow"` runs the rest in about a minute; CI runs everything); `requires_cuda`
tests need torch with a CUDA GPU. A test that needs a speech synthesiser skips by itself (through
the `festival` / `espeak` fixtures) when that synthesiser is missing; the others in its module run.
"""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test-support modules (speech.py) import by name

from talkinghead import logs  # noqa: E402

logs.configure("debug")  # tests see (and structlog.testing.capture_logs can catch) every event


@pytest.fixture(scope="session")
def festival():
    """Skips the test when Debian's festival is missing (scripts/test.sh installs it)."""
    from speech import have_festival

    if not have_festival():
        pytest.skip("needs Debian's festival (scripts/test.sh installs it)")


@pytest.fixture(scope="session")
def espeak():
    """Skips the test when espeak-ng is missing (scripts/test.sh installs it)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (scripts/test.sh installs it)")


@pytest.fixture(scope="session")
def spoken(tmp_path_factory):
    """spoken(text, pad=0.0) -> float32 samples at 16 kHz of an English line: festival's
    kal_diphone where festival is installed, espeak-ng's en-us otherwise (pad: seconds of room
    tone at both ends, festival only). Each line is synthesised once per session; the test skips
    when neither synthesiser is installed."""
    from speech import espeak_say, festival_say, have_festival
    from talkinghead.audio.decode import load_audio

    made: dict[tuple[str, float], object] = {}
    folder = tmp_path_factory.mktemp("spoken")

    def say(text: str, pad: float = 0.0):
        key = (text, pad)
        if key not in made:
            wav = folder / f"line{len(made)}.wav"
            if have_festival():
                festival_say(text, "kal_diphone", wav, pad=pad)
            elif shutil.which("espeak-ng"):
                espeak_say(text, "en-us", wav)
            else:
                pytest.skip("needs festival or espeak-ng to synthesise speech (scripts/test.sh installs them)")
            made[key] = load_audio(wav)
        return made[key]

    return say


@pytest.fixture(scope="session")
def festival_line(tmp_path_factory, festival):
    """festival_line(text, pad=0.3) -> (samples, phone segments, word segments): festival's
    kal_diphone saying `text`, with the phone and word timings it used (ground truth), once per
    session each."""
    from speech import festival_say, festival_words
    from talkinghead.audio.decode import load_audio

    made: dict[tuple[str, float], tuple] = {}
    folder = tmp_path_factory.mktemp("festival_lines")

    def say(text: str, pad: float = 0.3):
        if (text, pad) not in made:
            wav = folder / f"line{len(made)}.wav"
            segs = festival_say(text, "kal_diphone", wav, pad=pad)
            made[text, pad] = (load_audio(wav), segs, festival_words(wav, segs, pad=pad))
        return made[text, pad]

    return say


@pytest.fixture(scope="session")
def astronaut_png() -> bytes:
    """The astronaut portrait (skimage.data.astronaut()) as PNG bytes."""
    import cv2
    from skimage import data

    ok, buf = cv2.imencode(".png", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def serve():
    """serve(**config) -> a running in-process server (grpc_server.ServerThread) on a free loopback
    port, with ServerConfig(port=0, **config); every server started is stopped after the module."""
    from grpc_server import ServerThread
    from talkinghead.server import ServerConfig

    running = []

    def start(**config):
        srv = ServerThread(ServerConfig(port=0, **config)).__enter__()
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.__exit__(None, None, None)
