"""Rendering: a rig + FaceParams -> RGB frames (the CPU renderer by default)."""

from talkinghead.render.cpu import deformed_landmarks, render

__all__ = ["deformed_landmarks", "render"]
