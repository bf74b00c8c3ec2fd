"""Logs: one event per line, libraries' standard-library logging included."""

from __future__ import annotations

import json
import logging

import pytest

from talkinghead import logs


@pytest.fixture
def restore_logs():
    before = logs.settings
    yield
    logs.configure(*before)


def test_a_library_error_with_a_traceback_is_one_json_event(capsys, restore_logs):
    logs.configure("info", json=True)
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logging.getLogger("grpc._cython.cygrpc").exception("Exception not handled by _handle_exceptions")
    logging.getLogger("some.library").info("chatter")          # libraries: warnings and errors only
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    event = json.loads(lines[0])
    assert event["event"] == "Exception not handled by _handle_exceptions"
    assert event["logger"] == "grpc._cython.cygrpc" and event["level"] == "error"
    assert "ZeroDivisionError: division by zero" in event["exception"]


def test_configuring_again_does_not_repeat_library_events(capsys, restore_logs):
    logs.configure("warning", json=True)
    logs.configure("warning", json=True)
    logging.getLogger("some.library").warning("once %s", 1)
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["once 1"]
