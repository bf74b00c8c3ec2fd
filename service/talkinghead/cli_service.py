"""`talkinghead serve` and `talkinghead client ...`: the gRPC service and a command-line client.

Kept apart from cli.py so the offline commands never import grpc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import structlog
from tqdm import tqdm

from talkinghead.errors import OptionsError, TalkingHeadError

log = structlog.get_logger(__name__)


def add_parsers(sub: argparse._SubParsersAction, add_motion_args, motion_options) -> None:
    """Register `serve` and `client` on the main parser's subcommands."""
    _serve_parser(sub)
    _client_parser(sub, add_motion_args, motion_options)


# -- serve ------------------------------------------------------------------------------------

# Limits fields set one to one by a `serve` flag: (field, flag, type, help).
_LIMIT_FLAGS = (
    ("max_image_pixels", "--max-image-pixels", int, "largest portrait, width x height, read from its header"),
    ("max_audio_seconds", "--max-audio-seconds", float, "longest Generate clip, seconds"),
    ("max_audio_samples", "--max-audio-samples", int, "a clip's samples x channels, read from its header"),
    ("min_audio_seconds", "--min-audio-seconds", float, "shortest clip, seconds"),
    ("max_transcript_chars", "--max-transcript-chars", int, "longest Generate transcript, characters"),
    ("max_text_chars", "--max-text-chars", int, "longest other text field (emotion, gaze, ...), characters"),
    ("max_chunk_seconds", "--max-chunk-seconds", float, "longest Stream audio chunk, seconds"),
    ("max_buffered_seconds", "--max-buffered-seconds", float,
     "Stream audio ahead of real time, and frames waiting to be sent, seconds"),
    ("max_buffered_frames", "--max-buffered-frames", int, "Stream frames waiting to be sent"),
    ("max_messages_per_second", "--max-messages-per-second", float, "Stream messages read per second (throttled)"),
    ("first_message_seconds", "--first-message-seconds", float, "a Stream's StreamConfig must come within, seconds"),
    ("stream_idle_seconds", "--stream-idle-seconds", float, "a Stream with no message for this long ends, seconds"),
    ("max_concurrent_avatars", "--max-concurrent-avatars", int, "portraits analysed at once"),
    ("analysis_processes", "--analysis-processes", int, "worker processes for face and speech analysis"),
)

