"""Streams' chunks that arrive together, pushed together: one phone-model call for them all.

A 100 ms chunk's motion costs ~2 ms on the event loop, of which the phone model's onnxruntime
call is about a quarter in a busy server: between two calls of one stream, the other streams'
work has pushed the model's 2.2 MB of weights out of the CPU's caches, and the call reads them
again. Run as one batch, the weights are read once for all the streams whose chunks came in the
same turn of the event loop (`motion.stream.hear_together`; the rows are the same as one call
per stream, to the bit). A lightly loaded server has one chunk a turn and runs as before; a busy
one gets several a turn, the more the busier, and spends less per chunk where it matters.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from talkinghead.motion.stream import MotionStream, hear_together
from talkinghead.track import FaceParams


class Pushes:
    """`await pushes.push(lock, motion, samples)`: motion.push(samples)'s frames, computed on the
    event loop in the next turn, with the pushes other streams asked for in this one. None when
    `lock` (the stream's, held by whatever runs its motion) is taken: a pool call of the stream
    is running its motion, so push there instead. One per event loop; not thread-safe."""

    def __init__(self) -> None:
        self._waiting: list[tuple[threading.Lock, MotionStream, np.ndarray, asyncio.Future]] = []
        self.batches = self.pushed = 0        # turns that pushed, chunks pushed (what the tests check)

    async def push(self, lock: threading.Lock, motion: MotionStream, samples: np.ndarray) -> list[FaceParams] | None:
        if not lock.acquire(blocking=False):
            return None
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._waiting.append((lock, motion, samples, done))
        if len(self._waiting) == 1:
            loop.call_soon(self._run)
        return await done

    def _run(self) -> None:
        """Every push asked for since the last turn: each stream's chunk fed, their phone model
        as one call, then each stream's frames. A stream's error is its own; the model failing
        fails the streams whose rows it was computing. Each lock is released whatever happens
        (a caller cancelled meanwhile still has its chunk pushed: the stream's state stays whole)."""
        batch, self._waiting = self._waiting, []
        self.batches += 1
        self.pushed += len(batch)
        fed = []
        for lock, motion, samples, done in batch:
            try:
                if motion.feed(samples):
                    fed.append((lock, motion, done))
                    continue
                _settle(done, [])
            except Exception as exc:  # noqa: BLE001 - handed to the stream it belongs to
                _settle(done, exc)
            lock.release()
        try:
            hear_together([motion for _, motion, _ in fed])
        except Exception as exc:  # noqa: BLE001
            for lock, _, done in fed:
                _settle(done, exc)
                lock.release()
            return
        for lock, motion, done in fed:
            try:
                _settle(done, motion.advance())
            except Exception as exc:  # noqa: BLE001
                _settle(done, exc)
            finally:
                lock.release()


def _settle(done: asyncio.Future, outcome) -> None:
    if done.done():                  # its caller was cancelled
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
