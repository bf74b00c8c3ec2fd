"""One exception type per kind of user mistake. Each message says what to do about it.

The CLI prints `str(error)` and exits with status 2; the gRPC server maps each type to a
status code in one place.
"""

from __future__ import annotations


class TalkingHeadError(Exception):
    """Base class: a problem with the user's input or request, not a bug."""


class AudioError(TalkingHeadError):
    """The audio cannot be used: unreadable, empty, corrupt, silent or unsupported."""


class AudioTooLongError(AudioError):
    """The audio is longer than the configured limit (maps to RESOURCE_EXHAUSTED)."""


class OptionsError(TalkingHeadError):
    """An option is out of range or unknown (maps to INVALID_ARGUMENT)."""


class ExportError(TalkingHeadError):
    """The output cannot be written (unknown format, unwritable path)."""


class PortraitError(TalkingHeadError):
    """The portrait cannot be used: not an image, no face, a face too small (maps to INVALID_ARGUMENT)."""


class ModelError(TalkingHeadError):
    """A model file is missing, cannot be fetched, or fails its SHA-256 check (maps to FAILED_PRECONDITION)."""


class MediaError(TalkingHeadError):
    """A video or image cannot be written or encoded (unwritable path, unsupported size or fps)."""


class NotFoundError(TalkingHeadError):
    """An id the server does not know, e.g. an avatar that expired or was deleted (maps to NOT_FOUND)."""


class LimitError(TalkingHeadError):
    """A limit of the server was reached: concurrency, size or rate (maps to RESOURCE_EXHAUSTED)."""


class ManifestError(OptionsError):
    """A batch manifest that cannot be used: unreadable, no `id`/`audio` columns, unknown columns (maps to
    INVALID_ARGUMENT)."""
