"""Server-side cache of analysed portraits (rigs), with a time to live and a size limit."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import structlog

from talkinghead.face.rig import Rig
from talkinghead.errors import NotFoundError

log = structlog.get_logger(__name__)


@dataclass
class _Entry:
    rig: Rig
    expires: float
    nbytes: int


def rig_bytes(rig: Rig) -> int:
    """About how much memory a rig holds (its arrays)."""
    arrays = (rig.image, rig.photo, rig.landmarks, rig.basis, rig.seal, rig.grid_xy, rig.grid_z, rig.head_mask)
    return int(sum(a.nbytes for a in arrays) + rig.spread.data.nbytes * 3 +
               sum(e.eyeball.nbytes + e.iris_patch.nbytes for e in rig.eyes))


class AvatarCache:
    """id -> Rig. Entries expire after their TTL; past `max_bytes` the least recently used go.
    Thread-safe (the servicer touches it from the event loop and from worker threads)."""

    def __init__(self, max_bytes: int = 2 << 30, default_ttl: float = 3600.0, max_ttl: float = 86400.0,
                 clock=time.monotonic) -> None:
        self.max_bytes, self.default_ttl, self.max_ttl = max_bytes, default_ttl, max_ttl
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, rig: Rig, ttl: float = 0.0) -> tuple[str, float]:
        ttl = min(ttl or self.default_ttl, self.max_ttl)
        avatar_id = "av_" + secrets.token_hex(8)
        size = rig_bytes(rig)
        with self._lock:
            self._expire()
            self._entries[avatar_id] = _Entry(rig, self._clock() + ttl, size)
            while self._total() > self.max_bytes and len(self._entries) > 1:
                old, entry = self._entries.popitem(last=False)
                log.info("avatar.evicted", avatar_id=old, bytes=entry.nbytes)
        log.info("avatar.created", avatar_id=avatar_id, bytes=size, ttl_s=ttl)
        return avatar_id, ttl

    def get(self, avatar_id: str) -> Rig:
        with self._lock:
            self._expire()
            entry = self._entries.get(avatar_id)
            if entry is None:
                raise NotFoundError(f"no avatar {avatar_id!r} on this server (it may have expired or been "
                                    "deleted): call CreateAvatar again, or send the image inline")
            self._entries.move_to_end(avatar_id)
            return entry.rig

    def delete(self, avatar_id: str) -> None:
        with self._lock:
            if self._entries.pop(avatar_id, None) is None:
                raise NotFoundError(f"no avatar {avatar_id!r} on this server (already deleted or expired)")

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._entries)

    def _total(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            del self._entries[key]
            log.info("avatar.expired", avatar_id=key)
