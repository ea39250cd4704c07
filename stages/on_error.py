"""ON_ERROR for loading: the policy, its parsing, and the per-file error count that applies it.

Every reader reports bad rows to one :class:`ErrorSink`; it alone decides to skip, abort or go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stages.errors import StageError

_ON_ERROR_RE = re.compile(r"^(CONTINUE|ABORT|SKIP_FILE)(?:_(\d+))?$")
_ON_ERROR_HELP = "ON_ERROR must be one of CONTINUE | SKIP_FILE | SKIP_FILE_<num> | ABORT | ABORT_<num>"


class ReadAbort(StageError):
    """ON_ERROR stopped the statement; the message names the file and the line."""


@dataclass(frozen=True)
class OnError:
    """ON_ERROR policy.

    ``ABORT`` aborts when a file's error count reaches ``limit`` (ABORT = ABORT_1); ``CONTINUE``
    skips bad rows; ``SKIP_FILE`` loads nothing from a file with at least ``limit`` errors (a file
    with fewer errors loads its good rows, like CONTINUE).
    """

    mode: str
    limit: int = 1

    def __str__(self) -> str:
        if self.mode == "CONTINUE":
            return "CONTINUE"
        return self.mode if self.limit == 1 else f"{self.mode}_{self.limit}"


ABORT = OnError("ABORT")
CONTINUE = OnError("CONTINUE", 0)
SKIP_FILE = OnError("SKIP_FILE")


def parse_on_error(text: str) -> OnError:
    """``CONTINUE | SKIP_FILE | SKIP_FILE_<n> | ABORT | ABORT_<n>`` (case-insensitive, n >= 1)."""
    match = _ON_ERROR_RE.match(text.strip().upper())
    if not match or (match[1] == "CONTINUE" and match[2]):
        raise StageError(_ON_ERROR_HELP)
    if match[1] == "CONTINUE":
        return CONTINUE
    limit = int(match[2]) if match[2] else 1
    if limit < 1:
        raise StageError(_ON_ERROR_HELP)
    return OnError(match[1], limit)


@dataclass
class FileStats:
    """Per-file COPY output, filled while the stream is consumed."""

    rows_loaded: int = 0
    errors_seen: int = 0
    first_error: str | None = None
    first_error_line: int | None = None  # 1-based line (CSV/TSV/NDJSON) or row number (Parquet)
    # Set just before ReadAbort is raised: a consumer such as DuckDB may re-wrap the exception.
    abort: ReadAbort | None = None


class SkipFile(Exception):
    """Internal: SKIP_FILE decided this file loads nothing."""


@dataclass
class ErrorSink:
    """Counts errors in file order and applies ON_ERROR."""

    stats: FileStats
    on_error: OnError
    display_name: str

    def row_error(self, line: int | None, message: str) -> None:
        stats = self.stats
        stats.errors_seen += 1
        if stats.first_error is None:
            stats.first_error, stats.first_error_line = message, line
        if self.on_error.mode == "ABORT" and stats.errors_seen >= self.on_error.limit:
            stats.abort = ReadAbort(self._abort_message())
            raise stats.abort
        if self.on_error.mode == "SKIP_FILE" and stats.errors_seen >= self.on_error.limit:
            raise SkipFile

    def file_error(self, message: str) -> None:
        """A problem with the whole file (e.g. a missing Parquet column): nothing loads from it."""
        self.row_error(None, message)
        raise SkipFile

    def _abort_message(self) -> str:
        stats = self.stats
        where = f"at file '{self.display_name}'"
        if stats.first_error_line is not None:
            where += f", line {stats.first_error_line}"
        return f"abort after {stats.errors_seen} errors! The first error {where}: {stats.first_error}"
