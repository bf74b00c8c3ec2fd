"""`talkinghead` command line: a thin shell over the pipeline's entry points."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog
from tqdm import tqdm

from talkinghead import __version__, logs
from talkinghead.errors import TalkingHeadError
from talkinghead.motion.options import EMOTIONS, GAZE_MODES, LIPSYNC_MODES, MotionOptions

log = structlog.get_logger(__name__)


def _params_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("params", help="speech -> per-frame ARKit blendshapes, head pose, gaze, viseme",
                       description="Animate a face from speech: write ARKit blendshapes, head pose, gaze "
                                   "and visemes per frame as JSON or a Live Link Face CSV take.")
    p.add_argument("--audio", required=True, type=Path, help="speech: WAV, FLAC, OGG, MP3 or M4A, any rate/channels")
    p.add_argument("--text", help="transcript of the speech (improves lip accuracy)")
    p.add_argument("--text-file", type=Path, help="read the transcript from this UTF-8 file")
    p.add_argument("-o", "--output", required=True, type=Path, help="take.json or take.csv (Live Link Face layout)")
    d = MotionOptions()
    p.add_argument("--fps", type=float, default=d.fps, help=f"frames per second (default {d.fps:g})")
    p.add_argument("--seed", type=int, default=d.seed, help="same seed, same output (default 0)")
    p.add_argument("--expressiveness", type=float, default=d.expressiveness, help="0..2 brows, nods, articulation (default 1)")
    p.add_argument("--head-motion", type=float, default=d.head_motion, help="0..2 head movement (default 1; 0 = still)")
    p.add_argument("--blink-rate", type=float, default=d.blink_rate, help=f"blinks per minute (default {d.blink_rate:g})")
    p.add_argument("--emotion", choices=EMOTIONS, default=d.emotion)
    p.add_argument("--emotion-intensity", type=float, default=d.emotion_intensity, help="0..1 (default 0.5)")
    p.add_argument("--gaze", choices=GAZE_MODES, default=d.gaze, help="camera: hold eye contact; wander: look around")
    p.add_argument("--lipsync", choices=LIPSYNC_MODES, default=d.lipsync,
                   help="auto: phones (English) with an acoustic fallback; acoustic: any language")
    p.set_defaults(func=_cmd_params)


def _cmd_params(args: argparse.Namespace) -> None:
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.exports import write_track
    from talkinghead.motion import motion_from_audio

    options = MotionOptions(fps=args.fps, seed=args.seed, expressiveness=args.expressiveness,
                            head_motion=args.head_motion, blink_rate=args.blink_rate, emotion=args.emotion,
                            emotion_intensity=args.emotion_intensity, gaze=args.gaze, lipsync=args.lipsync)
    transcript = args.text
    if args.text_file:
        try:
            transcript = args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TalkingHeadError(f"cannot read the transcript {args.text_file}: {exc}; pass a UTF-8 text file") from exc
    with tqdm(total=100, desc="decoding", unit="%", disable=None, file=sys.stderr) as bar:
        samples = load_audio(args.audio)

        def progress(stage: str, frac: float) -> None:
            bar.set_description(stage)
            bar.update(round(10 + 85 * frac) - bar.n)

        track = motion_from_audio(samples, SAMPLE_RATE, options, transcript, progress)
        bar.set_description("writing")
        write_track(track, args.output)
        bar.update(100 - bar.n)
    print(f"wrote {args.output}: {track.n_frames} frames at {track.fps:g} fps, {track.duration:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="talkinghead", description="One portrait + speech -> a talking face.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", help="log JSON lines (one event per line) on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _params_parser(sub)
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
