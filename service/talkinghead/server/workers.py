"""Worker processes for the server's heavy calls (`jobs.py`): face and speech analysis hold the
GIL for seconds (the recogniser, Praat, the landmarker), which in a thread would freeze the
event loop and every other call. A job runs in a process of its own; when its call ends early
(the client cancels, the deadline passes, the server stops) the process is killed, so the work
stops at once, and a fresh one takes its place.

Processes are started fresh (`python -m talkinghead.server.workers`, never forked: the gRPC
core's threads do not survive a fork, and multiprocessing's spawn would re-import the caller's
main script) on first use and kept warm; at most `n` jobs run at once, the rest wait their turn.
Jobs, progress and results travel pickled over a multiprocessing Connection.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
from concurrent.futures import Executor, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Callable

import structlog

from talkinghead.errors import TalkingHeadError

log = structlog.get_logger(__name__)

# Workers run below the server's priority: on a busy machine the event loop (health checks,
# realtime streams) goes first and the analysis takes what is left.
WORKER_NICENESS = 10

class WorkerCrashed(Exception):
    """The worker process died (killed from outside, or out of memory)."""


def _worker_main(conn) -> None:
    """The worker process: run one job at a time, sending progress and then the outcome."""
    import os

    os.nice(WORKER_NICENESS)
    import talkinghead.server.jobs  # noqa: F401 - warm: the pipeline imports before the first job

    log.info("worker.ready", pid=os.getpid())

    while True:
        try:
            fn, args, kwargs, wants_progress = conn.recv()
        except (EOFError, OSError):
            return
        if wants_progress:
            kwargs = {**kwargs, "progress": lambda stage, fraction: conn.send(("progress", stage, fraction))}
        reply(conn, fn, *args, **kwargs)


def reply(conn, fn: Callable, *args, **kwargs) -> None:
    """In a worker process: send ("ok", fn's result), or ("error", what it raised): a
    TalkingHeadError as it is, anything else (a bug: INTERNAL for the call) as a RuntimeError
    naming it, so the worker lives on."""
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except TalkingHeadError as exc:
        conn.send(("error", exc))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        conn.send(("error", RuntimeError(f"{type(exc).__name__}: {str(exc)[:500]}")))


def run_worker(main: Callable) -> None:
    """A worker process's `__main__`: the logging settings and the Pipe end that `_Worker` put
    on its command line, then main(conn, *the rest of it)."""
    from talkinghead import logs

    logs.configure(sys.argv[2], sys.argv[3] == "1")
    main(Connection(int(sys.argv[1])), *sys.argv[4:])


class _Worker:
    """A fresh `python -m <module> FD LEVEL JSON [ARGS]` process, its end of a Pipe on FD (the
    logging settings passed on), and this end: `conn`."""

    def __init__(self, module: str = "talkinghead.server.workers", args: tuple[str, ...] = ()) -> None:
        from talkinghead import logs

        self.conn, child = multiprocessing.Pipe()
        level, json = logs.settings
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, str(child.fileno()), level, str(int(json)), *args],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        child.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        """How it ended (-9: killed), for a pipe found closed; None if it still runs a second on (the
        pipe closes a moment before the process is reaped, so poll() alone said None). In a thread."""
        try:
            return self.process.wait(1)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, reaper: Executor | None = None) -> None:
        """SIGKILL it. The kernel then frees its memory before the process can be reaped, 16-33 ms
        for an analysis worker mid-job: on the event loop, pass `reaper` (a thread pool) and the
        reaping waits there instead of stalling every other stream."""
        self.process.kill()
        if reaper is not None:
            try:
                reaper.submit(self._reap)
                return
            except RuntimeError:        # the pool is shut down (the server is stopping): wait here
                pass
        self._reap()

    def _reap(self) -> None:
        """Wait for the killed process, then close our end of its pipe: not before, while a thread
        may still be reading it (its read ends with the process, on EOF)."""
        self.process.wait(5)
        self.conn.close()


class Workers:
    """`await workers.run(fn, *args, progress=callback)` runs `fn(*args)` in a worker process.
    progress(stage, fraction) is called on the event loop when given (and `fn` takes progress=)."""

    def __init__(self, n: int = 2) -> None:
        self.n = n
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._threads = ThreadPoolExecutor(max_workers=n + 1, thread_name_prefix="talkinghead-ipc")
        self._turns: asyncio.Semaphore | None = None

    def prestart(self) -> None:
        """Spawn the processes now (serve does, so the first calls do not wait for them)."""
        while len(self._idle) + len(self._busy) < self.n:
            self._idle.append(_Worker())

    async def run(self, fn: Callable, *args, progress: Callable[[str, float], None] | None = None, **kwargs):
        loop = asyncio.get_running_loop()
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.n)
        async with self._turns:
            worker = self._idle.pop() if self._idle else await loop.run_in_executor(self._threads, _Worker)
            self._busy.add(worker)
            reusable = False
            try:
                kind, value = await loop.run_in_executor(
                    self._threads, self._drive, worker, (fn, args, kwargs, progress is not None), progress, loop)
                reusable = True
            finally:
                self._busy.discard(worker)
                if reusable:
                    self._idle.append(worker)
                else:                       # cancelled mid-job, or crashed: the work dies with it
                    worker.kill(self._threads)
                    log.info("worker.killed", job=getattr(fn, "__name__", str(fn)))
        if kind == "error":
            raise value
        return value

    @staticmethod
    def _drive(worker: _Worker, job, progress, loop):
        """In a thread: hand the job over, relay progress, return ("ok" | "error", value)."""
        try:
            worker.conn.send(job)
            while True:
                message = worker.conn.recv()
                if message[0] != "progress":
                    return message
                if progress is not None:
                    loop.call_soon_threadsafe(progress, message[1], message[2])
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise WorkerCrashed(f"the worker process ended during the job (exit code "
                                f"{worker.exit_code()})") from exc

    def close(self) -> None:
        for worker in list(self._idle) + list(self._busy):
            worker.kill()
        self._idle.clear()
        self._busy.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    run_worker(_worker_main)
