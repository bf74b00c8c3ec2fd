"""`talkinghead` command line: a thin shell over the pipeline's entry points."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog
from tqdm import tqdm

from talkinghead import __version__, logs
from talkinghead.errors import OptionsError, TalkingHeadError
from talkinghead.motion.options import EMOTIONS, GAZE_MODES, LIPSYNC_MODES, MotionOptions

log = structlog.get_logger(__name__)


def _add_motion_args(p: argparse.ArgumentParser, fps_help: str | None = None) -> None:
    p.add_argument("--audio", required=True, type=Path, help="speech: WAV, FLAC, OGG, MP3 or M4A, any rate/channels")
    p.add_argument("--text", help="transcript of the speech (improves lip accuracy)")
    p.add_argument("--text-file", type=Path, help="read the transcript from this UTF-8 file")
    d = MotionOptions()
    p.add_argument("--fps", type=float, default=d.fps, help=fps_help or f"frames per second (default {d.fps:g})")
    p.add_argument("--seed", type=int, default=d.seed, help="same seed, same output (default 0)")
    p.add_argument("--expressiveness", type=float, default=d.expressiveness, help="0..2 brows, nods, articulation (default 1)")
    p.add_argument("--head-motion", type=float, default=d.head_motion, help="0..2 head movement (default 1; 0 = still)")
    p.add_argument("--blink-rate", type=float, default=d.blink_rate, help=f"blinks per minute (default {d.blink_rate:g})")
    p.add_argument("--emotion", choices=EMOTIONS, default=d.emotion)
    p.add_argument("--emotion-intensity", type=float, default=d.emotion_intensity, help="0..1 (default 0.5)")
    p.add_argument("--gaze", choices=GAZE_MODES, default=d.gaze, help="camera: hold eye contact; wander: look around")
    p.add_argument("--lipsync", choices=LIPSYNC_MODES, default=d.lipsync,
                   help="auto: the transcript aligned where given; else pocketsphinx's recognition for English, "
                        "and for other languages (--language) the phone model; phones: "
                        "pocketsphinx recognition; model: the phone model (any language; with --text, the text "
                        "aligned over it, English too); acoustic: formant rules")
    p.add_argument("--marks", type=Path,
                   help="the TTS engine's own timings for the speech: Amazon Polly speech marks (JSON Lines), or "
                        "JSON {\"marks\": [{kind, value, start, end}], \"viseme_set\": oculus|polly|azure, "
                        "\"phoneme_set\": ipa|arpabet|sampa}; its visemes (or phonemes) are the lips as they are")
    p.add_argument("--language", default=d.language,
                   help="language of the speech and --text, an ISO code espeak-ng knows (en, it, fi, de, ...): "
                        "English text is aligned by pocketsphinx, other languages on the phone model; auto: "
                        "no text assumptions (the transcript is not used)")


def _params_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="speech -> per-frame ARKit blendshapes, head pose, gaze, viseme",
                       description="Animate a face from speech: write ARKit blendshapes, head pose, gaze "
                                   "and visemes per frame as JSON or a Live Link Face CSV take.")
    _add_motion_args(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="take.json or take.csv (Live Link Face layout)")
    p.set_defaults(func=_cmd_params)


def _render_parser(sub: argparse._SubParsersAction) -> None:
    from talkinghead.face.rig import FRAMINGS, MAX_SIZE, MIN_SIZE

    p = sub.add_parser("render", help="portrait + speech -> lip-synced talking-face MP4",
                       description="Animate one portrait photo with speech: an H.264 + AAC MP4 of the "
                                   "face talking, blinking and moving its head.")
    p.add_argument("--portrait", required=True, type=Path, help="a photo with one face (JPEG, PNG, WebP, ...)")
    _add_motion_args(p, fps_help="frames per second: 25, 30 or 60 (default 30)")
    p.add_argument("-o", "--output", required=True, type=Path, help="the video, .mp4")
    p.add_argument("--size", type=int, default=512, help=f"output size in pixels, {MIN_SIZE}..{MAX_SIZE} (default 512)")
    p.add_argument("--framing", choices=FRAMINGS, default="face",
                   help="face: a square around the head; full: the whole photo (longer side = --size)")
    p.add_argument("--contact-sheet", type=Path, help="also write a PNG of sample frames (closed, open, rounded, blink, turned)")
    _add_video_args(p)
    p.set_defaults(func=_cmd_render)


def _add_video_args(p: argparse.ArgumentParser) -> None:
    from talkinghead.render.device import BACKENDS

    p.add_argument("--renderer", choices=BACKENDS, default="auto",
                   help="auto: torch on a CUDA GPU when torch is installed, else cpu (numpy + OpenCV); "
                        "torch: the batched torch renderer, on the CPU without a GPU (default auto)")
    p.add_argument("--watermark-id", metavar="ID",
                   help="operator id the invisible watermark carries: a number 0..4294967295, or any text "
                        "(its 32-bit hash is carried); default 0")
    p.add_argument("--no-watermark", action="store_true",
                   help="do NOT mark the frames as synthetic; the video's metadata and C2PA manifest say so")
    p.add_argument("--c2pa-cert", type=Path, metavar="PEM",
                   help="certificate chain (signing certificate first) for the video's C2PA content credentials; "
                        "default $TALKINGHEAD_C2PA_CERT, else a local test signer (valid, not trusted)")
    p.add_argument("--c2pa-key", type=Path, metavar="PEM", help="the signing certificate's private key (PEM)")


def _batch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="a manifest of lines -> takes, on every core or on a Ray cluster",
                       description="Animate every line of a manifest (CSV or JSON Lines: id, audio, and optionally "
                                   "text or text_file, language, portrait, size, framing and any motion option as a "
                                   "column) into <out>/<id>.json|csv|mp4, with <out>/batch_report.jsonl. Lines "
                                   "unchanged since their outputs were written are skipped. Exit status 1 when a "
                                   "line failed, 2 when the manifest cannot be used.")
    p.add_argument("manifest", type=Path, help="lines.csv or lines.jsonl (paths in it are relative to its folder)")
    p.add_argument("-o", "--output", required=True, type=Path, help="the takes' folder (created if needed)")
    p.add_argument("--formats", default="json", help="comma-separated: json, csv, mp4 (default json)")
    p.add_argument("--workers", type=int,
                   help="worker processes on this machine (default: every core); with --ray, lines at once "
                        "(default: the cluster's CPUs)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run as Ray tasks: on the cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT), or, with "
                        "no ADDRESS, on Ray started here for the run (needs pip install 'talkinghead[ray]')")
    p.add_argument("--check", action="store_true", help="only check the manifest and list its bad rows")
    _add_video_args(p)
    p.set_defaults(func=_cmd_batch)


def _verify_parser(sub: argparse._SubParsersAction) -> None:
    from talkinghead.provenance.verify import VIDEO_SECONDS

    p = sub.add_parser("verify", help="did a video or image come from talkinghead? watermark + C2PA check",
                       description="Look for talkinghead's invisible watermark (with its confidence and payload) "
                                   "and check the file's C2PA content credentials (content and validity).")
    p.add_argument("file", type=Path, help="a video (MP4, MOV, MKV, WebM, ...) or an image (JPEG, PNG, WebP, ...)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--seconds", type=float, default=VIDEO_SECONDS,
                   help=f"seconds of video read for the watermark (default {VIDEO_SECONDS:g})")
    p.add_argument("--trust-anchors", type=Path, metavar="PEM",
                   help="CA certificates whose C2PA signers count as trusted (default: none)")
    p.set_defaults(func=_cmd_verify)


def _livelink_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("livelink", help="speech -> live ARKit face stream to Unreal (Live Link Face UDP)",
                       description="Animate a face from speech and stream it, paced to real time, as the Live Link "
                                   "Face app's UDP packets: Unreal's Live Link (Apple ARKit source) drives any "
                                   "MetaHuman or ARKit rig with it.")
    _add_motion_args(p, fps_help="frames per second sent (default 30; the Live Link Face app sends 60)")
    p.add_argument("--target", default="127.0.0.1:11111",
                   help="HOST:PORT of the machine running Unreal (default 127.0.0.1:11111)")
    p.add_argument("--subject", default="talkinghead",
                   help="Live Link subject name, up to 256 UTF-8 bytes (default talkinghead)")
    p.add_argument("--device-id", help="device id in the packets (default: derived from the subject)")
    p.add_argument("--idle-after", type=float, default=0.0, metavar="SECONDS",
                   help="after the line, keep sending idle frames (blinks, gaze, small head motion) for this "
                        "long; 'inf' = until Ctrl-C (default 0)")
    p.add_argument("--loop", action="store_true", help="repeat the line (and its idle) until Ctrl-C")
    p.set_defaults(func=_cmd_livelink)


def _blender_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("blender-addon", help="build the Blender extension (.zip with its grpcio/protobuf wheels)",
                       description="Build the talkinghead Blender extension (Blender 4.2 to 5.0): the add-on from "
                                   "clients/blender, the gRPC stubs generated from protos/, and grpcio + protobuf "
                                   "wheels for Python 3.11 (pip download). Install the zip with Edit > "
                                   "Preferences > Get Extensions > Install from Disk.")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="talkinghead_blender.zip, or a folder for the unzipped extension (development)")
    p.add_argument("--platform", action="append", metavar="PLATFORM",
                   help="bundle wheels for this Blender platform: linux-x64, linux-arm64, windows-x64, macos-arm64, "
                        "macos-x64 (repeat it; default: all of them)")
    p.add_argument("--no-wheels", action="store_true",
                   help="leave the wheels out (a Blender that already has grpcio and protobuf, or development)")
    p.set_defaults(func=_cmd_blender_addon)


def _ui_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="a web page: portrait + speech in, the video and the take files out",
                       description="Serve a web page (Gradio) to animate a portrait: upload or pick a photo, upload "
                                   "or record speech, set the motion options, and get the video, its contact sheet, "
                                   "the verify verdict and the take files (JSON, Live Link Face CSV).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.set_defaults(func=_cmd_ui)


def _cmd_ui(args: argparse.Namespace) -> None:
    try:
        from talkinghead import ui
    except ModuleNotFoundError as exc:
        if exc.name != "gradio":
            raise
        raise OptionsError("the web page needs Gradio: pip install 'talkinghead[ui]'") from exc
    ui.serve(args.host, args.port)


def _motion_options(args: argparse.Namespace) -> MotionOptions:
    return MotionOptions(fps=args.fps, seed=args.seed, expressiveness=args.expressiveness,
                         head_motion=args.head_motion, blink_rate=args.blink_rate, emotion=args.emotion,
                         emotion_intensity=args.emotion_intensity, gaze=args.gaze, lipsync=args.lipsync,
                         language=args.language)




def _analysis(args: argparse.Namespace, options: MotionOptions, bar: tqdm, share: float):
    """Decode and analyse the audio, moving `bar` from 0 to `share` percent: (samples, rate, SpeechAnalysis)."""
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.motion import analyze_speech

    from talkinghead.motion.line import read_line

    line = read_line(args.text, args.text_file, options.language, args.marks)
    samples = load_audio(args.audio)

    def progress(stage: str, frac: float) -> None:
        bar.set_description(stage)
        bar.update(round(share * (0.1 + 0.9 * frac)) - bar.n)

    analysis = analyze_speech(samples, SAMPLE_RATE, line.text or None, options.lipsync, options.language, progress,
                              line if line.marks else None)
    progress("motion", 1.0)
    return samples, SAMPLE_RATE, analysis


def _track(args: argparse.Namespace, options: MotionOptions, bar: tqdm, share: float):
    """Decode the audio and make the motion track, moving `bar` from 0 to `share` percent."""
    from talkinghead.motion import animate

    samples, rate, analysis = _analysis(args, options, bar, 0.9 * share)
    track = animate(analysis, options)
    bar.update(round(share) - bar.n)
    return samples, rate, track


def _cmd_params(args: argparse.Namespace) -> None:
    from talkinghead.exports import write_track

    options = _motion_options(args)
    with tqdm(total=100, desc="decoding", unit="%", disable=None, file=sys.stderr) as bar:
        _, _, track = _track(args, options, bar, 95)
        bar.set_description("writing")
        write_track(track, args.output)
        bar.update(100 - bar.n)
    print(f"wrote {args.output}: {track.n_frames} frames at {track.fps:g} fps, {track.duration:.2f} s")


def _cmd_render(args: argparse.Namespace) -> None:
    from talkinghead.face import analyze_portrait, load_portrait
    from talkinghead.media import FPS_CHOICES
    from talkinghead.render import render_video
    from talkinghead.render.device import pick_backend

    if args.fps not in FPS_CHOICES:
        raise OptionsError(f"--fps must be one of {', '.join(map(str, FPS_CHOICES))} for video, not {args.fps:g}")
    options = _motion_options(args)
    if args.output.suffix.lower() not in (".mp4", ".m4v"):
        raise OptionsError(f"--output must end in .mp4, not {args.output.name!r}")
    pick_backend(args.renderer)      # torch asked for but not installed: say so now, not after the analysis
    watermark, signer = _provenance(args)
    # The portrait first: a photo with no face should fail before minutes of speech analysis.
    rig = analyze_portrait(load_portrait(args.portrait), args.size, args.framing)
    with tqdm(total=100, desc="decoding", unit="%", disable=None, file=sys.stderr) as bar:
        samples, rate, track = _track(args, options, bar, 20)
        bar.set_description("rendering")

        def progress(n: int) -> None:
            bar.update(20 + round(80 * n / max(track.n_frames, 1)) - bar.n)

        info = render_video(rig, track, samples, rate, args.output, progress=progress, backend=args.renderer,
                            watermark=watermark, signing=signer)
    if args.contact_sheet:
        from talkinghead.render.sheet import write_take_sheet

        write_take_sheet(rig, track, args.contact_sheet)
    print(f"wrote {args.output}: {info.n_frames} frames at {track.fps:g} fps, {info.width}x{info.height}, "
          f"{track.duration:.2f} s")


def _provenance(args: argparse.Namespace):
    """(watermark payload or None, the resolved C2PA Signer) from the render options, checked now:
    a bad id, certificate or key should fail before minutes of analysis."""
    from talkinghead.provenance import DEFAULT_PAYLOAD, Payload, operator_id
    from talkinghead.provenance.c2pa_sign import SigningOptions, resolve_signer

    if args.no_watermark and args.watermark_id is not None:
        raise OptionsError("--watermark-id has no effect with --no-watermark; drop one of them")
    watermark = None if args.no_watermark else Payload(version=DEFAULT_PAYLOAD.version,
                                                       operator=operator_id(args.watermark_id))
    return watermark, resolve_signer(SigningOptions(cert=args.c2pa_cert, key=args.c2pa_key))


def _cmd_batch(args: argparse.Namespace) -> int:
    from talkinghead.batch import BatchOptions, RenderSettings, parse_formats, read_manifest, run_batch
    from talkinghead.render.device import pick_backend

    formats = parse_formats(args.formats)
    if args.check:
        manifest = read_manifest(args.manifest, formats)
        for problem in manifest.problems:
            print(problem.error)
        print(f"{args.manifest}: {len(manifest.lines)} lines ready, {len(manifest.problems)} bad")
        return 1 if manifest.problems else 0
    render = RenderSettings()
    if "mp4" in formats:
        pick_backend(args.renderer)
        watermark, signer = _provenance(args)   # the workers sign with the driver's signer: its PEM travels
        render = RenderSettings(watermark=watermark, signer=signer, renderer=args.renderer)
    options = BatchOptions(formats=formats, workers=args.workers, ray=args.ray is not None,
                           ray_address=args.ray or None, render=render)
    bar = tqdm(total=0, unit="line", desc="batch", disable=None, file=sys.stderr, dynamic_ncols=True)
    failed = 0

    def progress(event: str, data: dict) -> None:
        nonlocal failed
        if event == "start":
            bar.reset(total=data["total"])
            bar.set_description(f"batch ({data['backend']})")
            return
        if data["status"] == "failed":
            failed += 1
            bar.write(f"failed: {data['id']}: {data['error']}", file=sys.stderr)
            bar.set_postfix(failed=failed)
        bar.update(1)

    try:
        with bar:
            summary = run_batch(args.manifest, args.output, options, progress)
    except KeyboardInterrupt:
        print(f"talkinghead: interrupted; the {bar.n} lines finished are kept in {args.output}: run the same "
              "command again to continue from there", file=sys.stderr)
        return 130
    print(summary.text())
    return 1 if summary.failed else 0


def _cmd_verify(args: argparse.Namespace) -> None:
    import json

    from talkinghead.provenance.verify import format_report, verify_file

    anchors = None
    if args.trust_anchors:
        try:
            anchors = args.trust_anchors.read_bytes()
        except OSError as exc:
            raise OptionsError(f"cannot read --trust-anchors {args.trust_anchors}: {exc.strerror or exc}") from exc
    report = verify_file(args.file, seconds=args.seconds, trust_anchors=anchors)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))


def _cmd_livelink(args: argparse.Namespace) -> None:
    from talkinghead.exports.livelink_udp import LiveLinkSender
    from talkinghead.motion import line_and_idle
    from talkinghead.track import MotionTrack

    options = _motion_options(args)
    if not args.idle_after >= 0:
        raise OptionsError(f"--idle-after must be 0 or more seconds (or inf), got {args.idle_after}")
    # The sender first: a bad target, subject or fps should fail before the speech analysis.
    with LiveLinkSender(args.target, args.subject, device_id=args.device_id, fps=options.fps) as sender:
        with tqdm(total=100, desc="decoding", unit="%", disable=None, file=sys.stderr) as bar:
            _, _, analysis = _analysis(args, options, bar, 100)
        n = MotionTrack.frame_count(analysis.duration, options.fps)
        print(f"streaming {n} frames ({analysis.duration:.2f} s) at {sender.fps:g} fps to "
              f"{sender.host}:{sender.port}, subject {sender.subject!r}"
              + (" (Ctrl-C stops)" if args.loop or args.idle_after > 0 else ""), file=sys.stderr)
        try:
            for part in line_and_idle(analysis, options, args.idle_after, args.loop):
                sender.send_track(part)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a looping or endless idle stream ends: report and exit normally
        t = sender.totals
    print(f"sent {t.frames_sent} frames ({t.seconds:.2f} s) to {sender.host}:{sender.port} as subject "
          f"{sender.subject!r}" + (f"; {t.refused} refused, nothing listening there" if t.refused else "")
          + (f"; {t.frames_skipped} skipped to keep real time" if t.frames_skipped else ""))


def _cmd_blender_addon(args: argparse.Namespace) -> None:
    import importlib.util

    if args.output.suffix and args.output.suffix.lower() != ".zip":
        raise OptionsError(f"-o must be a .zip (to install) or a folder without a suffix (for development), "
                           f"not {args.output.name!r}")

    # The add-on and its build live in the source checkout (clients/blender), not in the package.
    script = Path(__file__).resolve().parents[2] / "clients" / "blender" / "build_extension.py"
    if not script.is_file():
        raise TalkingHeadError(f"the Blender add-on's sources are not at {script.parent}: build it from a talkinghead "
                               "source checkout (pip install -e .)")
    spec = importlib.util.spec_from_file_location("talkinghead_blender_build", script)
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build                     # dataclasses look their module up there
    spec.loader.exec_module(build)
    info = build.build(args.output, args.platform, wheels=not args.no_wheels)
    print(f"wrote {info.output}: the extension for {', '.join(info.platforms) if info.wheels else 'any platform'}"
          f" with {len(info.wheels)} wheels ({', '.join(info.wheels) or 'none'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="talkinghead", description="One portrait + speech -> a talking face.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", help="log JSON lines (one event per line) on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _params_parser(sub)
    _render_parser(sub)
    _livelink_parser(sub)
    _blender_parser(sub)
    _verify_parser(sub)
    _ui_parser(sub)
    _batch_parser(sub)
    from talkinghead import cli_service  # grpc is imported only when these commands run

    cli_service.add_parsers(sub, _add_motion_args, _motion_options)
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_json)
    try:
        status = args.func(args)
    except TalkingHeadError as exc:
        print(f"talkinghead: error: {exc}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
