"""Rendering: a rig + FaceParams -> RGB frames (the CPU renderer by default; a batched torch
renderer for GPUs, `device.pick_backend` chooses), and whole takes to MP4."""

from talkinghead.render.clip import render_frames, render_video
from talkinghead.render.cpu import deformed_landmarks, render

__all__ = ["deformed_landmarks", "render", "render_frames", "render_video"]
