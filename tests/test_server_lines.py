"""Stream lines over a real gRPC server on a loopback port: LineText (the line's text, language
and a TTS engine's marks) before or with the first chunk, the TEXT_DROPPED event, bad lines
refused with INVALID_ARGUMENT, and the marks files `talkinghead client stream --marks` reads."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest

from grpc_server import ServerThread
from talkinghead.audio import phoneset
from talkinghead.audio.decode import SAMPLE_RATE
from talkinghead.client import ClientError, TalkingHeadClient, audio_chunk, control, line_request, line_text, stream_config
from talkinghead.errors import OptionsError
from talkinghead.motion.line import POLLY_VISEMES, Line, Mark, read_marks
from talkinghead.motion.options import MotionOptions
from talkinghead.server import ServerConfig
from talkinghead.v1 import talkinghead_pb2 as pb

LINE = "Bob bought a big map, but the pub by the bay was empty."
Event = pb.StreamEvent


@pytest.fixture(scope="module")
def spoken(festival_line):
    return festival_line(LINE)[:2]


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServerConfig(port=0)) as srv:
        yield srv


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def pieces(x: np.ndarray) -> list[bytes]:
    n = SAMPLE_RATE // 10
    return [pcm16(x[i:i + n]) for i in range(0, len(x), n)]


def run(server, requests) -> tuple[list, list]:
    frames, events = [], []
    with TalkingHeadClient(server.target, timeout=60) as c:
        for r in c.stream(requests):
            which = r.WhichOneof("payload")
            if which == "frame":
                frames.append(r.frame)
            elif which == "event":
                events.append(r.event)
    return frames, events


def polly_marks(segs) -> list[Mark]:
    polly = {v: k for k, v in POLLY_VISEMES.items() if k not in ("@", "E", "O")}
    return [Mark("viseme", polly[phoneset.CLASS_VISEME[(phoneset.from_arpabet(s.phone) or ("sil",))[0]]], s.start)
            for s in segs]


def test_polly_visemes_sent_before_the_line_drive_its_frames(server, spoken):
    samples, segs = spoken
    line = Line(marks=tuple(polly_marks(segs)), viseme_set="polly")
    cfg = stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False)
    frames, events = run(server, [cfg, line_request(line)] + [audio_chunk(p) for p in pieces(samples)] + [control("flush")])
    inside = [f for f in frames for s in segs if s.phone in ("p", "b", "m") and s.start + 0.02 <= f.time <= s.end - 0.02]
    assert len(inside) >= 8 and all(f.params.viseme == "PP" for f in inside)
    assert [e.kind for e in events] == [Event.KIND_LINE_STARTED, Event.KIND_LINE_FINISHED]


def test_text_with_the_first_chunk_and_a_wrong_one_dropped_with_an_event(server, spoken):
    samples, _ = spoken
    cfg = stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False,
                        motion=MotionOptions(language="en"))
    chunks = pieces(samples)
    right = line_text(Line(text=LINE, language="en"))
    wrong = line_text(Line(text="Il gatto dorme sul divano mentre la pioggia cade lenta sulla città.", language="it"))
    reqs = [cfg, audio_chunk(chunks[0], right)] + [audio_chunk(p) for p in chunks[1:]] + [control("flush")]
    reqs += [audio_chunk(chunks[0], wrong)] + [audio_chunk(p) for p in chunks[1:]] + [control("flush")]
    frames, events = run(server, reqs)
    kinds = [e.kind for e in events]
    assert kinds == [Event.KIND_LINE_STARTED, Event.KIND_LINE_FINISHED, Event.KIND_LINE_STARTED,
                     Event.KIND_TEXT_DROPPED, Event.KIND_LINE_FINISHED], kinds
    dropped = events[3]
    assert "match" in dropped.detail or "goes on" in dropped.detail
    assert frames[0].index <= dropped.frame_index <= frames[-1].index


def test_a_line_text_during_a_line_ends_it(server, spoken):
    samples, _ = spoken
    chunks = pieces(samples[: SAMPLE_RATE])
    cfg = stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False)
    reqs = [cfg] + [audio_chunk(p) for p in chunks] + [line_request(Line(text="next line"))]
    reqs += [audio_chunk(p) for p in chunks] + [control("flush")]
    frames, events = run(server, reqs)
    assert [e.kind for e in events] == [Event.KIND_LINE_STARTED, Event.KIND_LINE_FINISHED,
                                        Event.KIND_LINE_STARTED, Event.KIND_LINE_FINISHED]
    assert [f.index for f in frames] == list(range(len(frames))) and len(frames) == 60


@pytest.mark.parametrize("msg, words", [
    (pb.LineText(text="hola", language="xx-nonsense"), "espeak-ng"),
    (pb.LineText(marks=[pb.TimedMark(kind=pb.TimedMark.KIND_VISEME, value="QQ", start_seconds=0.1)]), "visemes"),
    (pb.LineText(marks=[pb.TimedMark(kind=pb.TimedMark.KIND_VISEME, value="PP", start_seconds=-2)]), "seconds"),
    (pb.LineText(marks=[pb.TimedMark(value="PP", start_seconds=0.1)]), "WORD, PHONEME or VISEME"),
    (pb.LineText(viseme_set="x" * 500), "characters"),
    (pb.LineText(text="a" * 30_000), "one line at a time"),
])
def test_bad_lines_get_invalid_argument_with_a_sentence(server, msg, words):
    cfg = stream_config(sample_rate=SAMPLE_RATE, params_only=True, realtime=False)
    with TalkingHeadClient(server.target, timeout=30) as c, pytest.raises(ClientError) as err:
        for _ in c.checked(c.stream([cfg, pb.StreamRequest(line=msg)])):
            pass
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details, err.value


def test_marks_files(tmp_path):
    polly = tmp_path / "polly.marks"
    polly.write_text("\n".join(json.dumps(r) for r in [
        {"time": 0, "type": "sentence", "start": 0, "end": 20, "value": "Bob."},
        {"time": 6, "type": "word", "start": 0, "end": 3, "value": "Bob"},
        {"time": 6, "type": "viseme", "value": "p"}, {"time": 90, "type": "viseme", "value": "a"},
    ]))
    fields = read_marks(polly)
    assert fields["viseme_set"] == "polly" and [m.kind for m in fields["marks"]] == ["word", "viseme", "viseme"]
    assert fields["marks"][2].start == pytest.approx(0.09)
    generic = tmp_path / "azure.json"
    generic.write_text(json.dumps({"viseme_set": "azure", "marks": [{"kind": "viseme", "value": "21", "start": 0.1}]}))
    line = Line(**read_marks(generic))
    assert line.viseme_set == "azure" and line.marks[0].end is None
    for bad in ("not json at all", json.dumps({"marks": [{"kind": "viseme"}]})):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(OptionsError, match="not a marks file"):
            read_marks(tmp_path / "bad.json")


def test_generate_takes_the_clips_marks(server, spoken, tmp_path):
    """Generate with a TTS engine's visemes (GenerateRequest.line): the frames' visemes are the
    marks', the same as a stream's; bad marks get INVALID_ARGUMENT."""
    import soundfile as sf

    samples, segs = spoken
    wav = tmp_path / "line.wav"
    sf.write(wav, samples, SAMPLE_RATE)
    line = Line(marks=tuple(polly_marks(segs)), viseme_set="polly")
    with TalkingHeadClient(server.target, timeout=60) as c:
        frames = c.generate_all(wav, params_only=True, marks=line)[1]
        inside = [f for f in frames for s in segs if s.phone in ("p", "b", "m") and s.start + 0.02 <= f.time <= s.end - 0.02]
        assert len(inside) >= 8 and all(f.params.viseme == "PP" for f in inside)
        with pytest.raises(ClientError) as err:
            c.generate_all(wav, params_only=True, marks=Line(marks=(Mark("viseme", "QQ", 0.1),)))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "visemes" in err.value.details
