"""The gRPC service with a real server on a loopback port and real channels."""

from __future__ import annotations

import asyncio
import threading
import time

import cv2
import grpc
import numpy as np
import pytest
from skimage import data

from attacks import transcript
from grpc_server import ServerThread
from speech import espeak_say
from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.client import ClientError, TalkingHeadClient, pb
from talkinghead.face import analyze_portrait
from talkinghead.media import decode_frame
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions
from talkinghead.provenance import detect, mark
from talkinghead.render import render
from talkinghead.server import ServerConfig
from talkinghead.server.limits import Limits

LINE = "Maybe we should move the boat before the storm."


@pytest.fixture(scope="module")
def wav(tmp_path_factory, espeak):
    path = tmp_path_factory.mktemp("srv") / "line.wav"
    espeak_say(LINE, "en-us", path)
    return path


@pytest.fixture(scope="module")
def portrait_png():
    ok, buf = cv2.imencode(".png", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return buf.tobytes()


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServerConfig(port=0, token="s3cret", limits=Limits(max_image_bytes=2 << 20))) as srv:
        yield srv


@pytest.fixture()
def client(server):
    with TalkingHeadClient(server.target, token="s3cret", timeout=120) as c:
        yield c


def test_health_and_reflection_are_open_without_a_token(server):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with TalkingHeadClient(server.target) as anonymous:
        assert anonymous.health() == "SERVING"
        assert anonymous.health("talkinghead.v1.TalkingHead") == "SERVING"
        stub = reflection_pb2_grpc.ServerReflectionStub(anonymous.channel)
        reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in reply.list_services_response.service}
        assert {"talkinghead.v1.TalkingHead", "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("token", [None, "wrong"])
def test_calls_without_the_right_token_are_unauthenticated(server, wav, token):
    with TalkingHeadClient(server.target, token=token) as c:
        with pytest.raises(ClientError) as err:
            list(c.generate(wav, params_only=True))
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in err.value.details
        with pytest.raises(ClientError) as err:
            c.delete_avatar("av_x")
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.slow
def test_generate_params_match_the_cli_pipeline(client, wav):
    options = MotionOptions(fps=30, seed=5)
    header, frames, summary = client.generate_all(wav, params_only=True, transcript=LINE, motion=options)
    expected = motion_from_audio(load_audio(wav), SAMPLE_RATE, options, LINE)
    assert header.fps == 30 and len(header.blendshape_names) == 52 and header.width == 0
    assert len(frames) == expected.n_frames == summary.frames
    got = np.array([f.params.blendshapes for f in frames], np.float32)
    np.testing.assert_allclose(got, expected.blendshapes, atol=1e-6)
    heads = np.array([[f.params.head.yaw, f.params.head.pitch, f.params.head.roll,
                       f.params.head.x, f.params.head.y, f.params.head.z] for f in frames])
    np.testing.assert_allclose(heads, expected.head, atol=1e-4)
    assert [f.params.viseme for f in frames] == expected.visemes
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(f.image == b"" for f in frames)


@pytest.mark.slow
def test_generate_images_with_an_avatar_are_the_renderers_frames(client, wav, portrait_png):
    avatar = client.create_avatar(portrait_png, size=256)
    assert avatar.avatar_id.startswith("av_") and (avatar.width, avatar.height) == (256, 256)
    header, frames, summary = client.generate_all(wav, avatar=avatar.avatar_id, encoding="png",
                                                  motion=MotionOptions(seed=2))
    assert (header.width, header.height) == (256, 256) and summary.frames == len(frames) > 30
    rig = analyze_portrait(data.astronaut(), 256, "face")
    track = motion_from_audio(load_audio(wav), SAMPLE_RATE, MotionOptions(seed=2))
    for i in (0, len(frames) // 2, len(frames) - 1):
        image = decode_frame(frames[i].image, "png")
        assert np.array_equal(image, mark(render(rig, track.frame(i))))   # the renderer's frame, marked
    found = detect([decode_frame(f.image, "png") for f in frames[:30]])
    assert found.detected and found.payload.synthetic
    jpeg = client.generate_all(wav, avatar=avatar.avatar_id, encoding="jpeg", quality=80)[1][5].image
    assert jpeg[:2] == b"\xff\xd8" and decode_frame(jpeg, "jpeg").shape == (256, 256, 3)
    client.delete_avatar(avatar.avatar_id)
    with pytest.raises(ClientError) as err:
        client.generate_all(wav, avatar=avatar.avatar_id)
    assert err.value.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
def test_inline_portrait_and_raw_frames(client, wav, portrait_png):
    header, frames, _ = client.generate_all(wav, image=portrait_png, size=256, encoding="raw")
    raw = decode_frame(frames[3].image, "raw", header.width, header.height)
    assert raw.shape == (256, 256, 3) and raw.mean() > 40


@pytest.mark.parametrize("kind, code, words", [
    ("no face", grpc.StatusCode.INVALID_ARGUMENT, "no face"),
    ("not an image", grpc.StatusCode.INVALID_ARGUMENT, "image"),
    ("empty image", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ("huge upload", grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
    ("corrupt audio", grpc.StatusCode.INVALID_ARGUMENT, "audio"),
    ("bad rate", grpc.StatusCode.INVALID_ARGUMENT, "sample_rate"),
    ("odd pcm", grpc.StatusCode.INVALID_ARGUMENT, "even number"),
    ("bad fps", grpc.StatusCode.INVALID_ARGUMENT, "fps"),
    ("bad option", grpc.StatusCode.INVALID_ARGUMENT, "expressiveness"),
    ("unknown avatar", grpc.StatusCode.NOT_FOUND, "CreateAvatar"),
])
def test_bad_requests_get_the_right_code_and_a_sentence(server, client, wav, portrait_png, kind, code, words):
    from talkinghead.v1 import talkinghead_pb2 as pb

    gray = cv2.imencode(".png", np.full((300, 300, 3), 120, np.uint8))[1].tobytes()
    calls = {
        "no face": lambda: client.create_avatar(gray),
        "not an image": lambda: client.create_avatar(b"hello, I am text"),
        "empty image": lambda: client.create_avatar(b""),
        "huge upload": lambda: client.create_avatar(b"\xff\xd8" + bytes(3 << 20)),
        "corrupt audio": lambda: client.generate_all(b"RIFF\x00\x00\x00\x00WAVEjunk", params_only=True),
        "bad rate": lambda: list(client.checked(client.stub.Generate(pb.GenerateRequest(
            audio=pb.Audio(pcm16=bytes(3200), sample_rate=100), output=pb.OutputOptions(params_only=True)),
            metadata=client.metadata))),
        "odd pcm": lambda: list(client.checked(client.stub.Generate(pb.GenerateRequest(
            audio=pb.Audio(pcm16=bytes(3201), sample_rate=16000), output=pb.OutputOptions(params_only=True)),
            metadata=client.metadata))),
        "bad fps": lambda: client.generate_all(wav, image=portrait_png, motion=MotionOptions(fps=24)),
        "bad option": lambda: list(client.checked(client.stub.Generate(pb.GenerateRequest(
            audio=pb.Audio(file=wav.read_bytes()), motion=pb.MotionOptions(expressiveness=9),
            output=pb.OutputOptions(params_only=True)), metadata=client.metadata))),
        "unknown avatar": lambda: client.generate_all(wav, avatar="av_doesnotexist"),
    }
    with pytest.raises(ClientError) as err:
        calls[kind]()
    assert err.value.code == code, err.value
    assert words.lower() in err.value.details.lower(), err.value.details
    assert client.health() == "SERVING"                      # the server lives on


@pytest.mark.slow
def test_per_client_limit_refuses_with_resource_exhausted(wav, portrait_png):
    with ServerThread(ServerConfig(port=0, limits=Limits(max_per_client=1))) as srv, \
            TalkingHeadClient(srv.target) as c:
        first = c.generate(wav, image=portrait_png, size=256)
        next(first)                                           # the header: the call holds its slot
        with pytest.raises(ClientError) as err:
            c.generate_all(wav, params_only=True)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit is 1" in err.value.details
        assert sum(1 for _ in first) > 10                     # the first call goes on
        assert c.generate_all(wav, params_only=True)[2].frames > 0   # and the slot is free again


@pytest.mark.slow
def test_cancelling_a_call_frees_its_work_at_once(wav, portrait_png):
    with ServerThread(ServerConfig(port=0)) as srv, TalkingHeadClient(srv.target) as c:
        long_audio = np.tile(load_audio(wav), 6)
        import soundfile as sf
        import io
        buf = io.BytesIO()
        sf.write(buf, long_audio, SAMPLE_RATE, format="WAV")
        responses = c.stub.Generate(__import__("talkinghead.client", fromlist=["x"]).pb.GenerateRequest(
            portrait=__import__("talkinghead.client", fromlist=["x"]).portrait_message(image=portrait_png, size=512),
            audio=__import__("talkinghead.client", fromlist=["x"]).pb.Audio(file=buf.getvalue())))
        got = 0
        for msg in responses:
            got += msg.WhichOneof("payload") == "frame"
            if got == 3:
                break
        responses.cancel()
        deadline = time.monotonic() + 2
        while srv.running.servicer.slots.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.running.servicer.slots.in_flight == 0
        busy = [t for t in threading.enumerate() if t.name.startswith("talkinghead")]
        time.sleep(0.3)
        # the pool's worker is back to waiting: no frame is rendered after the cancel
        assert srv.running.servicer.pool._work_queue.qsize() == 0, busy


@pytest.mark.slow
def test_a_generate_cancelled_during_its_analysis_leaves_no_task_behind(wav):
    """The analysis's progress reader (a queue.get task) was left waiting forever by each
    cancelled Generate: a leak per cancel, and at shutdown 0.5 s spent waiting on it."""
    async def tasks() -> int:
        return len(asyncio.all_tasks()) - 1          # not this one

    with ServerThread(ServerConfig(port=0, limits=Limits(max_transcript_chars=60_000))) as srv, \
            TalkingHeadClient(srv.target) as c:
        time.sleep(0.3)
        before = srv.call(tasks())
        responses = c.stub.Generate(pb.GenerateRequest(audio=pb.Audio(file=wav.read_bytes()),
                                                       transcript=transcript(50_000),
                                                       output=pb.OutputOptions(params_only=True)))
        next(responses)                                # the header: the analysis is under way
        time.sleep(0.5)
        responses.cancel()
        deadline = time.monotonic() + 5
        while srv.running.servicer.slots.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)
        assert srv.call(tasks()) == before


@pytest.mark.slow
def test_sigterm_style_stop_lets_in_flight_calls_finish(wav):
    srv = ServerThread(ServerConfig(port=0)).__enter__()
    target = srv.target
    c = TalkingHeadClient(target)
    results = {}

    def run():
        results["summary"] = c.generate_all(wav, params_only=True)[2]

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.15)
    srv.stop(grace=20)
    t.join(30)
    assert results["summary"].frames > 0
    with pytest.raises(ClientError) as err:
        TalkingHeadClient(target, timeout=3).generate_all(wav, params_only=True)
    assert err.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    c.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from tls_certs import make_chain

    folder = tmp_path_factory.mktemp("tls")
    c = make_chain()
    for name in ("ca", "server_cert", "server_key", "client_cert", "client_key"):
        (folder / f"{name}.pem").write_bytes(getattr(c, name))
    return folder


@pytest.mark.slow
def test_tls_serves_only_clients_that_trust_it(chain, wav):
    config = ServerConfig(port=0, tls_cert=chain / "server_cert.pem", tls_key=chain / "server_key.pem")
    with ServerThread(config) as srv:
        with TalkingHeadClient(srv.target, ca=chain / "ca.pem", timeout=60) as c:
            assert c.health() == "SERVING"
            assert c.generate_all(wav, params_only=True)[2].frames > 0
        with TalkingHeadClient(srv.target, timeout=5) as plain, pytest.raises(ClientError) as err:
            plain.health()
        assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_from_the_ca(chain):
    config = ServerConfig(port=0, tls_cert=chain / "server_cert.pem", tls_key=chain / "server_key.pem",
                          client_ca=chain / "ca.pem")
    with ServerThread(config) as srv:
        with TalkingHeadClient(srv.target, ca=chain / "ca.pem", cert=chain / "client_cert.pem",
                               key=chain / "client_key.pem", timeout=10) as c:
            assert c.health() == "SERVING"
        with TalkingHeadClient(srv.target, ca=chain / "ca.pem", timeout=5) as anonymous, \
                pytest.raises(ClientError) as err:
            anonymous.health()
        assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_tls_configuration_mistakes_are_explained(chain):
    from talkinghead.errors import OptionsError

    with pytest.raises(OptionsError, match="both"):
        ServerConfig(tls_cert=chain / "server_cert.pem").credentials()
    with pytest.raises(OptionsError, match="needs TLS"):
        ServerConfig(client_ca=chain / "ca.pem").credentials()
    with pytest.raises(OptionsError, match="cannot read"):
        ServerConfig(tls_cert=chain / "nope.pem", tls_key=chain / "server_key.pem").credentials()


@pytest.mark.slow
def test_concurrent_calls_get_their_own_results(wav):
    """Eight calls at once, each with its own seed: each gets exactly its own motion."""
    from concurrent.futures import ThreadPoolExecutor

    audio = load_audio(wav)
    expected = {s: motion_from_audio(audio, SAMPLE_RATE, MotionOptions(seed=s, lipsync="acoustic")).head
                for s in range(8)}

    def one(seed):
        with TalkingHeadClient(srv.target, timeout=120) as c:
            _, frames, _ = c.generate_all(wav, params_only=True,
                                          motion=MotionOptions(seed=seed, lipsync="acoustic"))
            return seed, np.array([[f.params.head.yaw, f.params.head.pitch, f.params.head.roll,
                                    f.params.head.x, f.params.head.y, f.params.head.z] for f in frames])

    with ServerThread(ServerConfig(port=0, limits=Limits(max_per_client=8))) as srv, ThreadPoolExecutor(8) as pool:
        for seed, head in pool.map(one, range(8)):
            np.testing.assert_allclose(head, expected[seed], atol=1e-4)


def test_deadline_ends_the_call_and_frees_its_slot(wav, portrait_png):
    with ServerThread(ServerConfig(port=0)) as srv, TalkingHeadClient(srv.target) as c:
        with pytest.raises(ClientError) as err:
            c.generate_all(wav, image=portrait_png, size=1024, timeout=0.5)
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 2
        while srv.running.servicer.slots.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.running.servicer.slots.in_flight == 0


@pytest.mark.slow
def test_message_size_and_global_limits(wav):
    limits = Limits(max_message_bytes=1 << 20, max_concurrent=1)
    with ServerThread(ServerConfig(port=0, limits=limits)) as srv, TalkingHeadClient(srv.target) as c:
        with pytest.raises(ClientError) as err:
            c.create_avatar(bytes(2 << 20))
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        first = c.generate(wav, params_only=True)
        next(first)
        with TalkingHeadClient(srv.target) as other, pytest.raises(ClientError) as err:
            other.generate_all(wav, params_only=True)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "busy" in err.value.details
        assert sum(1 for _ in first) > 0


@pytest.mark.slow
def test_generate_with_the_torch_renderer_gives_the_same_frames(wav, portrait_png):
    pytest.importorskip("torch")
    frames = {}
    for renderer in ("cpu", "torch"):
        with ServerThread(ServerConfig(port=0, renderer=renderer)) as srv, TalkingHeadClient(srv.target) as c:
            frames[renderer] = c.generate_all(wav, image=portrait_png, size=256, encoding="png",
                                              motion=MotionOptions(seed=4))[1]
    assert len(frames["cpu"]) == len(frames["torch"]) > 30
    for a, b in zip(frames["cpu"][::10], frames["torch"][::10]):
        diff = np.abs(decode_frame(a.image, "png").astype(int) - decode_frame(b.image, "png"))
        assert diff.mean() < 0.05 and np.mean(diff > 1) < 0.002
