"""The one place where the pipeline's errors become gRPC status codes."""

from __future__ import annotations

import grpc

from talkinghead.errors import (AudioError, AudioTooLongError, ExportError, LimitError, MediaError, ModelError,
                                NotFoundError, OptionsError, PortraitError, TalkingHeadError)


class Cancelled(Exception):
    """The call ended (its client went away or its deadline passed); its work stops."""


__all__ = ["Cancelled", "LimitError", "NotFoundError", "abort", "code_for", "details"]


# First match wins: subclasses before their bases.
_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (AudioTooLongError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (LimitError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AudioError, grpc.StatusCode.INVALID_ARGUMENT),
    (PortraitError, grpc.StatusCode.INVALID_ARGUMENT),
    (OptionsError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelError, grpc.StatusCode.FAILED_PRECONDITION),
    (MediaError, grpc.StatusCode.INTERNAL),
    (ExportError, grpc.StatusCode.INTERNAL),
    (TalkingHeadError, grpc.StatusCode.INVALID_ARGUMENT),
)


def code_for(exc: Exception) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


MAX_DETAILS = 600   # characters of an error's sentence sent back (gRPC metadata is limited to 8 KB)


def details(exc: Exception) -> str:
    """The error's sentence for the client; an echoed input of any length is cut out of the
    middle, so the start (what is wrong) and the end (what to do) both arrive."""
    text = str(exc)
    if len(text) <= MAX_DETAILS:
        return text
    half = MAX_DETAILS // 2
    return f"{text[:half]} [... {len(text) - 2 * half} characters ...] {text[-half:]}"


async def abort(context, exc: Exception):
    """End the call with `exc`'s status code and sentence."""
    await context.abort(code_for(exc), details(exc))
