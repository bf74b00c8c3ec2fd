"""`talkinghead serve` with the speech motion stubbed out: what the service costs besides the motion.

    python benchmarks/serve_motion_stub.py serve --port 50051 ...   (what stream_latency.py --motion-stub runs)

Each push returns the frames the real MotionStream would (those up to the newest audio less the
lookahead, at the same stream frame indices; a flush the rest of the line), all with the same
constant parameters, computed from nothing: no phone model, features, lips or life for speech
frames. Idle frames are the real ones. The server, the session, gRPC and protobuf are untouched,
so its "server CPU" is the service's own cost per stream-second: the floor under any motion.
A benchmark tool only; nothing in the package imports it.
"""

from __future__ import annotations

import sys

import numpy as np

from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.motion import stream
from talkinghead.track import EyeGaze, FaceParams, HeadPose, MotionTrack

_SHAPES = np.full(52, 0.1, np.float32)


def _frames(motion: stream.MotionStream, end: int) -> list[FaceParams]:
    fps, out = motion.options.fps, []
    while motion._emitted < end:
        out.append(FaceParams(t=motion._emitted / fps, blendshapes=_SHAPES, head=HeadPose(0.1, 0.2, 0.3, 0.0, 0.1, 0.2),
                              gaze_left=EyeGaze(0.1, 0.2), gaze_right=EyeGaze(0.1, 0.2), viseme="aa"))
        motion._emitted += 1
    return out


def feed(self: stream.MotionStream, samples: np.ndarray) -> bool:
    if not len(samples):
        return False
    if getattr(self, "_stub_start", None) is None:
        self._stub_start, self._stub_samples = self._emitted, 0
    self._stub_samples += len(samples)
    return True


def advance(self: stream.MotionStream) -> list[FaceParams]:
    if getattr(self, "_stub_start", None) is None:
        return []
    return _frames(self, self._stub_start + stream.final_frames(self._stub_samples, self.options.fps))


def flush(self: stream.MotionStream) -> list[FaceParams]:
    if getattr(self, "_stub_start", None) is None:
        return []
    end = self._stub_start + MotionTrack.frame_count(self._stub_samples / SAMPLE_RATE, self.options.fps)
    self._stub_start = None
    return _frames(self, end)


stream.MotionStream.feed, stream.MotionStream.advance, stream.MotionStream.flush = feed, advance, flush
stream.hear_together = lambda streams: None

from talkinghead.server import pushes  # noqa: E402 - after the stub is in place

pushes.hear_together = stream.hear_together

if __name__ == "__main__":
    from talkinghead.cli import main

    sys.argv = ["talkinghead", *sys.argv[1:]]
    sys.exit(main())
