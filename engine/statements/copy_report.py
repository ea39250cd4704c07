"""What COPY INTO a table answers: one row per file, and errors that name the file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.errors import duckdb_error_text
from stages.errors import StageError
from stages.storage.base import StagedFile

# What reading a staged file can raise for a reason in the file or its options (not our code).
READ_ERRORS = (StageError, pa.ArrowException, OverflowError, OSError)

LOAD_SCHEMA = pa.schema(
    [
        pa.field("File", pa.string(), nullable=False),
        pa.field("Rows_loaded", pa.int32(), nullable=False),
        pa.field("Errors_seen", pa.int32(), nullable=False),
        pa.field("First_error", pa.string()),
        pa.field("First_error_line", pa.int32()),
    ]
)
VALIDATION_ERRORS_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int32()),
        pa.field("error", pa.string(), nullable=False),
        pa.field("errors_seen", pa.int32(), nullable=False),
    ]
)


@dataclass
class Candidate:
    name: str  # relative to the stage root, as LIST shows it
    file: StagedFile


def file_row(
    c: Candidate,
    rows_loaded: int,
    errors_seen: int = 0,
    first_error: str | None = None,
    first_error_line: int | None = None,
) -> dict[str, Any]:
    """One row of COPY's output (LOAD_SCHEMA)."""
    return {
        "File": c.name,
        "Rows_loaded": rows_loaded,
        "Errors_seen": errors_seen,
        "First_error": first_error,
        "First_error_line": first_error_line,
    }


def load_error_text(c: Candidate | None) -> Callable[[str], str]:
    """How a failed INSERT of staged rows is worded: the reader's abort, or DuckDB's text plus the file."""

    def describe(text: str) -> str:
        text = duckdb_error_text(text)
        # An abort raised inside the reader reaches us through DuckDB's Arrow scan; keep its own words.
        marker = "abort after"
        if marker in text:
            return text[text.index(marker) :]
        if c is not None and c.name not in text:
            return f"{text} (file '{c.name}')"
        return text

    return describe