def _serve_parser(sub) -> None:
    from talkinghead.server.limits import Limits

    d = Limits()
    p = sub.add_parser("serve", help="run the gRPC service (frames and parameters, streamed)",
                       description="Serve talkinghead over gRPC: avatars, Generate (a clip in, frames out) and "
                                   "Stream (live audio in, frames out). Health checking and reflection are on.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)")
    p.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 = any free port)")
    p.add_argument("--token", default=os.environ.get("TALKINGHEAD_TOKEN"),
                   help="require 'authorization: Bearer TOKEN' on every call (default: $TALKINGHEAD_TOKEN)")
    p.add_argument("--tls-cert", type=Path, help="server certificate (PEM) for TLS")
    p.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    p.add_argument("--client-ca", type=Path, help="with TLS: require client certificates signed by this CA (mTLS)")
    p.add_argument("--workers", type=int, default=4, help="threads for analysis, rendering and encoding (default 4)")
    p.add_argument("--image-processes", type=int, default=d.image_processes, metavar="N",
                   help="processes making Stream images with the CPU renderer (default -1: one per core the "
                        "server may use, at most 8; 0: on the server's threads, which share one core)")
    p.add_argument("--renderer", choices=("auto", "cpu", "torch"), default="auto",
                   help="Generate's renderer: auto = batched torch on a CUDA GPU when there is one, else cpu")
    p.add_argument("--max-concurrent", type=int, default=d.max_concurrent, help=f"calls at once (default {d.max_concurrent})")
    p.add_argument("--max-per-client", type=int, default=d.max_per_client,
                   help=f"calls at once per client address (default {d.max_per_client})")
    p.add_argument("--max-message-mb", type=float, default=d.max_message_bytes / 2**20,
                   help=f"largest request message (default {d.max_message_bytes / 2**20:g} MB)")
    for field, flag, kind, what in _LIMIT_FLAGS:
        default = getattr(d, field)
        p.add_argument(flag, type=kind, default=default, dest=field, help=f"{what} (default {default:g})")
    p.add_argument("--grace", type=float, default=30.0, help="seconds in-flight calls get after SIGTERM (default 30)")
    p.add_argument("--watermark-id", metavar="ID",
                   help="operator id carried by the invisible watermark in every image served (number or text)")
    p.add_argument("--livelink-allow", action="append", metavar="HOST",
                   help="a host Streams may ask the server to send Live Link UDP to (repeatable; '*' = any; "
                        "default: this machine only)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args) -> None:
    from dataclasses import replace

    from talkinghead.provenance import operator_id
    from talkinghead.server.app import ServerConfig, serve
    from talkinghead.server.limits import Limits

    if args.workers < 1 or args.max_concurrent < 1 or args.max_per_client < 1:
        raise OptionsError("--workers, --max-concurrent and --max-per-client must be at least 1")
    if args.image_processes < -1:
        raise OptionsError(f"--image-processes must be -1 (one per core), 0 (threads) or a count, "
                           f"not {args.image_processes}")
    bad = [flag for field, flag, _, _ in _LIMIT_FLAGS if getattr(args, field) <= 0 and field != "min_audio_seconds"]
    if bad or args.min_audio_seconds < 0:
        raise OptionsError(f"{', '.join(bad) or '--min-audio-seconds'} must be positive")
    limits = replace(Limits(), max_concurrent=args.max_concurrent, max_per_client=args.max_per_client,
                     max_message_bytes=int(args.max_message_mb * 2**20),
                     livelink_allow=tuple(args.livelink_allow or Limits().livelink_allow),
                     image_processes=args.image_processes,
                     **{field: getattr(args, field) for field, *_ in _LIMIT_FLAGS})
    config = ServerConfig(host=args.host, port=args.port, token=args.token or None, tls_cert=args.tls_cert,
                          tls_key=args.tls_key, client_ca=args.client_ca, workers=args.workers,
                          grace_seconds=args.grace, limits=limits, renderer=args.renderer,
                          watermark_operator=operator_id(args.watermark_id))
    config.credentials()          # TLS mistakes now, before binding
    print(f"talkinghead serving on {args.host}:{args.port} (Ctrl-C or SIGTERM to stop)", file=sys.stderr)
    asyncio.run(serve(config))
    # Drained and stopped: exit now. The interpreter's own teardown (joining library threads,
    # unloading the pipeline's native modules) can take seconds past --grace.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# -- client -----------------------------------------------------------------------------------

def _client_parser(sub, add_motion_args, motion_options) -> None:
    p = sub.add_parser("client", help="talk to a running talkinghead server",
                       description="A command-line client of the gRPC service.")
    csub = p.add_subparsers(dest="client_command", required=True)

    def connection(q):
        q.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT (default 127.0.0.1:50051)")
        q.add_argument("--token", default=os.environ.get("TALKINGHEAD_TOKEN"), help="bearer token (default: $TALKINGHEAD_TOKEN)")
        q.add_argument("--ca", type=Path, help="TLS: the server's CA certificate (PEM)")
        q.add_argument("--cert", type=Path, help="mTLS: this client's certificate (PEM)")
        q.add_argument("--key", type=Path, help="mTLS: its private key (PEM)")

    def output(q):
        q.add_argument("--portrait", type=Path, help="a photo to animate (sent inline)")
        q.add_argument("--avatar", help="an avatar id from `client avatar` instead of --portrait")
        q.add_argument("--size", type=int, default=512)
        q.add_argument("--framing", choices=("face", "full"), default="face")
        q.add_argument("--params-only", action="store_true", help="parameters only, no images")
        q.add_argument("-o", "--output", type=Path, required=True,
                       help="out.mp4 (frames + the audio), take.json / take.csv (parameters), or a folder "
                            "(frame_00000.jpg ... + take.json)")

    g = csub.add_parser("generate", help="send a whole clip, receive its frames")
    connection(g)
    add_motion_args(g)
    output(g)
    g.set_defaults(func=lambda a: _cmd_generate(a, motion_options(a)))

    s = csub.add_parser("stream", help="send a clip in chunks as a TTS engine would, receive frames live")
    connection(s)
    add_motion_args(s)
    output(s)
    s.add_argument("--chunk-ms", type=float, default=100, help="audio per chunk, milliseconds (default 100)")
    s.add_argument("--no-realtime", action="store_true", help="send and receive as fast as possible")
    s.set_defaults(func=lambda a: _cmd_stream(a, motion_options(a)))

    a = csub.add_parser("avatar", help="upload a portrait once; prints its avatar id")
    connection(a)
    a.add_argument("--portrait", type=Path, required=True)
    a.add_argument("--size", type=int, default=512)
    a.add_argument("--framing", choices=("face", "full"), default="face")
    a.add_argument("--ttl", type=int, default=0, help="seconds the server keeps it (default: the server's)")
    a.set_defaults(func=_cmd_avatar)


def _client(args):
    from talkinghead.client import TalkingHeadClient

    return TalkingHeadClient(args.server, token=args.token, ca=args.ca, cert=args.cert, key=args.key)


def _cmd_avatar(args) -> None:
    with _client(args) as c:
        avatar = c.create_avatar(args.portrait, args.size, args.framing, args.ttl)
    print(avatar.avatar_id)
    print(f"{avatar.width}x{avatar.height}, kept {avatar.ttl_seconds} s", file=sys.stderr)


def _check_output(args) -> str:
    suffix = args.output.suffix.lower()
    if suffix in (".json", ".csv"):
        return "params"
    if suffix in (".mp4", ".m4v"):
        if args.params_only:
            raise OptionsError("an .mp4 needs images: drop --params-only or write .json/.csv")
        return "mp4"
    if suffix:
        raise OptionsError(f"-o must be .mp4, .json, .csv or a folder, not {args.output.name!r}")
    return "folder"


def _cmd_generate(args, options) -> None:
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio

    kind = _check_output(args)
    audio_bytes = args.audio.read_bytes() if args.audio.exists() else None
    if audio_bytes is None:
        raise TalkingHeadError(f"cannot read {args.audio}: no such file")
    from talkinghead.motion.line import read_line

    line = read_line(args.text, args.text_file, options.language, args.marks)
    frames, header = [], None
    with _client(args) as c, tqdm(total=100, desc="server", unit="%", disable=None, file=sys.stderr) as bar:
        for msg in c.generate(audio_bytes, avatar=args.avatar, image=args.portrait, transcript=line.text,
                              motion=options, params_only=args.params_only or kind == "params",
                              size=args.size, framing=args.framing, marks=line if line.marks else None):
            which = msg.WhichOneof("payload")
            if which == "header":
                header = msg.header
            elif which == "progress":
                bar.set_description(msg.progress.stage)
                bar.update(round(100 * msg.progress.fraction) - bar.n)
            elif which == "frame":
                frames.append(msg.frame)
                bar.set_description("frames")
            elif which == "summary":
                bar.update(100 - bar.n)
    _write(args, kind, header, frames, load_audio(audio_bytes), SAMPLE_RATE)


def _cmd_stream(args, options) -> None:
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.client import audio_chunk, control, line_text, stream_config
    from talkinghead.motion.line import read_line
    from talkinghead.v1 import talkinghead_pb2 as pb

    kind = _check_output(args)
    if not 10 <= args.chunk_ms <= 2000:
        raise OptionsError(f"--chunk-ms must be 10..2000, not {args.chunk_ms:g}")
    samples = load_audio(args.audio)
    n = int(args.chunk_ms / 1000 * SAMPLE_RATE)
    pieces = [samples[i:i + n] for i in range(0, len(samples), n)]
    realtime = not args.no_realtime
    sent: list[float] = []
    told = read_line(args.text, args.text_file, options.language, args.marks)
    line = line_text(told) if (told.text.strip() or told.marks) else None

    def requests():
        yield stream_config(sample_rate=SAMPLE_RATE, avatar=args.avatar, image=args.portrait, motion=options,
                            params_only=args.params_only or kind == "params", realtime=realtime,
                            size=args.size, framing=args.framing)
        for k, p in enumerate(pieces):
            sent.append(time.monotonic())
            yield audio_chunk(p, line if k == 0 else None)
            if realtime:
                time.sleep(len(p) / SAMPLE_RATE)
        yield control("flush")

    frames, header = [], None
    with _client(args) as c:
        for msg in c.checked(c.stream(requests())):
            which = msg.WhichOneof("payload")
            if which == "header":
                header = msg.header
            elif which == "frame" and not msg.frame.idle:
                frames.append(msg.frame)
            elif which == "event" and msg.event.kind == pb.StreamEvent.KIND_TEXT_DROPPED:
                log.warning("stream.text_dropped", frame=msg.event.frame_index, reason=msg.event.detail)
            elif which == "event" and msg.event.kind == pb.StreamEvent.KIND_LINE_FINISHED:
                break
    _write(args, kind, header, frames, samples, SAMPLE_RATE)


def _write(args, kind, header, frames, samples, rate) -> None:
    from talkinghead.client import encoding_name, frames_track
    from talkinghead.exports import write_track
    from talkinghead.media import decode_frame, write_mp4

    if header is None or not frames:
        raise TalkingHeadError("the server sent no frames")
    enc = encoding_name(header.encoding)
    if kind == "params":
        write_track(frames_track(header, frames), args.output)
    elif kind == "mp4":
        images = (decode_frame(f.image, enc, header.width, header.height) for f in frames)
        write_mp4(args.output, images, header.fps, samples[: int(len(frames) / header.fps * rate)], rate)
    else:
        args.output.mkdir(parents=True, exist_ok=True)
        for f in frames:
            if f.image:
                (args.output / f"frame_{f.index:05d}.{'jpg' if enc == 'jpeg' else enc}").write_bytes(f.image)
        write_track(frames_track(header, frames), args.output / "take.json")
    print(f"wrote {args.output}: {len(frames)} frames at {header.fps:g} fps")
