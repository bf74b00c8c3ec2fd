"""`talkinghead ui`: a web page (Gradio) over the same pipeline the CLI runs.

Drop in a portrait and a line of speech, set the motion options, and get the video, its
contact sheet, the `verify` verdict and the take files (JSON, Live Link Face CSV). The page only
maps its widgets onto `MotionOptions` and the stage entry points; a bad input shows the same
sentence the CLI prints, in the page's status line (which also gets the CLI's "wrote ..." line).
Needs the `ui` extra (`pip install 'talkinghead[ui]'`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

# Before gradio is imported: the page makes no calls to the internet (no telemetry, no update check).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from talkinghead.errors import AudioError, OptionsError, PortraitError, TalkingHeadError  # noqa: E402
from talkinghead.motion.options import EMOTIONS, GAZE_MODES, MotionOptions  # noqa: E402

log = structlog.get_logger(__name__)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # in a source checkout; absent from a wheel
MAX_UPLOAD = "256mb"          # 15 minutes of 48 kHz stereo 16-bit WAV is 173 MB (the audio limit)
PREVIEW_SIDE = 480            # pixels: the portrait's preview, longer side
KEEP_SECONDS = 3600           # a take's files stay downloadable this long
PROGRESS_SECONDS = 0.2        # at most this often a progress message to the page (a frame takes ~10 ms)
# auto: the transcript aligned, else phones recognised with the phone model where they miss
LIPSYNC_CHOICES = [("auto", "auto"), ("phones (English)", "phones"), ("phone model", "model")]
# The usual ones; any other ISO code espeak-ng speaks can be typed in (allow_custom_value)
LANGUAGE_CHOICES = [("English", "en"), ("Deutsch", "de"), ("Español", "es"), ("Français", "fr"),
                    ("Italiano", "it"), ("Nederlands", "nl"), ("Polski", "pl"), ("Português", "pt"),
                    ("Русский", "ru"), ("Suomi", "fi"), ("Svenska", "sv"), ("Türkçe", "tr"),
                    ("日本語", "ja"), ("中文", "cmn"), ("no text assumptions", "auto")]
CSS = "#verdict textarea { font-family: ui-monospace, monospace; font-size: 0.8em; }"
Progress = Callable[[float, str], None]   # (fraction 0..1, what is happening)


@dataclass(frozen=True)
class Take:
    """What one submission made: files in one folder, and the verify report as text."""

    video: Path          # H.264 + AAC MP4, watermarked and C2PA-signed
    sheet: Path          # PNG of the take's telling frames
    json: Path           # talkinghead JSON track
    csv: Path            # Live Link Face CSV take
    verdict: str         # `talkinghead verify`'s report on the video
    seconds: float       # the clip's duration
    n_frames: int
    fps: float
    width: int           # the video's pixels
    height: int

    @property
    def summary(self) -> str:
        """The line `talkinghead render` prints when it is done."""
        return (f"wrote {self.video.name}: {self.n_frames} frames at {self.fps:g} fps, {self.width}x{self.height}, "
                f"{self.seconds:.2f} s")


def make_take(portrait: Path, audio: Path, transcript: str | None, options: MotionOptions, size: int,
              framing: str, out_dir: Path, progress: Progress = lambda f, s: None) -> Take:
    """The `render` command's stages, then the take files and the verify report, into `out_dir`.
    Raises TalkingHeadError (the CLI's sentences) for bad input."""
    from talkinghead.audio.decode import SAMPLE_RATE, load_audio
    from talkinghead.exports import write_track
    from talkinghead.face import analyze_portrait, load_portrait
    from talkinghead.motion import motion_from_audio
    from talkinghead.provenance.verify import format_report, verify_file
    from talkinghead.render import render_video
    from talkinghead.render.sheet import write_take_sheet

    progress(0.0, "reading the portrait")
    rig = analyze_portrait(load_portrait(portrait), size, framing)   # no face: fail before the speech
    progress(0.05, "decoding the speech")
    samples = load_audio(audio)
    track = motion_from_audio(samples, SAMPLE_RATE, options, transcript,
                              lambda stage, f: progress(0.05 + 0.2 * f, f"speech: {stage}"))
    stem = Path(audio).stem or "take"
    video = out_dir / f"{stem}.mp4"
    info = render_video(rig, track, samples, SAMPLE_RATE, video, backend="auto",
                        progress=lambda n: progress(0.25 + 0.65 * n / max(track.n_frames, 1),
                                                    f"rendering frame {n}/{track.n_frames}"))
    progress(0.9, "contact sheet and take files")
    sheet = write_take_sheet(rig, track, out_dir / f"{stem}_sheet.png")
    json_path, csv_path = (write_track(track, out_dir / f"{stem}{suffix}") for suffix in (".json", ".csv"))
    progress(0.95, "verifying the video")
    report = verify_file(video)
    return Take(video, sheet, json_path, csv_path, format_report(report).replace(str(video), video.name),
                track.duration, info.n_frames, track.fps, info.width, info.height)


def user_message(exc: TalkingHeadError, uploads: dict[Path, str]) -> str:
    """The CLI's sentence, with the server's temporary upload paths shown as the names the user
    uploaded (what the CLI prints when given those files in its working folder)."""
    text = str(exc)
    for path, name in uploads.items():
        text = text.replace(str(path), name)
    return text


def _throttled(progress: Progress, seconds: float = PROGRESS_SECONDS) -> Progress:
    """`progress`, passed on at most every `seconds`, and whenever the stage's words (its text
    without the counts) change: one message per rendered frame would flood the page's event
    stream on a long clip."""
    last = {"t": -float("inf"), "stage": None}

    def report(fraction: float, stage: str) -> None:
        now = time.monotonic()
        kind = re.split(r"\d", stage, maxsplit=1)[0]
        if now - last["t"] >= seconds or kind != last["stage"]:
            last.update(t=now, stage=kind)
            progress(fraction, stage)

    return report


class Page:
    """The page's handler and its working folder (a fresh folder per submission, swept after KEEP_SECONDS)."""

    def __init__(self, work_dir: Path):
        self.work_dir = work_dir

    def submit(self, portrait, audio, transcript, language, lipsync, emotion, emotion_intensity, expressiveness,
               head_motion, blink_rate, gaze, seed, fps, size, framing, progress=gr.Progress()):
        """Gradio's callback: widget values in, (video, sheet, verdict, files, status) out. A bad input
        clears the results and puts the CLI's sentence in the status line."""
        try:
            if seed is None:
                raise OptionsError("seed must be a whole number; type one (0 is the default)")
            options = MotionOptions(fps=float(fps), seed=int(seed), expressiveness=expressiveness,
                                    head_motion=head_motion, blink_rate=blink_rate, emotion=emotion,
                                    emotion_intensity=emotion_intensity, gaze=gaze, lipsync=lipsync,
                                    language=(language or "en").strip())
            take = self._take(portrait, audio, (transcript or "").strip() or None, options, int(size), framing,
                              _throttled(lambda f, stage: progress(f, desc=stage)))
        except TalkingHeadError as exc:
            log.info("ui.bad_input", error=type(exc).__name__, message=str(exc))
            uploads = {Path(p): Path(p).name for p in (portrait, audio) if p}
            return None, None, "", None, f"Error: {user_message(exc, uploads)}"
        return (str(take.video), str(take.sheet), take.verdict,
                [str(p) for p in (take.video, take.json, take.csv, take.sheet)], take.summary)

    def _take(self, portrait: str | None, audio: str | None, transcript: str | None, options: MotionOptions,
              size: int, framing: str, progress: Progress) -> Take:
        if not portrait:
            raise PortraitError("Upload a portrait (a photo with one face), or pick the example.")
        if not audio:
            raise AudioError("Upload or record the speech first.")
        self._sweep()
        out_dir = Path(tempfile.mkdtemp(prefix="take-", dir=self.work_dir))
        t0 = time.monotonic()
        try:
            take = make_take(Path(portrait), Path(audio), transcript, options, size, framing, out_dir, progress)
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        log.info("ui.take", seconds=round(take.seconds, 3), frames=take.n_frames, size=size,
                 wall_seconds=round(time.monotonic() - t0, 2))
        return take

    def preview(self, portrait):
        """The portrait as the pipeline reads it (EXIF orientation applied, transparency on white),
        at most PREVIEW_SIDE across, and the status line: a file that is not a usable image gets the
        CLI's sentence at once."""
        if not portrait:
            return None, ""
        from talkinghead.face import load_portrait

        path = Path(portrait)
        try:
            image = load_portrait(path)
        except TalkingHeadError as exc:
            return None, f"Error: {user_message(exc, {path: path.name})}"
        scale = PREVIEW_SIDE / max(image.shape[:2])
        if scale < 1:
            import cv2

            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return image, ""

    def _sweep(self) -> None:
        cutoff = time.time() - KEEP_SECONDS
        for d in self.work_dir.glob("take-*"):
            if d.stat().st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True)


