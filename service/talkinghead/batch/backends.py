"""Where a batch's lines run: worker processes on this machine, or Ray tasks on a Ray cluster.

Both take an iterator of LineJobs and yield LineResults as lines finish (in any order), with a
bounded number of jobs in flight (each holds its audio in memory), and both run
`work.process_line`. A worker that dies mid-line (killed, out of memory) costs a retry of that line,
not the batch: the local pool starts new workers and resubmits what was in flight; Ray retries
the task (its `max_retries`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import multiprocessing
import structlog

from talkinghead.batch.work import LineJob, LineResult, process_line, warm_up
from talkinghead.errors import OptionsError

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 3          # a line whose worker died this many times is reported failed
IN_FLIGHT_PER_WORKER = 2  # queued jobs per worker: keeps workers busy, bounds the audio held in memory
# One line per core: the pipeline's numeric libraries would otherwise each start a thread per core.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def died(job: LineJob, attempts: int, why: str) -> LineResult:
    return LineResult(job.id, job.key, "failed", 0.0,
                      error=f"the worker running this line died {attempts} times ({why}); it may need more memory "
                            "than a worker has, or a worker was stopped: run the batch again to retry it")


class LocalPool:
    """`workers` processes on this machine (spawned, each loading the models once)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()   # BatchOptions has checked it
        for var in THREAD_VARS:   # inherited by the spawned workers (the driver's libraries are loaded already)
            os.environ.setdefault(var, "1")
        self.pids: list[int] = []

    def _pool(self) -> ProcessPoolExecutor:
        """A pool with all its workers started. They start with Ctrl-C ignored (inherited through the
        exec): the driver stops them itself, instead of every worker printing a traceback."""
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=warm_up)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            for _ in range(self.workers):   # a pool starts a process per submit until it has them all
                pool.submit(warm_up)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        return pool

    def run(self, jobs: Iterable[LineJob]) -> Iterator[LineResult]:
        pending = iter(jobs)
        retry: list[LineJob] = []
        attempts: dict[str, int] = {}
        pool = self._pool()
        running: dict = {}
        try:
            while True:
                while len(running) < self.workers * IN_FLIGHT_PER_WORKER:
                    job = retry.pop() if retry else next(pending, None)
                    if job is None:
                        break
                    running[pool.submit(process_line, job)] = job
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    job = running.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        broken = True
                        running[future] = job     # handled with the rest of what was in flight below
                if broken:
                    pool.shutdown(wait=True, cancel_futures=True)
                    for job in running.values():
                        attempts[job.id] = attempts.get(job.id, 0) + 1
                        if attempts[job.id] >= MAX_ATTEMPTS:
                            yield died(job, attempts[job.id], "a worker process exited")
                        else:
                            retry.append(job)
                    log.warning("batch.worker_died", retrying=len(retry), in_flight=len(running))
                    running = {}
                    pool = self._pool()
        except BaseException:      # Ctrl-C, or the caller stopped reading: the lines in hand are abandoned
            _terminate(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now: shutdown() alone would wait for the lines they are running.
    (`_processes` is the executor's own pid -> Process map: there is no public way to reach them.)"""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


class RayBackend:
    """Ray tasks on a Ray cluster: `address` as ray.init takes it ("auto", "HOST:PORT", "ray://HOST:PORT");
    None starts Ray on this machine for the run, as plain ray.init() does. `workers`: at most this many
    lines at once (default: the cluster's CPUs; with address None also the CPUs Ray starts with).
    Every node needs talkinghead installed (the same version); no file system is shared."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise OptionsError("--ray needs Ray, which is not installed: pip install 'talkinghead[ray]'") from None
        self.ray = ray
        self.address, self.workers = address, workers

    def _connect(self) -> bool:
        """Connect (or start); True when this call started Ray and should shut it down."""
        if self.ray.is_initialized():
            return False
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            kwargs["num_cpus"] = self.workers
        try:
            self.ray.init(address=self.address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise OptionsError(f"cannot reach the Ray cluster at {self.address or 'this machine'}: {exc}; start it "
                               "with `ray start --head` or give its address (--ray HOST:PORT, or auto)") from None
        return True

    def run(self, jobs: Iterable[LineJob]) -> Iterator[LineResult]:
        ray = self.ray
        running: dict = {}
        started = self._connect()
        try:
            slots = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            remote = ray.remote(num_cpus=1, max_retries=MAX_ATTEMPTS - 1)(process_line)
            pending = iter(jobs)
            log.info("batch.ray", address=self.address, slots=slots, nodes=len(ray.nodes()))
            while True:
                while len(running) < slots * IN_FLIGHT_PER_WORKER:
                    job = next(pending, None)
                    if job is None:
                        break
                    running[remote.remote(job)] = job
                if not running:
                    return
                (ref,), _ = ray.wait(list(running), num_returns=1)
                job = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:   # the task's worker or node died MAX_ATTEMPTS times
                    yield died(job, MAX_ATTEMPTS, type(exc).__name__)
        finally:
            for ref in running:      # the driver stopped early (Ctrl-C): free the cluster
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()
