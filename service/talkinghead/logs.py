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
    # Libraries that log through the standard library (gRPC's aio server, for one) come out the
    # same way, warnings and errors only: one event per line, a traceback inside its event.
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True),
                           structlog.processors.format_exc_info],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _StderrHandler)] + [handler]
    root.setLevel(max(logging.WARNING, getattr(logging, level.upper())))   # their chatter stays out


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (as the structlog loggers above do)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass
