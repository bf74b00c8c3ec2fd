"""Provenance, end to end: rendered clips carry the invisible watermark and signed C2PA content
credentials, the mark survives re-encoding, scaling, cropping and JPEG, unmarked videos and
photos never trigger it, and `talkinghead verify` reports both.

Everything is real: the astronaut portrait through the real renderer, x264 through PyAV, a
certificate chain made here and signed into the MP4 by c2pa-python.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from skimage import data

from talkinghead.audio.decode import SAMPLE_RATE, load_audio
from talkinghead.errors import MediaError, OptionsError
from talkinghead.face import analyze_portrait
from talkinghead.media import write_mp4
from talkinghead.motion import motion_from_audio
from talkinghead.motion.options import MotionOptions
from talkinghead.provenance import DEFAULT_PAYLOAD, Payload, Watermarker, detect, mark, operator_id
from talkinghead.provenance import payload as pl
from talkinghead.provenance.c2pa_sign import (
    SigningOptions,
    local_signer_path,
    make_chain,
    read_manifest,
    resolve_signer,
)
from talkinghead.provenance.verify import verify_file
from talkinghead.render import render, render_frames, render_video
from talkinghead.render.clip import WATERMARK_TAG

EXAMPLES = Path(__file__).parent.parent / "examples"
SIZE, FPS, SECONDS = 512, 25, 2.0
PAYLOAD = Payload(synthetic=True, version="0.1.0", operator=operator_id("studio-7"))


def encode(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """frames -> H.264 at `crf` (x264's default preset, as ffmpeg re-encodes) -> RGB frames."""
    h, w = (s - s % 2 for s in frames[0].shape[:2])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        write_mp4(path, (f[:h, :w] for f in frames), FPS, None, 0, crf=crf, preset="medium")
        return decode(path)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def half(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in frames]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def take():
    """(rig, 2 s motion track, its audio) of the astronaut saying the example line's start."""
    audio = load_audio(EXAMPLES / "hello.flac")[: int(SECONDS * SAMPLE_RATE)]
    track = motion_from_audio(audio, SAMPLE_RATE, MotionOptions(fps=FPS, seed=1))
    return analyze_portrait(data.astronaut(), SIZE, "face"), track, audio


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A CA and a C2PA signing certificate under it, as files: (cert, key, root)."""
    folder = tmp_path_factory.mktemp("pki")
    c = make_chain("talkinghead tests", days=2)
    for name, pem in (("cert.pem", c.chain), ("key.pem", c.key), ("root.pem", c.root)):
        (folder / name).write_bytes(pem)
    return folder / "cert.pem", folder / "key.pem", folder / "root.pem"


@pytest.fixture(scope="module")
def videos(take, chain, tmp_path_factory):
    """The take rendered twice with a real signer: marked with PAYLOAD, and explicitly unmarked."""
    rig, track, audio = take
    folder = tmp_path_factory.mktemp("videos")
    signing = SigningOptions(cert=chain[0], key=chain[1])
    marked, unmarked = folder / "marked.mp4", folder / "unmarked.mp4"
    render_video(rig, track, audio, SAMPLE_RATE, marked, watermark=PAYLOAD, signing=signing)
    render_video(rig, track, audio, SAMPLE_RATE, unmarked, watermark=None, signing=signing)
    return marked, unmarked


def test_payload_round_trips_through_code_and_crc():
    bits = pl.pack(PAYLOAD)
    assert bits.shape == (pl.PAYLOAD_BITS,) and pl.unpack(bits) == PAYLOAD
    code = pl.encode(bits)
    assert code.shape == (pl.CODE_BITS,)
    rng = np.random.default_rng(0)
    noisy = (1.0 - 2.0 * code) * 2.0 + rng.normal(0, 1, code.shape)  # soft values, ~2 % of signs wrong
    assert pl.unpack(pl.decode(noisy)) == PAYLOAD
    corrupt = bits.copy()
    corrupt[5] ^= 1
    assert pl.unpack(corrupt) is None  # the CRC catches it
    assert operator_id(None) == 0 and operator_id(7) == 7 and operator_id("4294967295") == 2**32 - 1
    assert operator_id("studio-7") == operator_id("studio-7") != operator_id("studio-8")
    for bad in (-1, 2**32, "", True):
        with pytest.raises(OptionsError):
            operator_id(bad)
    assert pl.unpack(pl.pack(Payload(version="3.21.7"))).version == "3.15.7"  # 4 bits per part, saturating


def test_mark_is_invisible_and_costs_under_2_ms_per_512_frame(take):
    rig, track, _ = take
    frames = list(render_frames(rig, track, watermark=None))[:20]
    wm = Watermarker(PAYLOAD)
    marked = [wm.mark(f) for f in frames]
    assert min(psnr(m, f) for m, f in zip(marked, frames)) >= 40.0
    grey = np.full((SIZE, SIZE, 3), 128, np.uint8)
    assert psnr(mark(grey), grey) >= 40.0 and np.all(grey == 128)  # the input is left alone
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one core
    try:
        t = time.perf_counter()
        for k in range(100):
            wm.mark(frames[k % len(frames)])
        per_frame = (time.perf_counter() - t) / 100
    finally:
        cv2.setNumThreads(threads)
    assert per_frame <= 2e-3, f"{1000 * per_frame:.2f} ms per frame"
    # render() itself stays unmarked (its rest frame is the photo); render_frames marks by default.
    first = next(iter(render_frames(rig, track)))
    assert np.array_equal(next(iter(render_frames(rig, track, watermark=None))), render(rig, track.frame(0)))
    assert not np.array_equal(first, render(rig, track.frame(0))) and psnr(first, render(rig, track.frame(0))) >= 40


def test_rendered_video_carries_mark_payload_and_valid_signed_manifest(videos, chain):
    report = verify_file(videos[0], trust_anchors=chain[2].read_bytes())
    wm, c2pa = report.watermark, report.c2pa
    assert wm.detected and wm.confidence > 1 - 1e-6 and wm.payload == PAYLOAD, wm
    assert abs(wm.scale - 1) < 0.005 and wm.frames == SECONDS * FPS
    assert c2pa.present and c2pa.valid and c2pa.trusted and c2pa.generated_by_ai, c2pa
    assert c2pa.claim_generator.startswith("talkinghead")
    assert [a["action"] for a in c2pa.actions] == ["c2pa.created"]
    assert c2pa.watermark["embedded"] is True and c2pa.watermark["payload"]["operator_id"] == PAYLOAD.operator
    assert report.synthetic
    untrusted = read_manifest(videos[0])  # no anchors: intact and valid, but not trusted
    assert untrusted.valid and not untrusted.trusted
    with av.open(str(videos[0])) as c:
        assert json.loads(c.metadata[WATERMARK_TAG])["embedded"] is True


@pytest.mark.parametrize("transform", [
    "h264 crf 28",
    "downscale 50 %",
    "crop 10 %",
    "one frame, jpeg 70",
])
def test_mark_survives_platform_transforms(videos, transform):
    frames = decode(videos[0])
    if transform == "h264 crf 28":
        frames = encode(frames, 28)
    elif transform == "downscale 50 %":
        frames = encode(half(frames), 23)
    elif transform == "crop 10 %":  # 10 % off each dimension, unevenly: 7 % top, 3 % bottom, 2 % left, 8 % right
        h, w = frames[0].shape[:2]
        frames = encode([f[round(0.07 * h):round(0.97 * h), round(0.02 * w):round(0.92 * w)] for f in frames], 23)
    else:
        frames = [jpeg(frames[17], 70)]
    found = detect(frames)
    assert found.detected and found.p_value < 1e-12, found
    assert found.payload == PAYLOAD, found


def _unmarked_inputs(unmarked_video: Path):
    """100 unmarked clips and photos: an unmarked render and its transforms, skimage's photos
    cropped and scaled, noise, gradients, and moving synthetic shapes."""
    frames = decode(unmarked_video)
    clips = [frames, encode(frames, 28), encode(half(frames), 23), encode([f[20:-30, 40:-10] for f in frames], 23)]
    items = [c[:25] for c in clips] + [jpeg(frames[k], q) for k in (0, 20, 40) for q in (90, 70, 40)]
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry(),
              data.retina()[::3, ::3], data.colorwheel(), data.hubble_deep_field()[::2, ::2],
              np.dstack([data.camera()] * 3), np.dstack([data.moon()] * 3), np.dstack([data.text()] * 3)]
    rng = np.random.default_rng(5)
    for p in photos:
        for _ in range(6):
            h, w = p.shape[:2]
            top, left = rng.integers(0, h // 4 + 1), rng.integers(0, w // 4 + 1)
            crop = np.ascontiguousarray(p[top:, left:])
            f = rng.uniform(0.4, 1.3)
            items.append(cv2.resize(crop, (max(64, round(crop.shape[1] * f)), max(64, round(crop.shape[0] * f)))))
    for k in range(8):  # noise: white, and smooth like the mark's own band
        noise = rng.normal(128, 40, (256 + 32 * k, 320, 3))
        items.append(np.clip(cv2.GaussianBlur(noise, (0, 0), k) if k else noise, 0, 255).astype(np.uint8))
    yy, xx = np.mgrid[0:300, 0:400]
    for k in range(8):  # gradients and stripes, periods near the mark's tile
        stripes = 128 + 100 * np.sin(2 * np.pi * (xx * np.cos(k) + yy * np.sin(k)) / (150 / (k + 1)))
        items.append(np.dstack([stripes, yy * 255 / 300, xx * 255 / 400]).astype(np.uint8))
    for k in range(5):  # synthetic clips: a coloured disc moving over a textured background
        bg = cv2.resize(data.coffee(), (320, 240))
        clip = []
        for t in range(12):
            f = bg.copy()
            cv2.circle(f, (40 + 20 * t, 60 + 10 * k), 30 + 4 * k, (40 * k, 200, 255 - 40 * k), -1)
            clip.append(f)
        items.append(clip)
    assert len(items) == 100
    return items


@pytest.mark.slow
def test_unmarked_clips_and_photos_are_never_detected(videos):
    found = [detect(item) for item in _unmarked_inputs(videos[1])]
    assert not any(f.detected for f in found), [f for f in found if f.detected]
    z = np.array([f.z for f in found])
    assert z.max() < found[0].z_threshold - 1.0, z.max()  # far below the 1e-6 threshold, not just under it
    assert all(f.payload is None for f in found)


def test_turning_the_mark_off_is_explicit_and_recorded(videos):
    report = verify_file(videos[1])
    assert not report.watermark.detected and report.watermark.payload is None
    assert report.c2pa.valid and report.c2pa.watermark["embedded"] is False
    with av.open(str(videos[1])) as c:
        tag = json.loads(c.metadata[WATERMARK_TAG])
    assert tag["embedded"] is False and "--no-watermark" in tag["reason"]
    assert report.synthetic  # the manifest still says it was generated


def test_a_tampered_video_fails_validation(videos, tmp_path):
    blob = bytearray(videos[0].read_bytes())
    at = blob.index(b"mdat") + 4000
    blob[at] ^= 0x40
    bad = tmp_path / "tampered.mp4"
    bad.write_bytes(bytes(blob))
    report = read_manifest(bad)
    assert report.present and not report.valid and report.state == "Invalid"
    assert any("mismatch" in f["code"] for f in report.failures), report.failures
    assert not read_manifest(EXAMPLES / "astronaut.jpg").present  # no manifest at all


def test_signer_mistakes_are_explained(chain, tmp_path, monkeypatch):
    cert, key, _ = chain
    other = make_chain("another", days=1)
    (tmp_path / "other.pem").write_bytes(other.key)
    with pytest.raises(OptionsError, match="does not belong"):
        resolve_signer(SigningOptions(cert=cert, key=tmp_path / "other.pem"))
    with pytest.raises(OptionsError, match="both"):
        resolve_signer(SigningOptions(cert=cert))
    with pytest.raises(OptionsError, match="Cannot read"):
        resolve_signer(SigningOptions(cert=tmp_path / "missing.pem", key=key))
    with pytest.raises(OptionsError, match="not a PEM private key"):
        resolve_signer(SigningOptions(cert=cert, key=cert))
    # A certificate without the C2PA profile (here: a bare self-signed one) fails before rendering.
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")])
    now = datetime.datetime.now(datetime.UTC)
    bare = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(private, hashes.SHA256()))
    (tmp_path / "bare.pem").write_bytes(bare.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "bare.key").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(OptionsError, match="C2PA signing failed"):
        resolve_signer(SigningOptions(cert=tmp_path / "bare.pem", key=tmp_path / "bare.key"))
    # No signer configured: a per-install test signer, made once into the cache and reused.
    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TALKINGHEAD_C2PA_CERT", raising=False)
    monkeypatch.delenv("TALKINGHEAD_C2PA_KEY", raising=False)
    first = resolve_signer(SigningOptions())
    assert first.test and local_signer_path().is_file() and local_signer_path().stat().st_mode & 0o077 == 0
    assert resolve_signer(SigningOptions()).chain == first.chain
    monkeypatch.setenv("TALKINGHEAD_C2PA_CERT", str(cert))
    monkeypatch.setenv("TALKINGHEAD_C2PA_KEY", str(key))
    assert not resolve_signer(SigningOptions()).test


def test_detect_rejects_what_is_not_a_frame():
    with pytest.raises(MediaError, match="RGB uint8"):
        detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(MediaError, match="no frames"):
        detect([])
    with pytest.raises(MediaError, match="RGB uint8"):
        mark(np.zeros((64, 64, 3), np.float32))


def talkinghead(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkinghead", *args], capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.mark.slow
def test_verify_command_reports_both_as_text_and_json(videos, chain, tmp_path):
    r = talkinghead("verify", str(videos[0]), "--json", "--trust-anchors", str(chain[2]))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["watermark"]["detected"] is True and out["watermark"]["confidence"] > 0.999999
    assert out["watermark"]["payload"] == {"synthetic": True, "generator": "talkinghead", "version": "0.1.0",
                                           "operator_id": operator_id("studio-7")}
    assert out["c2pa"]["present"] and out["c2pa"]["valid"] and out["c2pa"]["trusted"]
    frame = tmp_path / "frame.jpg"
    cv2.imwrite(str(frame), cv2.cvtColor(decode(videos[0])[10], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
    r = talkinghead("verify", str(frame))
    assert r.returncode == 0, r.stderr
    assert "watermark: DETECTED" in r.stdout and "c2pa:      no manifest" in r.stdout, r.stdout
    r = talkinghead("verify", str(EXAMPLES / "astronaut.jpg"))
    assert "watermark: not found" in r.stdout and "no sign of talkinghead" in r.stdout, r.stdout
    r = talkinghead("verify", str(tmp_path / "missing.mp4"))
    assert r.returncode == 2 and "not a file" in r.stderr


@pytest.mark.slow
def test_render_command_maps_the_provenance_options(tmp_path, chain):
    base = ["render", "--portrait", str(EXAMPLES / "astronaut.jpg"), "--audio", str(EXAMPLES / "hello.flac"),
            "-o", str(tmp_path / "o.mp4")]
    r = talkinghead(*base, "--no-watermark", "--watermark-id", "7")
    assert r.returncode == 2 and "--watermark-id" in r.stderr, r.stderr
    r = talkinghead(*base, "--c2pa-cert", str(chain[0]))
    assert r.returncode == 2 and "--c2pa-key" in r.stderr, r.stderr
    assert not (tmp_path / "o.mp4").exists()
    assert DEFAULT_PAYLOAD.synthetic and DEFAULT_PAYLOAD.operator == 0
    from argparse import Namespace

    from talkinghead.cli import _provenance

    from talkinghead.provenance.c2pa_sign import resolve_signer

    watermark, signer = _provenance(Namespace(no_watermark=False, watermark_id="studio-7", c2pa_cert=chain[0],
                                              c2pa_key=chain[1]))
    assert watermark == Payload(version=DEFAULT_PAYLOAD.version, operator=operator_id("studio-7"))
    assert signer == resolve_signer(SigningOptions(cert=chain[0], key=chain[1])) and not signer.test
    assert _provenance(Namespace(no_watermark=True, watermark_id=None, c2pa_cert=chain[0], c2pa_key=chain[1]))[0] is None
