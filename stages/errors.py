"""Errors raised by the stage layer."""

from __future__ import annotations


class StageError(Exception):
    """Base class for stage problems a client can fix."""


class BadStagePath(StageError):
    """A stage reference or path is malformed or unsafe."""


class StageNotFound(StageError):
    """Raised when @name is not defined."""


class StorageError(StageError):
    """The storage backend failed (missing file, I/O problem)."""
