"""Server limits (every one a `serve` option) and the concurrency slots: at most N calls at once
in all, M per client, and a few CreateAvatar decodes at once."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from dataclasses import dataclass

from talkinghead.errors import LimitError


@dataclass(frozen=True)
class Limits:
    """Server limits. Sizes in bytes, durations in seconds."""

    max_concurrent: int = 16            # Generate + Stream calls at once, all clients
    max_per_client: int = 4             # ... per client (its token, or its address without one)
    max_message_bytes: int = 64 << 20   # one request message: an image or an audio file
    max_image_bytes: int = 20 << 20     # a portrait upload
    max_audio_seconds: float = 15 * 60  # a Generate clip
    max_chunk_seconds: float = 2.0      # one Stream audio chunk
    max_buffered_seconds: float = 30.0  # Stream audio received but not yet played out (a flood)
    # Stream frames computed but not yet sent, in every mode: past this the server stops reading
    # the client's messages until the client reads frames (backpressure).
    max_buffered_frames: int = 1800
    max_image_pixels: int = 24_000_000  # a portrait's width x height, read from its header before decoding (6000 x 4000)
    max_audio_samples: int = 15 * 60 * 48000 * 2  # a clip's samples x channels, from its header
    min_audio_seconds: float = 0.05     # shorter audio is refused (INVALID_ARGUMENT)
    max_transcript_chars: int = 20_000  # Generate's transcript (15 min of speech is about 14,000)
    max_text_chars: int = 200           # any other text field (emotion, gaze, Live Link target, ...)
    max_concurrent_avatars: int = 2     # CreateAvatar decodes at once (they also count as calls)
    max_messages_per_second: float = 200.0  # per Stream; faster senders are throttled (not refused)
    first_message_seconds: float = 10.0     # a Stream must send its StreamConfig within this
    stream_idle_seconds: float = 300.0      # a Stream with no message for this long is ended
    # Wall seconds a Stream's image may take before the stream sends cheaper ones (session.py's
    # IMAGE_LEVELS); 0 = one frame interval (33 ms at 30 fps), the most a stream can keep up with.
    stream_image_seconds: float = 0.0
    analysis_processes: int = 2         # worker processes for face and speech analysis
    # Processes making Stream images with the CPU renderer (server/images.py): -1 = one per core
    # the server may use (at most 8); 0 = on the server's threads (they share one core: the GIL).
    image_processes: int = -1
    avatar_cache_bytes: int = 2 << 30
    avatar_ttl: float = 3600.0
    # Hosts a Stream may ask the server to send Live Link UDP to ("*" = any). Loopback by
    # default: a server that sends packets wherever a client says is a reflector for abuse.
    livelink_allow: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


class Slots:
    """Counts calls in flight; `take(client)` is a context manager that refuses past the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._total = 0
        self._per_client: Counter[str] = Counter()
        self._avatars = 0

    @contextlib.contextmanager
    def avatar(self):
        """One CreateAvatar decode (taken inside `take`)."""
        with self._lock:
            if self._avatars >= self.limits.max_concurrent_avatars:
                raise LimitError(f"{self._avatars} portraits are being analysed, the limit is "
                                 f"{self.limits.max_concurrent_avatars}: retry in a moment")
            self._avatars += 1
        try:
            yield
        finally:
            with self._lock:
                self._avatars -= 1

    @contextlib.contextmanager
    def take(self, client: str):
        with self._lock:
            if self._total >= self.limits.max_concurrent:
                raise LimitError(f"the server is busy ({self._total} calls in progress, the limit is "
                                 f"{self.limits.max_concurrent}): retry in a moment")
            if self._per_client[client] >= self.limits.max_per_client:
                raise LimitError(f"this client already has {self._per_client[client]} calls in progress, the "
                                 f"limit is {self.limits.max_per_client}: wait for one to finish")
            self._total += 1
            self._per_client[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self._total -= 1
                self._per_client[client] -= 1
                if not self._per_client[client]:
                    del self._per_client[client]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._total
