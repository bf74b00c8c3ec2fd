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
                   help="auto: phones (English) with an acoustic fallback; acoustic: any language")


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
    p.set_defaults(func=_cmd_render)


def _motion_options(args: argparse.Namespace) -> MotionOptions:
    return MotionOptions(fps=args.fps, seed=args.seed, expressiveness=args.expressiveness,
                         head_motion=args.head_motion, blink_rate=args.blink_rate, emotion=args.emotion,
                         emotion_intensity=args.emotion_intensity, gaze=args.gaze, lipsync=args.lipsync)


def _transcript(args: argparse.Namespace) -> str | None:
    if args.text_file:
        try:
            return args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TalkingHeadError(f"cannot read the transcript {args.text_file}: {exc}; pass a UTF-8 text file") from exc
    return args.text


def _track(args: argparse.Namespace, options: MotionOptions, bar: tqdm, share: float):
    """Decode the audio and make the motion track, moving `bar` from 0 to `share` percent."""
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.motion import motion_from_audio

    transcript = _transcript(args)
    samples = load_audio(args.audio)

    def progress(stage: str, frac: float) -> None:
        bar.set_description(stage)
        bar.update(round(share * (0.1 + 0.9 * frac)) - bar.n)

    return samples, SAMPLE_RATE, motion_from_audio(samples, SAMPLE_RATE, options, transcript, progress)


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

    if args.fps not in FPS_CHOICES:
        raise OptionsError(f"--fps must be one of {', '.join(map(str, FPS_CHOICES))} for video, not {args.fps:g}")
    options = _motion_options(args)
    if args.output.suffix.lower() not in (".mp4", ".m4v"):
        raise OptionsError(f"--output must end in .mp4, not {args.output.name!r}")
    # The portrait first: a photo with no face should fail before minutes of speech analysis.
    rig = analyze_portrait(load_portrait(args.portrait), args.size, args.framing)
    with tqdm(total=100, desc="decoding", unit="%", disable=None, file=sys.stderr) as bar:
        samples, rate, track = _track(args, options, bar, 20)
        bar.set_description("rendering")

        def progress(n: int) -> None:
            bar.update(20 + round(80 * n / max(track.n_frames, 1)) - bar.n)

        info = render_video(rig, track, samples, rate, args.output, progress=progress)
    if args.contact_sheet:
        from talkinghead.render.sheet import write_take_sheet

        write_take_sheet(rig, track, args.contact_sheet)
    print(f"wrote {args.output}: {info.n_frames} frames at {track.fps:g} fps, {info.width}x{info.height}, "
          f"{track.duration:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="talkinghead", description="One portrait + speech -> a talking face.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", help="log JSON lines (one event per line) on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _params_parser(sub)
    _render_parser(sub)
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_json)
    try:
        args.func(args)
    except TalkingHeadError as exc:
        print(f"talkinghead: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
