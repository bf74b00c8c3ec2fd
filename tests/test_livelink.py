"""Live Link Face UDP stream: real packets over loopback UDP, decoded by an independent decoder.

The decoder below is written from the published layout (Unreal's AppleARKitLiveLinkSource
listener and FNboSerializeFromBuffer: big-endian; uint8 version 6; int32-length-prefixed UTF-8
device id and subject; int32 frame, float32 sub-frame, int32 rate numerator and denominator;
uint8 count 61; 61 float32 in EARFaceBlendShape order). It shares no code with the sender.
"""

from __future__ import annotations

import csv
import math
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from speech import espeak_say
from talkinghead import cli, logs
from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.errors import ExportError, OptionsError
from talkinghead.exports import LiveLinkSender, write_track
from talkinghead.exports import livelink_udp as llu
from talkinghead.motion import line_and_idle
from talkinghead.motion.options import MotionOptions
from talkinghead.track import EyeGaze, FaceParams, HeadPose, MotionTrack

LINE = "Maybe we should move the boat."

# Unreal's EARFaceBlendShape enum, 0..60 (ARTrackable.h), typed out here on purpose.
ENUM_ORDER = (
    "EyeBlinkLeft EyeLookDownLeft EyeLookInLeft EyeLookOutLeft EyeLookUpLeft EyeSquintLeft EyeWideLeft "
    "EyeBlinkRight EyeLookDownRight EyeLookInRight EyeLookOutRight EyeLookUpRight EyeSquintRight EyeWideRight "
    "JawForward JawLeft JawRight JawOpen MouthClose MouthFunnel MouthPucker MouthLeft MouthRight "
    "MouthSmileLeft MouthSmileRight MouthFrownLeft MouthFrownRight MouthDimpleLeft MouthDimpleRight "
    "MouthStretchLeft MouthStretchRight MouthRollLower MouthRollUpper MouthShrugLower MouthShrugUpper "
    "MouthPressLeft MouthPressRight MouthLowerDownLeft MouthLowerDownRight MouthUpperUpLeft MouthUpperUpRight "
    "BrowDownLeft BrowDownRight BrowInnerUp BrowOuterUpLeft BrowOuterUpRight CheekPuff CheekSquintLeft "
    "CheekSquintRight NoseSneerLeft NoseSneerRight TongueOut HeadYaw HeadPitch HeadRoll "
    "LeftEyeYaw LeftEyePitch LeftEyeRoll RightEyeYaw RightEyePitch RightEyeRoll"
).split()
assert len(ENUM_ORDER) == 61
SLOT = {name: i for i, name in enumerate(ENUM_ORDER)}


def decode(packet: bytes) -> dict:
    """One Live Link Face datagram -> its fields, exactly as the published layout reads."""
    off = 0
    (version,) = struct.unpack_from(">B", packet, off)
    off += 1
    (n,) = struct.unpack_from(">i", packet, off)
    off += 4
    device = packet[off:off + n].decode("utf-8")
    off += n
    (m,) = struct.unpack_from(">i", packet, off)
    off += 4
    subject = packet[off:off + m].decode("utf-8")
    off += m
    frame, sub_frame, numerator, denominator = struct.unpack_from(">ifii", packet, off)
    off += 16
    (count,) = struct.unpack_from(">B", packet, off)
    off += 1
    values = struct.unpack_from(f">{count}f", packet, off)
    off += 4 * count
    assert off == len(packet), "trailing bytes after the curves"
    return dict(version=version, device=device, subject=subject, frame=frame, sub_frame=sub_frame,
                rate=(numerator, denominator), count=count, values=np.array(values, np.float64))


def expected_curves(track: MotionTrack) -> np.ndarray:
    """(n, 61) from the published units and signs (radians; LLF's mirrored head/eye curves)."""
    n = track.n_frames
    out = np.zeros((n, 61))
    names = ENUM_ORDER[:52]
    for k, name in enumerate(names):  # ARKit order: slot k is ARKit blendshape k
        out[:, SLOT[name]] = np.clip(track.blendshapes[:, k], 0, 1)
    r = np.deg2rad(np.asarray(track.head, np.float64))
    g = np.deg2rad(np.asarray(track.gaze, np.float64))
    out[:, SLOT["HeadYaw"]], out[:, SLOT["HeadPitch"]], out[:, SLOT["HeadRoll"]] = -r[:, 0], -r[:, 1], r[:, 2]
    out[:, SLOT["LeftEyeYaw"]], out[:, SLOT["LeftEyePitch"]] = -g[:, 2], -g[:, 3]  # from the RIGHT eye
    out[:, SLOT["RightEyeYaw"]], out[:, SLOT["RightEyePitch"]] = -g[:, 0], -g[:, 1]  # from the LEFT eye
    return out


