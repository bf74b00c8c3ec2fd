"""`talkinghead serve` and `talkinghead client ...` as real processes: the server answers the CLI
client, and SIGTERM lets a call in flight finish before the process exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from cli_run import free_port, talkinghead
from speech import espeak_say
from talkinghead.client import TalkingHeadClient

EXAMPLES = Path(__file__).parent.parent / "examples"
LINE = "Maybe we should move the boat before the storm."


@pytest.fixture(scope="module")
def wav(tmp_path_factory, espeak):
    path = tmp_path_factory.mktemp("clisrv") / "line.wav"
    espeak_say(LINE, "en-us", path)
    return path


def wait_serving(target: str, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    """Until the server process answers health checks; a loaded machine can take tens of seconds
    to import the stack, so the wait is long, and it fails loudly instead of timing out later."""
    deadline = time.monotonic() + seconds
    with TalkingHeadClient(target, timeout=3) as c:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the server exited with status {proc.returncode} while starting"
            try:
                if c.health() == "SERVING":
                    return
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the server at {target} did not answer health checks within {seconds:.0f} s")


@pytest.fixture(scope="module")
def served():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "--log-json", "--log-level", "info", "serve",
                             "--port", str(port), "--token", "tok"], stderr=subprocess.PIPE, text=True)
    target = f"127.0.0.1:{port}"
    wait_serving(target, proc)
    yield proc, target
    proc.terminate()
    proc.wait(30)


@pytest.mark.slow
def test_client_generate_writes_an_mp4_and_a_take(served, wav, tmp_path):
    _, target = served
    out = tmp_path / "line.mp4"
    r = talkinghead("client", "generate", "--server", target, "--token", "tok", "--audio", str(wav),
                    "--portrait", str(EXAMPLES / "astronaut.jpg"), "--size", "256", "-o", str(out))
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.width == 256
        assert sum(1 for _ in c.decode(video=0)) > 30
    take = tmp_path / "take.json"
    r = talkinghead("client", "stream", "--server", target, "--token", "tok", "--audio", str(wav),
                    "--params-only", "--no-realtime", "-o", str(take))
    assert r.returncode == 0, r.stderr
    data = json.loads(take.read_text())
    assert len(data["blendshape_names"]) == 52 and len(data["frames"]) > 30


@pytest.mark.slow
def test_client_errors_are_one_line(served, wav, tmp_path):
    _, target = served
    r = talkinghead("client", "generate", "--server", target, "--token", "wrong", "--audio", str(wav),
                    "--params-only", "-o", str(tmp_path / "t.json"))
    assert r.returncode == 2 and "UNAUTHENTICATED" in r.stderr and "Traceback" not in r.stderr
    r = talkinghead("client", "avatar", "--server", target, "--token", "tok", "--portrait", str(wav))
    assert r.returncode == 2 and "INVALID_ARGUMENT" in r.stderr and "Traceback" not in r.stderr


def test_server_logs_one_json_event_per_request(served, wav, tmp_path):
    proc, target = served
    with TalkingHeadClient(target, token="tok", timeout=60) as c:
        c.generate_all(wav, params_only=True)
    # the server's stderr is JSON lines; read what is there without blocking
    os.set_blocking(proc.stderr.fileno(), False)
    time.sleep(0.3)
    lines = [line for line in (proc.stderr.read() or "").splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    req = [e for e in events if e.get("event") == "rpc.request" and e.get("method", "").endswith("/Generate")]
    assert req and req[-1]["status"] == "OK" and req[-1]["seconds"] > 0


@pytest.mark.slow
def test_sigterm_drains_a_call_in_flight_then_exits(wav):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "serve", "--port", str(port)],
                            stderr=subprocess.DEVNULL)
    target = f"127.0.0.1:{port}"
    try:
        with TalkingHeadClient(target, timeout=60) as c:
            wait_serving(target, proc)
            responses = c.generate(wav, image=EXAMPLES / "astronaut.jpg", size=256)
            next(responses)                                    # the call is in flight
            proc.send_signal(signal.SIGTERM)
            frames = sum(1 for r in responses if r.WhichOneof("payload") == "frame")
        assert frames > 30                                     # it finished
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:                                # a failed test leaves no server behind
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_offline_commands_never_import_grpc(tmp_path):
    """The server's limits and flags live apart from grpc: `params` runs without it."""
    clip = str(EXAMPLES / "hello.flac")
    code = ("import sys; from talkinghead.cli import main; "
            f"main(['params', '--audio', {clip!r}, '-o', {str(tmp_path / 'take.json')!r}]); "
            "print('grpc imported:', 'grpc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "grpc imported: False" in out.stdout, out.stdout + out.stderr
    assert (tmp_path / "take.json").stat().st_size > 0


def test_serve_refuses_a_bad_image_process_count_before_listening():
    out = talkinghead("serve", "--port", str(free_port()), "--image-processes", "-2", timeout=120)
    assert out.returncode == 2
    assert "--image-processes must be -1 (one per core), 0 (threads) or a count, not -2" in out.stderr
    assert "Traceback" not in out.stderr
