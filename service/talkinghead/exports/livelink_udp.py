"""Live Link Face (Epic's iOS app) UDP stream: drive any MetaHuman / ARKit rig in Unreal, live.

Unreal's stock listener (the Apple ARKit Face Support plugin's Live Link source, UDP port 11111
by default) decodes these packets exactly as it decodes the app's, so no plugin of ours is needed.

Packet layout, protocol version 6 (one datagram per frame, network byte order = big-endian)::

    offset  size  field
    0       1     uint8   packet version, 6
    1       4     int32   N = byte length of the device id
    5       N     UTF-8   device id (the app sends its UUID; Unreal keeps one subject per device)
    5+N     4     int32   M = byte length of the subject name
    9+N     M     UTF-8   subject name (what Unreal's Live Link window lists, e.g. "NPC_01")
    9+N+M   4     int32   frame number  \\
            4     float32 sub-frame      | FQualifiedFrameTime: time = (frame + sub-frame) / rate
            4     int32   rate numerator |                      rate = numerator / denominator fps
            4     int32   rate denominator /
            1     uint8   curve count, 61
            244   float32 x 61: ARKit's 52 blendshapes in ARKit's own order (EyeBlinkLeft ...
                  TongueOut, jawLeft BEFORE jawRight), then HeadYaw, HeadPitch, HeadRoll,
                  LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll

    total = 270 + N + M bytes.

Sources (the real code, not guessed):

* Epic's sender and receiver, Unreal Engine `Engine/Plugins/Runtime/AR/AppleAR/AppleARKitFaceSupport/
  Source/AppleARKitFaceSupport/Private/AppleARKitLiveLinkSource.cpp` (read in the public mirrors
  github.com/unicorn2022/UE5.8.0 and github.com/izzy2lost/UnrealEngineUWP):
  `BLEND_SHAPE_PACKET_VER = 6` ("6 = Replaced FTimecode with FQualifiedFrameTime"), and
  `FAppleARKitLiveLinkRemotePublisher::PublishBlendShapes` writes version, DeviceId, SubjectName,
  FrameTime, `uint8 BlendShapeCount = EARFaceBlendShape::MAX`, then one float per enum value.
  `FAppleARKitLiveLinkRemoteListener::Tick` reads the same fields, drops a packet whose version
  is not 6 or whose count is not 61, and ignores packets not longer than
  MIN_BLEND_SHAPE_PACKET_SIZE. Its receive buffer is MAX_BLEND_SHAPE_PACKET_SIZE =
  1 + sizeof(FQualifiedFrameTime) + 1 + 61*4 + 2 * 256 * sizeof(TCHAR): Epic budgets 256
  characters for each of the two names.
* The byte encoding, `AppleARKitLiveLinkSource.h` in the same folder (FNboSerializeToBuffer /
  FNboSerializeFromBuffer): integers and floats big-endian; an FName is sent as its FString, an
  int32 byte length followed by the UTF-8 bytes, no terminator; FQualifiedFrameTime as
  FrameNumber (int32), SubFrame (float), Rate.Numerator (int32), Rate.Denominator (int32).
* The curve order, `EARFaceBlendShape` in Unreal's `ARTrackable.h` (AugmentedReality module; its
  reflected dump in public SDK headers lists EyeBlinkLeft = 0 ... TongueOut = 51, HeadYaw = 52 ...
  RightEyeRoll = 60, MAX = 61): ARKit's order, which is `talkinghead.arkit.BLENDSHAPE_NAMES`.
  The app's *CSV* swaps JawLeft/JawRight and MouthLeft/MouthRight (see `livelink_csv`); the UDP
  stream does not.
* Community encoders that Unreal accepts agree: github.com/JimWest/PyLiveLinkFace
  `pylivelinkface/pylivelinkface.py` (`encode`: `struct.pack('!B61f', 61, ...)`, frame time and
  rate as `!II`; its "version `<I` + '$' + uuid" is a trick that yields the byte 6 followed by a
  big-endian length of 36), github.com/think-biq/LLV README (port 11111, packet sizes; its
  field list follows the size formula, not the wire order), and github.com/JimWest/MeFaMo
  `mefamo/mefamo.py`, which sends head rotation in radians
  (`transforms3d.euler.mat2euler`) as HeadPitch/HeadYaw/HeadRoll.
* Units and signs of the 9 rotation curves: radians, with exactly the signs and the eye swap that
  real Live Link Face takes show (the app records to CSV the values it streams). The conversion
  is the one in `livelink_csv` (its docstring gives the evidence), reused here so the CSV take
  and the stream can never disagree. Our head x/y/z and visemes have no place in the packet.

Choices made here (the protocol leaves them open):

* Names: each of the device id and the subject name is 1..256 UTF-8 bytes (Epic's 256-character
  budget; a packet is then at most 782 bytes, inside the listener's buffer on every platform) and
  has no control characters (the listener copies the name into a C string, so a NUL would cut
  it). Unreal compares subject names case-insensitively (FName): "NPC_01" and "npc_01" are one
  subject. The default device id is derived from the subject, so two NPCs streamed at once are
  two devices (Unreal replaces a device's old subject when it changes name).
* Frame time: frame number = the sender's running frame count (it never goes back, across lines
  and idle), sub-frame 0, rate = the track's fps as a fraction. The app sends time of day
  instead; Unreal's default Live Link evaluation ("Engine Time") orders frames by arrival, so
  this only shows in recordings (Take Recorder) and timecode-synchronised setups.
* Frame rate: sent as int32 numerator / denominator. We accept 1..1000 fps that is a ratio of
  whole numbers with a denominator up to 1001 (30, 60, 24000/1001 = 23.976, 30000/1001 = 29.97,
  29.97, 12.5 ...). Zero, negative, NaN or infinite rates have no fraction; an irrational-looking
  rate such as 3.14159 would be sent as a different rate than asked; a rate over 1000 frames a
  second is a mistake for a face.
* Pacing: frames go out at the fps in real time (perf_counter schedule, not sleep-per-frame, so
  error does not accumulate). A sender that falls behind by more than MAX_LAG_S skips frames to
  catch up, so the face stays in time with audio played elsewhere; shorter hiccups are caught up
  by sending at once.
* Nobody listening: UDP has no connection; on Linux (and Windows) an ICMP "port unreachable" from
  the target makes a later send fail with ConnectionRefusedError/ConnectionResetError. We IGNORE
  that with one warning event (`livelink.no_listener`) and keep sending, because the sender is
  meant to stream before Unreal starts and across editor restarts; `SendStats.refused` counts
  the refused sends. A host name that does not resolve, a bad port, or any other socket error is
  an `ExportError` that says what to check.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable

import numpy as np
import structlog

from talkinghead.arkit import BLENDSHAPE_NAMES
from talkinghead.errors import ExportError, OptionsError

# One rotation conversion for the CSV take and the stream (see the module docstring).
from talkinghead.exports.livelink_csv import ARKIT_TO_LLF, LLF_ROTATION_COLUMNS, rotation_columns
from talkinghead.track import FaceParams, MotionTrack

log = structlog.get_logger(__name__)

LIVE_LINK_PORT = 11111  # Unreal's default (UAppleARKitSettings.LiveLinkPublishingPort) and the app's
PACKET_VERSION = 6
#: The 61 curve names in packet order: Unreal's EARFaceBlendShape names (ARKit order, capitalised).
UDP_CURVE_NAMES: tuple[str, ...] = tuple(ARKIT_TO_LLF[n] for n in BLENDSHAPE_NAMES) + LLF_ROTATION_COLUMNS
CURVE_COUNT = len(UDP_CURVE_NAMES)
assert CURVE_COUNT == 61
MAX_NAME_BYTES = 256  # per name, UTF-8 bytes (Epic's budget: 256 TCHARs each)
MIN_FPS, MAX_FPS = 1.0, 1000.0
MAX_FPS_DENOMINATOR = 1001  # NTSC rates (30000/1001) are the largest denominators in use
MAX_LAG_S = 0.1  # behind schedule by more than this: skip frames instead of bursting them
FRAME_NUMBER_MODULUS = 2**31  # int32 on the wire; wraps after 414 days at 60 fps

_CURVES = struct.Struct(f">ifiiB{CURVE_COUNT}f")  # frame time, count, 61 values: everything after the names
_DEVICE_NAMESPACE = uuid.UUID("5b1f3c1e-8a8e-4c47-9d0b-7a1d6f1c2e10")  # talkinghead's uuid5 namespace


@dataclass(frozen=True)
class SendStats:
    """What one `send_frames` / `send_track` call did."""

    frames_sent: int = 0  # datagrams handed to the network
    frames_skipped: int = 0  # frames dropped to catch up after falling more than MAX_LAG_S behind
    refused: int = 0  # sends refused because nothing listened at the target (see module docstring)
    seconds: float = 0.0  # wall-clock time the call took
    stopped: bool = False  # True when stop_event ended it early


# ------------------------------------------------------------------------------ validation


def parse_target(target: str | tuple[str, int]) -> tuple[str, int]:
    """"HOST:PORT", "HOST" (port 11111), "[IPv6]:PORT" or (host, port) -> (host, port).

    Raises OptionsError when the port is missing a number or outside 1..65535, or the host is empty.
    """
    if isinstance(target, tuple):
        host, port_text = target[0], str(target[1])
    else:
        text = str(target).strip()
        if text.startswith("["):  # [::1]:11111
            host, _, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else (rest or str(LIVE_LINK_PORT))
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        else:  # a bare name, IPv4 or IPv6 address
            host, port_text = text, str(LIVE_LINK_PORT)
    host = str(host).strip()
    if not host:
        raise OptionsError(f"the Live Link target {target!r} has no host: give HOST:PORT, e.g. 127.0.0.1:11111")
    try:
        port = int(port_text)
    except ValueError:
        raise OptionsError(f"the Live Link target {target!r} has port {port_text!r}, which is not a number: "
                           f"give HOST:PORT, e.g. {host}:{LIVE_LINK_PORT}") from None
    if not 1 <= port <= 65535:
        raise OptionsError(f"the Live Link target port must be 1..65535, got {port} "
                           f"(Unreal listens on {LIVE_LINK_PORT} unless you changed it)")
    return host, port


def check_name(name: str, what: str = "subject name") -> bytes:
    """The UTF-8 bytes of a subject name or device id, or OptionsError saying what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise OptionsError(f"the Live Link {what} is empty: give a name such as NPC_01")
    bad = sorted({f"U+{ord(c):04X}" for c in name if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise OptionsError(f"the Live Link {what} {name!r} contains control characters ({', '.join(bad)}): "
                           "use letters, digits, spaces, '_' or '-'")
    data = name.encode("utf-8")
    if len(data) > MAX_NAME_BYTES:
        raise OptionsError(f"the Live Link {what} is {len(data)} bytes of UTF-8; the protocol allows "
                           f"{MAX_NAME_BYTES}: use a shorter name")
    return data


def frame_rate_fraction(fps: float | Fraction) -> tuple[int, int]:
    """fps -> (numerator, denominator) as sent in every packet, e.g. 29.97 -> (2997, 100).

    Raises OptionsError for a rate the protocol cannot carry (see the module docstring).
    """
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise OptionsError(f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise OptionsError(f"fps {fps!r} cannot be sent: Live Link sends the frame rate as a fraction of "
                           "two whole numbers, so it must be a positive, finite number such as 30 or 60")
    if not MIN_FPS <= value <= MAX_FPS:
        raise OptionsError(f"fps {value:g} is outside {MIN_FPS:g}..{MAX_FPS:g}: "
                           "a face stream runs at 24 to 60 frames per second")
    frac = fps if isinstance(fps, Fraction) else Fraction(value).limit_denominator(MAX_FPS_DENOMINATOR)
    if frac.denominator > MAX_FPS_DENOMINATOR or abs(float(frac) - value) > 1e-9 * value:
        raise OptionsError(f"fps {value!r} is not a ratio of whole numbers with a denominator up to "
                           f"{MAX_FPS_DENOMINATOR}, so Live Link would get a different rate: "
                           "use a rate such as 24, 25, 30, 60 or 29.97")
    return frac.numerator, frac.denominator


def default_device_id(subject: str) -> str:
    """A stable UUID per subject (case-insensitive, as Unreal compares subjects)."""
    return str(uuid.uuid5(_DEVICE_NAMESPACE, subject.casefold()))


# --------------------------------------------------------------------------------- values


def track_curves(track: MotionTrack) -> np.ndarray:
    """The 61 curve values per frame in packet order, shape = (n_frames, 61), float32.

    Blendshapes 0..1 in ARKit order, then the 9 rotations in radians with Live Link Face signs.
    Raises ExportError for NaN or infinite values.
    """
    bs = np.clip(np.asarray(track.blendshapes, np.float64), 0.0, 1.0)
    rot = rotation_columns(np.asarray(track.head, np.float64), np.asarray(track.gaze, np.float64))
    values = np.concatenate([bs, rot], axis=1)
    if not np.all(np.isfinite(values)):
        raise ExportError("the face parameters contain NaN or infinite values and cannot be sent; "
                          "this is a bug in the motion stage, please report it")
    return values.astype(np.float32)


def params_curves(params: FaceParams) -> np.ndarray:
    """One frame's 61 curve values, shape = (61,), float32 (see `track_curves`)."""
    head = np.array([[params.head.yaw, params.head.pitch, params.head.roll,
                      params.head.x, params.head.y, params.head.z]], np.float64)
    gaze = np.array([[params.gaze_left.yaw, params.gaze_left.pitch,
                      params.gaze_right.yaw, params.gaze_right.pitch]], np.float64)
    bs = np.asarray(params.blendshapes, np.float64).reshape(1, -1)
    if bs.shape != (1, len(BLENDSHAPE_NAMES)):
        raise ExportError(f"FaceParams.blendshapes has shape {bs.shape[1:]}, expected (52,) in ARKit order")
    track = MotionTrack(fps=1.0, duration=1.0, blendshapes=bs, head=head, gaze=gaze, visemes=["sil"])
    return track_curves(track)[0]


def _names_prefix(device_id: bytes, subject: bytes) -> bytes:
    """The packet's first fields, the same for every frame of a stream: version and the two names."""
    return struct.pack(">Bi", PACKET_VERSION, len(device_id)) + device_id + struct.pack(">i", len(subject)) + subject


def _curves_suffix(values: np.ndarray, frame_number: int, rate: tuple[int, int], sub_frame: float = 0.0) -> bytes:
    """The rest of a packet: frame time, count, the 61 values (shape = (61,), packet order)."""
    return _CURVES.pack(frame_number % FRAME_NUMBER_MODULUS, sub_frame, rate[0], rate[1], CURVE_COUNT, *values.tolist())


# --------------------------------------------------------------------------------- sender


class LiveLinkSender:
    """Sends face parameters to one Live Link subject over UDP, as the Live Link Face app does.

    `target`: "HOST:PORT" (or (host, port)) of the machine running Unreal; `subject`: the name
    Unreal lists (MetaHuman: "LLink Face Subj"); `fps`: the frame rate of what you send.
    Construction validates everything and resolves the host, so mistakes fail before any work.
    Not thread-safe: one sender per stream (the server: one per Live Link stream).
    """

    def __init__(self, target: str | tuple[str, int], subject: str, *, device_id: str | None = None,
                 fps: float = 30.0) -> None:
        self.host, self.port = parse_target(target)
        self._subject = check_name(subject)
        self.subject = subject
        self.device_id = default_device_id(subject) if device_id is None else device_id
        self._device = check_name(self.device_id, "device id")
        self.rate = frame_rate_fraction(fps)
        self.fps = self.rate[0] / self.rate[1]
        self._prefix = _names_prefix(self._device, self._subject)
        self._next_index = 0
        self._next_due: float | None = None  # perf_counter time the next paced frame is due
        self._warned_refused = False
        self.totals = SendStats()
        self._sock = self._open()
        log.info("livelink.open", target=f"{self.host}:{self.port}", subject=subject, device_id=self.device_id,
                 fps=self.fps, rate=f"{self.rate[0]}/{self.rate[1]}")

    def _open(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise ExportError(f"cannot find the Live Link target host {self.host!r} ({e.strerror}): check --target, "
                              "the HOST:PORT of the machine running Unreal, e.g. 127.0.0.1:11111") from None
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            # connect() on UDP only fixes the peer: it sends nothing, but lets the OS report
            # "port unreachable" back to us (see `_transmit`) and fails now if there is no route.
            sock.connect(address)
        except OSError as e:
            sock.close()
            raise ExportError(f"cannot reach the Live Link target {self.host}:{self.port} ({e.strerror or e}): "
                              "check the address and that this machine is on the same network") from None
        return sock

    @property
    def next_frame_index(self) -> int:
        """The frame number the next `send_frames`/`send_track` frame will carry."""
        return self._next_index

    def send(self, params: FaceParams, frame_index: int) -> None:
        """Send one frame now with frame number `frame_index` (later streamed frames continue after it)."""
        refused = not self._transmit(params_curves(params), frame_index)
        self._next_index = frame_index + 1
        t = self.totals
        self.totals = dataclasses.replace(t, frames_sent=t.frames_sent + 1, refused=t.refused + refused)

    def send_track(self, track: MotionTrack, pace: bool = True, stop_event: threading.Event | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> SendStats:
        """Send every frame of `track` (its fps must be the sender's), paced to real time unless pace=False.

        Returns what was done; `stop_event` set from another thread stops it between frames.
        """
        if abs(float(track.fps) - self.fps) > 1e-9 * self.fps:
            raise OptionsError(f"the track is at {track.fps:g} fps but the Live Link sender at {self.fps:g}: "
                               "make the track at the sender's fps (MotionOptions.fps)")
        return self._send_rows(track_curves(track), track.n_frames, pace, stop_event, progress)

    def send_frames(self, frames: Iterable[FaceParams], pace: bool = True, stop_event: threading.Event | None = None,
                    progress: Callable[[int, int | None], None] | None = None) -> SendStats:
        """Like `send_track` for frames produced one by one (each taken as 1/fps after the one before)."""
        return self._send_rows((params_curves(p) for p in frames), None, pace, stop_event, progress)

    def _send_rows(self, rows: Iterable[np.ndarray], total: int | None, pace: bool,
                   stop_event: threading.Event | None, progress: Callable[[int, int | None], None] | None) -> SendStats:
        period = self.rate[1] / self.rate[0]
        start = time.perf_counter()
        if pace and (self._next_due is None or start - self._next_due > MAX_LAG_S):
            self._next_due = start  # a fresh start; back-to-back calls stay on one frame grid
        count = {"sent": 0, "skipped": 0, "refused": 0}
        stopped = False
        try:
            for values in rows:
                if stop_event is not None and stop_event.is_set():
                    stopped = True
                    break
                if pace:
                    assert self._next_due is not None
                    delay = self._next_due - time.perf_counter()
                    if delay > 0:
                        if stop_event is not None:
                            if stop_event.wait(delay):
                                stopped = True
                                break
                        else:
                            time.sleep(delay)
                    elif -delay > MAX_LAG_S:
                        # Too far behind (a stalled machine): drop this frame so the face stays in time.
                        self._next_due += period
                        self._next_index += 1
                        count["skipped"] += 1
                        continue
                    self._next_due += period
                count["refused"] += not self._transmit(values, self._next_index)
                self._next_index += 1
                count["sent"] += 1
                if progress is not None:
                    progress(count["sent"] + count["skipped"], total)
        finally:  # also on KeyboardInterrupt: the totals count what went out
            stats = SendStats(count["sent"], count["skipped"], count["refused"], time.perf_counter() - start, stopped)
            t = self.totals
            self.totals = SendStats(t.frames_sent + stats.frames_sent, t.frames_skipped + stats.frames_skipped,
                                    t.refused + stats.refused, t.seconds + stats.seconds, stopped)
            log.debug("livelink.sent", frames=stats.frames_sent, skipped=stats.frames_skipped, refused=stats.refused,
                      seconds=round(stats.seconds, 3), stopped=stopped)
        if stats.frames_skipped:
            log.warning("livelink.behind", skipped=stats.frames_skipped,
                        hint="frames were dropped to keep real time; the machine is too busy for this fps")
        return stats

    def _transmit(self, values: np.ndarray, frame_index: int) -> bool:
        """Send one datagram; False when the target refused it (nothing listening), see module docstring."""
        packet = self._prefix + _curves_suffix(values, frame_index, self.rate)
        try:
            self._sock.send(packet)
        except (ConnectionRefusedError, ConnectionResetError):
            if not self._warned_refused:
                self._warned_refused = True
                log.warning("livelink.no_listener", target=f"{self.host}:{self.port}",
                            hint="nothing is listening there yet; frames are dropped until Unreal's Live Link "
                                 "Apple ARKit source listens on this port (check the port and the firewall)")
            return False
        except OSError as e:
            raise ExportError(f"cannot send to the Live Link target {self.host}:{self.port} ({e.strerror or e}): "
                              "check the network and the --target address") from None
        return True

    def close(self) -> None:
        """Release the socket (idempotent)."""
        if self._sock.fileno() != -1:
            self._sock.close()
            t = self.totals
            log.info("livelink.close", subject=self.subject, frames=t.frames_sent, skipped=t.frames_skipped,
                     refused=t.refused)

    def __enter__(self) -> LiveLinkSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