class Receiver:
    """A UDP socket on a free loopback port, drained by a thread that timestamps every datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.got: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.got.append((time.perf_counter(), data))

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict]:
        end = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < end:
            time.sleep(0.01)
        return [decode(d) for _, d in self.got]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def line_wav(tmp_path_factory, espeak) -> Path:
    wav = tmp_path_factory.mktemp("livelink") / "line.wav"
    espeak_say(LINE, "en-us", wav)
    return wav


@pytest.fixture(scope="module")
def line_analysis(line_wav):
    """The line analysed once (then animated as often as a test likes)."""
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.motion import analyze_speech

    return analyze_speech(load_audio(line_wav), SAMPLE_RATE, LINE)


@pytest.fixture(scope="module")
def line_track60(line_wav) -> MotionTrack:
    """What `talkinghead livelink --fps 60 --text LINE` computes for the line."""
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.motion import motion_from_audio

    return motion_from_audio(load_audio(line_wav), SAMPLE_RATE, MotionOptions(fps=60), LINE)


def random_track(n: int, fps: float = 60.0, seed: int = 3) -> MotionTrack:
    rng = np.random.default_rng(seed)
    return MotionTrack(fps=fps, duration=n / fps, blendshapes=rng.uniform(0, 1, (n, 52)).astype(np.float32),
                       head=rng.uniform(-20, 20, (n, 6)).astype(np.float32),
                       gaze=rng.uniform(-15, 15, (n, 4)).astype(np.float32), visemes=["sil"] * n)


@pytest.fixture
def cli_logs():
    yield
    logs.configure("debug")  # cli.main() reconfigures logging; give the other tests theirs back


# ------------------------------------------------------------------------------ the packet


def test_one_packet_has_the_published_layout_values_and_order():
    params = FaceParams(t=0.0, blendshapes=(np.arange(52) / 64).astype(np.float32),
                        head=HeadPose(yaw=10, pitch=5, roll=-3, x=7, y=8, z=9),
                        gaze_left=EyeGaze(yaw=4, pitch=-2), gaze_right=EyeGaze(yaw=6, pitch=1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        with LiveLinkSender(f"127.0.0.1:{rx.getsockname()[1]}", "NPC_01", device_id="dev-1", fps=60) as sender:
            sender.send(params, 7)
            raw = rx.recv(4096)
            sender.send(params, 8)
            second = decode(rx.recv(4096))
    # the first bytes, literally: version 6, then a big-endian int32 length 5 and "dev-1"
    assert raw[:10] == b"\x06\x00\x00\x00\x05dev-1"
    assert len(raw) == 1 + 4 + 5 + 4 + 6 + 16 + 1 + 61 * 4
    p = decode(raw)
    assert (p["version"], p["device"], p["subject"], p["count"]) == (6, "dev-1", "NPC_01", 61)
    assert (p["frame"], p["sub_frame"], p["rate"]) == (7, 0.0, (60, 1))
    assert second["frame"] == 8
    v = p["values"]
    # blendshapes in ARKit's own order: JawLeft BEFORE JawRight, MouthLeft before MouthRight
    assert v[SLOT["EyeBlinkLeft"]] == 0 and v[SLOT["JawLeft"]] == 15 / 64 and v[SLOT["JawRight"]] == 16 / 64
    assert v[SLOT["MouthLeft"]] == 21 / 64 and v[SLOT["MouthRight"]] == 22 / 64
    assert v[SLOT["TongueOut"]] == 51 / 64
    rad = math.radians
    expect = {"HeadYaw": -rad(10), "HeadPitch": -rad(5), "HeadRoll": rad(-3),
              "LeftEyeYaw": -rad(6), "LeftEyePitch": -rad(1), "LeftEyeRoll": 0.0,  # the right eye, mirrored
              "RightEyeYaw": -rad(4), "RightEyePitch": rad(2), "RightEyeRoll": 0.0}
    for name, want in expect.items():
        assert v[SLOT[name]] == pytest.approx(want, abs=1e-6), name


def test_stream_carries_the_same_numbers_as_the_csv_take(tmp_path, receiver):
    """The same track as a Live Link Face CSV take (app's column order) and as UDP (ARKit order)."""
    track = random_track(40)
    write_track(track, tmp_path / "take.csv")
    with open(tmp_path / "take.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with LiveLinkSender(("127.0.0.1", receiver.port), "NPC_01", fps=60) as sender:
        sender.send_track(track, pace=False)
    packets = receiver.wait_for(40)
    assert len(packets) == 40
    for row, p in zip(rows, packets):
        for name in ENUM_ORDER:
            assert p["values"][SLOT[name]] == pytest.approx(float(row[name]), abs=1.5e-6), name


# ------------------------------------------------------------------------------ pacing


@pytest.mark.slow
def test_paced_speech_take_at_60_fps_arrives_in_real_time(receiver, line_track60):
    track = line_track60
    n = track.n_frames
    with LiveLinkSender(f"127.0.0.1:{receiver.port}", "NPC_01", fps=60) as sender:
        stats = sender.send_track(track)
    packets = receiver.wait_for(n)
    assert (stats.frames_sent, stats.frames_skipped, stats.refused) == (n, 0, 0)
    assert len(packets) == n
    assert {p["subject"] for p in packets} == {"NPC_01"} and {p["rate"] for p in packets} == {(60, 1)}
    assert [p["frame"] for p in packets] == list(range(n))
    np.testing.assert_allclose(np.stack([p["values"] for p in packets]), expected_curves(track), atol=1e-6)
    stamps = np.array([t for t, _ in receiver.got])
    gaps = np.diff(stamps)
    assert np.median(gaps) == pytest.approx(1 / 60, abs=1e-3)
    assert np.percentile(gaps, 95) < 2 / 60  # no bursts
    assert stamps[-1] - stamps[0] == pytest.approx((n - 1) / 60, abs=0.03)
    assert n / 60 == pytest.approx(track.duration, abs=1 / 60)  # ... which is the take's length
    assert stats.seconds == pytest.approx((n - 1) / 60, abs=0.05)


def test_back_to_back_calls_continue_frame_numbers_on_one_grid(receiver):
    a, b = random_track(30, seed=1), random_track(30, seed=2)
    with LiveLinkSender(f"127.0.0.1:{receiver.port}", "NPC_01", fps=60) as sender:
        sender.send_track(a)
        sender.send_track(b)
        assert sender.next_frame_index == 60
    packets = receiver.wait_for(60)
    assert [p["frame"] for p in packets] == list(range(60))
    stamps = np.array([t for t, _ in receiver.got])
    gaps = np.diff(stamps)
    # no restart gap between the lines: the seam is no longer than the other frame steps (receive
    # times jitter by milliseconds on a loaded machine, so it is judged against them, not the clock)
    assert gaps[29] <= max(1 / 60 + 4e-3, np.percentile(gaps, 95) + 2e-3)
    assert stamps[-1] - stamps[0] == pytest.approx(59 / 60, abs=0.03)


def test_unpaced_frames_one_by_one_all_values(receiver):
    track = random_track(300, fps=30, seed=9)
    expected = expected_curves(track)
    with LiveLinkSender(f"127.0.0.1:{receiver.port}", "Ünïcode subject ✓", fps=30) as sender:
        for start in range(0, 300, 100):  # blocks that fit any default socket buffer
            sender.send_frames((track.frame(i) for i in range(start, start + 100)), pace=False)
            receiver.wait_for(start + 100)
    packets = receiver.wait_for(300)
    assert len(packets) == 300
    assert {p["subject"] for p in packets} == {"Ünïcode subject ✓"} and {p["rate"] for p in packets} == {(30, 1)}
    np.testing.assert_allclose(np.stack([p["values"] for p in packets]), expected, atol=1e-6)


def test_stop_event_ends_a_paced_stream_early(receiver):
    stop = threading.Event()
    track = random_track(300)  # 5 s
    result = {}
    seen = []
    with LiveLinkSender(f"127.0.0.1:{receiver.port}", "NPC_01", fps=60) as sender:
        worker = threading.Thread(target=lambda: result.update(
            stats=sender.send_track(track, stop_event=stop, progress=lambda done, total: seen.append((done, total)))))
        worker.start()
        time.sleep(0.2)
        stop.set()
        worker.join(timeout=2)
    stats = result["stats"]
    assert stats.stopped and 5 <= stats.frames_sent <= 30
    assert seen[-1] == (stats.frames_sent, 300)


# ------------------------------------------------------------------------------ idle


def test_idle_after_a_line_blinks_keeps_the_mouth_shut_and_carries_on(line_analysis):
    line, *chunks = line_and_idle(line_analysis, MotionOptions(fps=60), idle_after=12.0)
    assert [c.n_frames for c in chunks] == [600, 120]  # 10 s parts
    idle = np.concatenate([c.blendshapes for c in chunks])
    k_blink, k_jaw = 0, 17  # eyeBlinkLeft, jawOpen (ARKit order)
    assert idle[:, k_blink].max() > 0.8  # it blinks
    assert idle[:, k_jaw].max() < 0.05  # and does not talk
    # one engine: the idle carries on from the line's last pose, and each part from the one before
    assert np.abs(chunks[0].head[0] - line.head[-1]).max() < 0.5
    assert np.abs(chunks[1].head[0] - chunks[0].head[-1]).max() < 0.5


def test_line_and_idle_loops_the_line_with_its_own_lips(line_analysis):
    parts = line_and_idle(line_analysis, MotionOptions(fps=60), idle_after=0.5, loop=True)
    line, idle, again, idle2 = (next(parts) for _ in range(4))
    assert line.n_frames == again.n_frames and idle.n_frames == 30 and idle2.n_frames == 30
    mouth = [i for i, n in enumerate(BLENDSHAPE_NAMES) if n.startswith(("jaw", "mouth", "tongue"))]
    np.testing.assert_array_equal(again.blendshapes[:, mouth], line.blendshapes[:, mouth])
    assert not np.array_equal(again.head, line.head)   # the life goes on
    assert np.abs(again.head[0] - idle.head[-1]).max() < 0.5


def test_idle_time_must_be_a_number_of_seconds(line_analysis):
    with pytest.raises(OptionsError, match="0 or more seconds"):
        next(line_and_idle(line_analysis, MotionOptions(), idle_after=-1.0))


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("fps, message", [
    (0, "positive, finite"), (-30, "positive, finite"), (math.nan, "positive, finite"),
    (math.inf, "positive, finite"), (1e6, "outside 1..1000"), (0.5, "outside 1..1000"),
    (math.pi, "not a ratio of whole numbers"),
])
def test_frame_rates_the_protocol_cannot_express_are_refused(fps, message):
    with pytest.raises(OptionsError, match=message):
        LiveLinkSender("127.0.0.1:11111", "NPC_01", fps=fps)


@pytest.mark.parametrize("fps, rate", [(30, (30, 1)), (29.97, (2997, 100)), (30000 / 1001, (30000, 1001)),
                                       (24000 / 1001, (24000, 1001)), (12.5, (25, 2))])
def test_frame_rates_as_fractions(fps, rate):
    assert llu.frame_rate_fraction(fps) == rate


@pytest.mark.parametrize("subject, message", [
    ("", "empty"), ("   ", "empty"), ("a\x00b", "control characters"), ("tab\there", "control characters"),
    ("x" * 257, "257 bytes"), ("é" * 129, "258 bytes"),
])
def test_bad_subject_names_are_refused(subject, message):
    with pytest.raises(OptionsError, match=message):
        LiveLinkSender("127.0.0.1:11111", subject)


def test_longest_subject_fits_the_listener_buffer(receiver):
    subject = "s" * llu.MAX_NAME_BYTES
    with LiveLinkSender(f"127.0.0.1:{receiver.port}", subject, fps=30) as sender:
        sender.send(random_track(1).frame(0), 0)
    (p,) = receiver.wait_for(1)
    assert p["subject"] == subject
    # Unreal's receive buffer: 1 + 16 + 1 + 61*4 + 2 * 256 * sizeof(TCHAR >= 2) bytes
    assert len(receiver.got[0][1]) <= 1 + 16 + 1 + 61 * 4 + 2 * 256 * 2


@pytest.mark.parametrize("target, message", [
    ("127.0.0.1:0", "1..65535"), ("127.0.0.1:70000", "1..65535"), ("127.0.0.1:abc", "not a number"),
    (":11111", "no host"),
])
def test_bad_targets_are_refused(target, message):
    with pytest.raises(OptionsError, match=message):
        LiveLinkSender(target, "NPC_01")


def test_targets_parse():
    assert llu.parse_target("10.0.0.5") == ("10.0.0.5", 11111)
    assert llu.parse_target("unreal-pc:12000") == ("unreal-pc", 12000)
    assert llu.parse_target("[::1]:12000") == ("::1", 12000)
    assert llu.parse_target("::1") == ("::1", 11111)


def test_unknown_host_is_a_clear_error():
    with pytest.raises(ExportError, match="cannot find the Live Link target host 'no-such-host.invalid'.*--target"):
        LiveLinkSender("no-such-host.invalid:11111", "NPC_01")


def test_nobody_listening_is_ignored_with_one_warning():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port nobody listens on: the kernel answers "port unreachable"
    with capture_logs() as events, LiveLinkSender(f"127.0.0.1:{port}", "NPC_01", fps=60) as sender:
        stats = sender.send_track(random_track(20), pace=False)
    assert stats.frames_sent == 20 and stats.refused >= 1
    warnings = [e for e in events if e["event"] == "livelink.no_listener"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"


def test_track_at_another_fps_is_refused():
    with LiveLinkSender("127.0.0.1:11111", "NPC_01", fps=60) as sender:
        with pytest.raises(OptionsError, match="at 30 fps but the Live Link sender at 60"):
            sender.send_track(random_track(3, fps=30))


def test_nan_values_are_refused():
    track = random_track(3)
    track.head[1, 0] = np.nan
    with LiveLinkSender("127.0.0.1:11111", "NPC_01", fps=60) as sender:
        with pytest.raises(ExportError, match="NaN"):
            sender.send_track(track, pace=False)


@pytest.mark.parametrize("extra, message", [
    (["--target", "no-such-host.invalid:11111"], "cannot find the Live Link target host"),
    (["--subject", "x" * 300], "300 bytes of UTF-8; the protocol allows 256"),
    (["--fps", "3.14159"], "not a ratio of whole numbers"),
    (["--idle-after", "-1"], "--idle-after must be 0 or more"),
])
def test_cli_bad_input_exits_2_before_any_analysis(extra, message, capsys, cli_logs, tmp_path):
    missing_audio = tmp_path / "never-read.wav"  # the checks come first: the audio is not even opened
    status = cli.main(["livelink", "--audio", str(missing_audio), *extra])
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "talkinghead: error:" in err


# ------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_cli_streams_the_line_then_idle_paced(line_wav, line_track60, receiver):
    proc = subprocess.run(
        [sys.executable, "-m", "talkinghead", "livelink", "--audio", str(line_wav), "--text", LINE, "--fps", "60",
         "--target", f"127.0.0.1:{receiver.port}", "--subject", "NPC_01", "--idle-after", "0.5"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    n_line, n_idle = line_track60.n_frames, 30
    packets = receiver.wait_for(n_line + n_idle)
    assert len(packets) == n_line + n_idle
    assert f"sent {n_line + n_idle} frames" in proc.stdout and "NPC_01" in proc.stdout
    assert {p["subject"] for p in packets} == {"NPC_01"} and {p["rate"] for p in packets} == {(60, 1)}
    assert [p["frame"] for p in packets] == list(range(n_line + n_idle))
    values = np.stack([p["values"] for p in packets])
    np.testing.assert_allclose(values[:n_line], expected_curves(line_track60), atol=1e-6)  # the line, exactly
    assert values[:n_line, SLOT["JawOpen"]].max() > 0.2  # it talks ...
    assert values[n_line:, SLOT["JawOpen"]].max() < 0.05  # ... then rests
    stamps = np.array([t for t, _ in receiver.got])
    assert stamps[-1] - stamps[0] == pytest.approx((n_line + n_idle - 1) / 60, abs=0.05)
