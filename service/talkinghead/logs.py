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
        # sys.stderr looked up per logger, not bound once: redirections made later still apply
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
