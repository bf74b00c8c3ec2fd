"""The one place where the pipeline's errors become gRPC status codes."""

from __future__ import annotations

import grpc

from talkinghead.errors import (AudioError, AudioTooLongError, ExportError, LimitError, MediaError, ModelError,
                                NotFoundError, OptionsError, PortraitError, TalkingHeadError)

__all__ = ["LimitError", "NotFoundError", "code_for"]


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