def build(page: Page):
    """The Blocks layout: inputs on the left, the take on the right."""
    from talkinghead.face.rig import FRAMINGS, MAX_SIZE, MIN_SIZE
    from talkinghead.media import FPS_CHOICES

    d = MotionOptions()
    with gr.Blocks(title="talkinghead", analytics_enabled=False, delete_cache=(KEEP_SECONDS, KEEP_SECONDS)) as demo:
        gr.Markdown("# talkinghead\nOne portrait photo + speech → a talking face: the video, its contact "
                    "sheet, the provenance check, and the take as ARKit blendshapes (JSON, Live Link Face CSV).")
        with gr.Row():
            with gr.Column():
                with gr.Row(equal_height=True):
                    # A plain file, not gr.Image: that one decodes and re-encodes uploads with PIL before
                    # the handler sees them, so a non-image would get PIL's error, not the CLI's sentence.
                    portrait = gr.File(label="Portrait: a photo of one face",
                                       type="filepath", height=200, elem_id="portrait")
                    preview = gr.Image(label="Portrait as read", interactive=False, height=200, elem_id="preview")
                audio = gr.Audio(label="Speech: WAV, FLAC, OGG, MP3 or M4A (or record it)", type="filepath",
                                 sources=["upload", "microphone"], format=None, elem_id="audio")
                with gr.Row():
                    transcript = gr.Textbox(label="Transcript (optional: more accurate lips)", lines=2,
                                            scale=2, elem_id="transcript")
                    language = gr.Dropdown(LANGUAGE_CHOICES, value=d.language, label="Language", scale=1,
                                           allow_custom_value=True, elem_id="language",
                                           info="of the speech and transcript: any ISO code espeak-ng speaks")
                    lipsync = gr.Dropdown(LIPSYNC_CHOICES, value=d.lipsync, label="Lips from", scale=1,
                                          elem_id="lipsync", info="auto: the transcript, else the audio")
                if (EXAMPLES / "astronaut.jpg").is_file():
                    transcript_file = EXAMPLES / "hello.txt"
                    gr.Examples([[str(EXAMPLES / "astronaut.jpg"), str(EXAMPLES / "hello.flac"),
                                  transcript_file.read_text(encoding="utf-8").strip()]],
                                inputs=[portrait, audio, transcript], label="Example",
                                example_labels=["astronaut.jpg says hello.flac (8.6 s)"])
                with gr.Accordion("Motion", open=True):
                    with gr.Row():
                        emotion = gr.Dropdown(list(EMOTIONS), value=d.emotion, label="Emotion", elem_id="emotion")
                        emotion_intensity = gr.Slider(0, 1, value=d.emotion_intensity, step=0.05,
                                                      label="Emotion intensity", elem_id="emotion_intensity")
                    with gr.Row():
                        expressiveness = gr.Slider(0, 2, value=d.expressiveness, step=0.05,
                                                   label="Expressiveness (brows, nods, articulation)")
                        head_motion = gr.Slider(0, 2, value=d.head_motion, step=0.05, label="Head motion (0 = still)")
                    with gr.Row():
                        blink_rate = gr.Slider(0, 60, value=d.blink_rate, step=1, label="Blinks per minute")
                        gaze = gr.Radio(list(GAZE_MODES), value=d.gaze, label="Gaze",
                                        info="camera: eye contact; wander: looks around")
                        seed = gr.Number(value=d.seed, precision=0, label="Seed (same seed, same take)")
                with gr.Accordion("Video", open=True):
                    with gr.Row():
                        fps = gr.Dropdown(list(FPS_CHOICES), value=int(d.fps), label="Frames per second",
                                          elem_id="fps")
                        size = gr.Slider(MIN_SIZE, MAX_SIZE, value=512, step=64, label="Size (pixels)", elem_id="size")
                        framing = gr.Radio(list(FRAMINGS), value="face", label="Framing",
                                           info="face: a square around the head; full: the whole photo")
                go = gr.Button("Animate", variant="primary", elem_id="animate")
            with gr.Column():
                status = gr.Textbox(label="Status", interactive=False, lines=1, elem_id="status",
                                    placeholder="the render's summary, or what to fix")
                video = gr.Video(label="Talking face", elem_id="video", interactive=False)
                sheet = gr.Image(label="Contact sheet: closed, open, rounded, p/b/m, blink, turned",
                                 type="filepath", interactive=False, elem_id="sheet")
                verdict = gr.Textbox(label="talkinghead verify", lines=7, interactive=False, elem_id="verdict")
                files = gr.File(label="Take files (MP4, JSON, Live Link Face CSV, contact sheet)",
                                file_count="multiple", interactive=False, elem_id="files")
        portrait.change(page.preview, portrait, [preview, status])
        go.click(page.submit, [portrait, audio, transcript, language, lipsync, emotion, emotion_intensity, expressiveness,
                               head_motion, blink_rate, gaze, seed, fps, size, framing],
                 [video, sheet, verdict, files, status], concurrency_limit=1)
    return demo


