"""Concurrency limits: at most N calls at once in all, and M per client."""

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
