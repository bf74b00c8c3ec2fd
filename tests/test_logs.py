"""Structured logs: one event per line, whoever else writes to the same stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys

WRITER = """
import sys
from talkinghead import logs
import structlog
logs.configure("info", json=True)
log = structlog.get_logger("t")
for i in range(3000):
    log.info("tick", who=sys.argv[1], i=i)
"""


def test_json_events_of_processes_sharing_stderr_stay_one_per_line():
    """The server and its worker processes write to one stderr; unbuffered (PYTHONUNBUFFERED, as CI
    and containers often set it) an event written as two writes (the text, then its newline:
    print's way) interleaved with another process's ("{...}{...}" on one line, a log collector's
    parse error, a test waiting forever for an event it could not read)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    read_end, write_end = os.pipe()   # three processes' stderr on ONE pipe
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(k)], stderr=write_end, env=env) for k in range(3)]
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    for p in writers:
        assert p.wait(60) == 0
    events, bad = [], []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            bad.append(line)
    assert not bad, (len(bad), bad[:2])
    assert sorted((e["who"], e["i"]) for e in events) == [(str(k), i) for k in range(3) for i in range(3000)]
