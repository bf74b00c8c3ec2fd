"""The server's worker processes (server/workers.py): a killed worker is reaped, off the event
loop when the caller gives a thread pool for it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from talkinghead.server.workers import _Worker


def test_a_killed_worker_is_reaped_in_the_pool_it_is_given_not_by_the_caller():
    pool = ThreadPoolExecutor(max_workers=1)
    gate = threading.Event()
    pool.submit(gate.wait, 30)                  # the pool's one thread is busy: reaping must queue
    worker = _Worker()
    worker.kill(pool)                           # returns at once: SIGKILL sent, reaping queued
    assert worker.process.returncode is None    # not reaped by the caller
    assert not worker.conn.closed               # its pipe stays open until the process is gone
    gate.set()
    pool.shutdown(wait=True)
    assert worker.process.returncode == -9      # reaped by the pool: no zombie left
    assert worker.conn.closed


def test_a_worker_killed_after_its_pool_is_shut_down_is_reaped_by_the_caller():
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    worker = _Worker()
    worker.kill(pool)
    assert worker.process.returncode == -9 and worker.conn.closed
    worker = _Worker()
    worker.kill()
    assert worker.process.returncode == -9 and worker.conn.closed
