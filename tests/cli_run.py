"""Run the real `talkinghead` command in a subprocess (the tests' one way to call the CLI)."""

from __future__ import annotations

import subprocess
import sys


def talkinghead(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkinghead", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)
