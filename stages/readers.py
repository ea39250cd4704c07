"""Read one staged file as an Arrow stream with Databend COPY semantics and error accounting.

The common case (a clean file) runs entirely in Arrow C++: CSV through Arrow's streaming reader
(``pyarrow.csv.open_csv``) with the target types as ``ConvertOptions.column_types``; NDJSON through
``pyarrow.json`` with the target schema; Parquet a row group at a time, plus a cast. Only when Arrow
reports a bad value (or NDJSON meets something Arrow reads differently) does a file fall back to a
careful path that finds the bad rows, their 1-based line numbers, and applies ON_ERROR. Batches are
streamed; the fallback works one chunk at a time, so memory stays bounded for files larger than RAM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pyarrow as pa

from stages.csv_reader import CsvFile
from stages.errors import StageError
from stages.file_read import FileRead
from stages.ndjson_reader import NdjsonFile
from stages.on_error import ErrorSink, FileStats, OnError, SkipFile
from stages.parquet_reader import ParquetFile
from stages.storage.base import StorageBackend

__all__ = ["open_file_reader"]

_SKIP_FILE_BUFFER_BYTES = 64 << 20  # SKIP_FILE keeps this much in memory before re-reading instead


def open_file_reader(
    backend: StorageBackend,
    key: str,
    display_name: str,
    options: Mapping[str, str],
    target: pa.Schema,
    *,
    on_error: OnError,
    column_match: str = "CASE_INSENSITIVE",
    batch_rows: int = 131072,
    defaults: Mapping[str, pa.Scalar] | None = None,
    use_threads: bool = True,
) -> tuple[pa.RecordBatchReader, FileStats]:
    """Stream one staged file as batches of ``target`` (names and types, in order).

    Args:
        options: normalised file format options (see :func:`stages.formats.normalize_format_options`);
            ``TYPE`` defaults to PARQUET.
        target: the columns to fill. CSV/TSV map fields by position; NDJSON and Parquet by name.
        column_match: ``CASE_INSENSITIVE`` (default) or ``CASE_SENSITIVE`` for NDJSON/Parquet names.
        defaults: column default values by target name, used where the format's FIELD_DEFAULT
            applies (EMPTY_FIELD_AS, MISSING_FIELD_AS, NULL_FIELD_AS); other columns get NULL there.
        use_threads: CSV and NDJSON parsing may use pyarrow's pool beside the caller (a server held to one
            thread passes False: the caller parses alone).

    Returns:
        The reader and its stats, which fill in as the reader is consumed. ``FileStats.rows_loaded``
        counts the rows handed to the consumer.

    Raises:
        StageError: a bad option (at once); ReadAbort while reading when ON_ERROR aborts.
    """
    stats = FileStats()
    sink = ErrorSink(stats, on_error, display_name)
    match = column_match.upper()
    if match not in {"CASE_INSENSITIVE", "CASE_SENSITIVE"}:
        raise StageError("ColumnMatchMode must be one of {CASE_SENSITIVE | CASE_INSENSITIVE}")
    sensitive = match == "CASE_SENSITIVE"
    file = FileRead(backend, key, options, target, sink, sensitive, batch_rows, defaults or {}, use_threads)
    factory = _file_factory(file)

    def generate() -> Iterator[pa.RecordBatch]:
        source = _skip_file_batches(factory, sink) if on_error.mode == "SKIP_FILE" else _safe(factory(), sink)
        for batch in source:
            stats.rows_loaded += batch.num_rows
            yield batch

    return pa.RecordBatchReader.from_batches(target, generate()), stats


_READERS: dict[str, type[CsvFile | NdjsonFile | ParquetFile]] = {
    "CSV": CsvFile,
    "TSV": CsvFile,
    "TEXT": CsvFile,
    "NDJSON": NdjsonFile,
    "PARQUET": ParquetFile,
}


def _file_factory(file: FileRead) -> Callable[[], Iterator[pa.RecordBatch]]:
    """Validate the options now (errors surface before any reading) and return a batch source."""
    kind = file.options.get("TYPE", "PARQUET").upper()
    reader = _READERS.get(kind)
    if reader is None:
        raise StageError(f"Unknown file format TYPE: {kind}")
    return reader(file).batches


def _safe(batches: Iterator[pa.RecordBatch], sink: ErrorSink) -> Iterator[pa.RecordBatch]:
    """A file-level error under CONTINUE/ABORT_N ends the file quietly (it is already counted)."""
    try:
        yield from batches
    except SkipFile:
        return


def _skip_file_batches(
    factory: Callable[[], Iterator[pa.RecordBatch]], sink: ErrorSink
) -> Iterator[pa.RecordBatch]:
    """SKIP_FILE must not hand out a row before the file is known to be acceptable.

    Small files are buffered from a single pass; for larger ones the first pass only counts
    errors and a second pass streams the rows (memory stays bounded).
    """
    buffered: list[pa.RecordBatch] | None = []
    size = 0
    try:
        for batch in factory():
            size += batch.nbytes
            if buffered is not None:
                buffered.append(batch)
                if size > _SKIP_FILE_BUFFER_BYTES:
                    buffered = None
    except SkipFile:
        return
    if buffered is not None:
        yield from buffered
        return
    errors = sink.stats.errors_seen
    sink.stats.errors_seen, sink.stats.first_error, sink.stats.first_error_line = 0, None, None
    try:
        yield from factory()
    except SkipFile:  # the file changed between the passes; keep what the first pass decided
        return
    sink.stats.errors_seen = max(errors, sink.stats.errors_seen)
