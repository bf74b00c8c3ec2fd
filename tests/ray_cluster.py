"""A real Ray cluster on this machine's loopback, for the batch tests and benchmark.

`ray start --head --block` in its own session, bounded in CPUs, on 127.0.0.1 only (Ray would
otherwise advertise the machine's network address), stopped by SIGTERM to that one process (which
stops everything it started), SIGKILL to its process group if that takes too long.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Loopback only: Ray's single-machine mode (the one it uses on macOS and Windows) advertises
# 127.0.0.1 instead of the machine's address; no token, as nothing but this machine can reach it.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                "RAY_USAGE_STATS_ENABLED": "0"}
START_TIMEOUT_S = 90
OBJECT_STORE_BYTES = 256 * 2**20   # the lines' audio and takes in flight: a few MB


def have_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_env() -> dict[str, str]:
    """The environment for drivers (and clusters) that must stay on loopback."""
    return {**os.environ, **LOOPBACK_ENV}


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2):
    """Yields the cluster's address, "127.0.0.1:PORT"; the cluster is gone after the block."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="thray", dir="/tmp"))  # short: Ray's unix sockets live under it
    ray_bin = Path(sys.executable).with_name("ray")
    log = open(temp / "start.log", "w")
    proc = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--num-cpus={num_cpus}", f"--port={port}",
                             "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
                             f"--object-store-memory={OBJECT_STORE_BYTES}",
                             f"--temp-dir={temp}"], stdout=log, stderr=subprocess.STDOUT, env=loopback_env(),
                            start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        _wait_started(proc, temp / "start.log", port)
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_started(proc: subprocess.Popen, log: Path, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if "Ray runtime started" in log.read_text():
            return
        time.sleep(0.2)
    raise RuntimeError(f"Ray did not start on port {port} within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")
