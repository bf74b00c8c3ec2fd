"""Rendering: a rig + FaceParams -> RGB frames (the CPU renderer by default; a batched torch
renderer for GPUs, `device.pick_backend` chooses), and whole takes to MP4. Every output makes
its frames through `FrameMaker` (backend, batching and watermark decided there)."""

from talkinghead.render.clip import render_frames, render_video
from talkinghead.render.cpu import Renderer, deformed_landmarks, render
from talkinghead.render.frames import FrameMaker, ImageOptions

__all__ = ["FrameMaker", "ImageOptions", "Renderer", "deformed_landmarks", "render", "render_frames", "render_video"]
