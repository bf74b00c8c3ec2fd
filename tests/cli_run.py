"""Run the real `talkinghead` command in a subprocess (the tests' one way to call the CLI)."""

from __future__ import annotations

import socket
import subprocess
import sys


def talkinghead(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkinghead", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def free_port() -> int:
    """A loopback port nothing listens on now, for a server the test starts as its own process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