def serve(host: str = "127.0.0.1", port: int = 7860, work_dir: Path | None = None) -> None:
    """Run the page until Ctrl-C. One take renders at a time; the others wait in Gradio's queue."""
    if not 0 < port < 65536:
        raise OptionsError(f"--port must be between 1 and 65535, not {port}")
    with tempfile.TemporaryDirectory(prefix="talkinghead-ui-", dir=work_dir) as tmp:
        demo = build(Page(Path(tmp)))
        try:
            demo.queue(default_concurrency_limit=1).launch(
                server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False, pwa=False,
                mcp_server=False, max_file_size=MAX_UPLOAD, allowed_paths=[tmp, str(EXAMPLES)], footer_links=[],
                show_error=True, css=CSS, quiet=True, prevent_thread_lock=True)
        except OSError as exc:   # Gradio says "Cannot find empty port" for a port in use
            raise OptionsError(f"cannot listen on {host}:{port} (in use, or not an address of this machine); "
                               "choose another --port or --host") from exc
        log.info("ui.start", url=f"http://{host}:{port}")
        print(f"talkinghead ui on http://{host}:{port} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)   # SIGTERM stops it like Ctrl-C
        try:
            demo.block_thread()   # returns on Ctrl-C, after closing the server
        finally:
            demo.close()
