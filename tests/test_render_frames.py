"""The one frame path (render.FrameMaker): the renderer's frames, marked, batched and encoded
as every output gets them; and `ahead`, which renders a video's frames while it is encoded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from skimage import data

from talkinghead.arkit import pose_vector
from talkinghead.errors import OptionsError
from talkinghead.face import analyze_portrait
from talkinghead.media import decode_frame
from talkinghead.provenance import DEFAULT_PAYLOAD, detect, mark
from talkinghead.render import FrameMaker, ImageOptions, render
from talkinghead.render.frames import ahead
from talkinghead.track import FaceParams, HeadPose


@pytest.fixture(scope="module")
def rig():
    return analyze_portrait(data.astronaut(), 256, "face")


PARAMS = [FaceParams(0.0, pose_vector({"jawOpen": j}), head=HeadPose(yaw=4 * j)) for j in (0.0, 0.3, 0.6)]


def test_frames_are_the_renderers_marked(rig):
    frames = FrameMaker().render(rig, PARAMS)
    for f, p in zip(frames, PARAMS):
        assert np.array_equal(f, mark(render(rig, p)))
    unmarked = FrameMaker(watermark=None).render(rig, PARAMS)
    assert all(np.array_equal(f, render(rig, p)) for f, p in zip(unmarked, PARAMS))


def test_images_are_encoded_and_shrunk_after_the_mark(rig):
    maker = FrameMaker()
    full, small = maker.images(rig, PARAMS[1:2])[0], maker.images(rig, PARAMS[1:2], ImageOptions("jpeg", 60, 0.5))[0]
    assert decode_frame(full, "jpeg").shape == (256, 256, 3)
    assert decode_frame(small, "jpeg").shape == (128, 128, 3) and len(small) < len(full) / 2
    assert detect(decode_frame(maker.images(rig, PARAMS[1:2], ImageOptions("png"))[0], "png")).payload == DEFAULT_PAYLOAD


def test_a_stop_ends_early_and_a_bad_batch_is_refused(rig):
    stop = threading.Event()
    stop.set()
    assert FrameMaker().render(rig, PARAMS, stop) == []
    with pytest.raises(OptionsError, match="batch"):
        FrameMaker(batch=0)


def test_ahead_keeps_order_passes_errors_and_stops_when_closed():
    assert list(ahead(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("broken frame")

    it = ahead(failing())
    assert next(it) == 1
    with pytest.raises(ValueError, match="broken frame"):
        next(it)
    made = []

    def endless():
        i = 0
        while True:
            made.append(i)
            yield i
            i += 1

    it = ahead(endless(), depth=2)
    assert next(it) == 0
    it.close()
    n = len(made)
    time.sleep(0.1)
    assert n <= 5 and len(made) == n          # the producer stopped, a few items ahead at most
