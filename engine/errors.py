"""Errors raised by the engine: each is something the client can read and act on."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa


class EngineError(Exception):
    """Base class for statement problems the client can fix."""


class StatementRejected(EngineError):
    """The statement is not allowed (guard), or cannot be parsed."""


class PermissionDenied(EngineError):
    """The user lacks a privilege the statement needs."""


class AuthenticationFailed(EngineError):
    """Unknown user or wrong password."""


class ObjectNotFound(EngineError):
    """A named object (user, stage, file format) does not exist."""


class ObjectAlreadyExists(EngineError):
    """A named object already exists."""


class SessionBusy(EngineError):
    """The session still streams a large result on its connection."""


class ConcurrentChange(EngineError):
    """Another transaction (on this node or another one sharing the lake) changed what this one
    changed, and committed first: the whole transaction may be run again."""


class QueryCancelled(EngineError):
    """The running statement was interrupted (client cancel or timeout)."""


def without_traceback(text: str) -> str:
    """DuckDB quotes a Python error raised inside an Arrow stream with pyarrow's traceback detail."""
    return text.split(". Detail: Python exception", 1)[0]


_FAILED_STREAM = re.compile(
    r"reading the stream registered as '[^']*' failed: (?:Unknown error: )?(.*)", re.S
)


def duckdb_error_text(text: str) -> str:
    """DuckDB's message, minus what it wraps around a failing Arrow stream (a staged file's reader):
    our internal stream name and pyarrow's traceback. The reader's own words stay."""
    text = without_traceback(text)
    failed = _FAILED_STREAM.search(text)
    return failed.group(1) if failed is not None else text


@contextmanager
def translated_errors(describe: Callable[[str], str] = duckdb_error_text) -> Iterator[None]:
    """The engine's one translation of DuckDB and Arrow errors into errors the client reads.

    ``describe`` turns the library's text into the client's message (COPY adds the file name).
    The original error stays as ``__cause__`` for the server log. An interrupt (client cancel,
    statement timeout) is a cancellation, wherever it stopped DuckDB. Anything else, such as a
    TypeError from our own code, passes through to the Flight boundary, which logs it and answers
    INTERNAL: a programming error must never look like the user's mistake.
    """
    try:
        yield
    except duckdb.InterruptException as exc:
        raise QueryCancelled("Query cancelled") from exc
    except duckdb.TransactionException as exc:
        if "Transaction conflict" not in str(exc):
            raise EngineError(describe(str(exc))) from exc
        raise ConcurrentChange(
            "Concurrent change: another transaction changed the same table first; retry the transaction "
            f"({_conflict_detail(str(exc))})"
        ) from exc
    except (duckdb.Error, pa.ArrowException) as exc:
        raise EngineError(describe(str(exc))) from exc


@contextmanager
def translated_stream_errors() -> Iterator[None]:
    """Errors of a DuckDB result read through its Arrow stream, after the first batches.

    The Arrow C-stream reader raises DuckDB's error as a plain OSError with DuckDB's text (an
    interrupt reads "INTERRUPT Error: ..."); only the reader's OSError is translated, so an
    OSError from our own code still reaches the boundary as an internal error.
    """
    with translated_errors():
        try:
            yield
        except OSError as exc:
            text = str(exc)
            if text.startswith("INTERRUPT Error"):
                raise QueryCancelled("Query cancelled") from exc
            raise EngineError(duckdb_error_text(text)) from exc


def _conflict_detail(text: str) -> str:
    """DuckLake's own words for the conflict (after "Transaction conflict - "), on one line."""
    detail = text.split("Transaction conflict", 1)[1].lstrip(" -:")
    return " ".join(detail.split())[:300]
