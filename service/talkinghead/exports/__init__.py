"""Writing a MotionTrack to disk: JSON track (`.json`) or Live Link Face CSV take (`.csv`);
streaming it live as Live Link Face UDP packets (`LiveLinkSender`).

`write_track` picks the format from the file suffix and turns every failure into an
`ExportError` whose message says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from talkinghead.errors import ExportError
from talkinghead.exports.json_track import read_json, track_to_dict, write_json
from talkinghead.exports.livelink_csv import read_livelink_csv, write_livelink_csv
from talkinghead.exports.livelink_udp import LIVE_LINK_PORT, LiveLinkSender, SendStats
from talkinghead.track import MotionTrack

WRITERS = {".json": write_json, ".csv": write_livelink_csv}

__all__ = [
    "LIVE_LINK_PORT",
    "LiveLinkSender",
    "SendStats",
    "WRITERS",
    "read_json",
    "read_livelink_csv",
    "track_to_dict",
    "write_json",
    "write_livelink_csv",
    "write_track",
]


def write_track(track: MotionTrack, path: str | os.PathLike[str]) -> Path:
    """Write `track` to `path`, choosing the format by suffix (.json or .csv); returns the path.

    Raises ExportError for an unknown suffix or a path that cannot be written.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    writer = WRITERS.get(suffix)
    if writer is None:
        if not suffix:
            raise ExportError(f"output path '{out}' has no suffix: use .json or .csv")
        raise ExportError(f"unknown output format '{suffix}': use .json or .csv")
    try:
        writer(track, out)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ExportError(
            f"cannot write '{out}': {reason}. Check that the folder exists and is writable, "
            "or choose another output path."
        ) from e
    return out
