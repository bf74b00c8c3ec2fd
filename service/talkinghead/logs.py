"""Structured logging: one event per line on stderr (key=value for people, JSON for machines)."""

from __future__ import annotations

import logging
import sys

import structlog


settings: tuple[str, bool] = ("warning", False)   # the last configure()'s, for worker processes


def configure(level: str = "warning", json: bool = False) -> None:
    global settings
    settings = (level, json)
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # sys.stderr looked up per logger, not bound once: redirections made later still apply.
        # WriteLogger writes an event and its newline as ONE write (PrintLogger's print makes two):
        # unbuffered (PYTHONUNBUFFERED), the server's and its worker processes' events on the same
        # stderr interleaved between the two, two events on one line (tests/test_logs.py).
        logger_factory=lambda *args: structlog.WriteLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
