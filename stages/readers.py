"""Read one staged file as an Arrow stream with Databend COPY semantics and error accounting.

The common case (a clean file) runs entirely in Arrow C++: CSV through Arrow's streaming reader
(``pyarrow.csv.open_csv``) with the target types as ``ConvertOptions.column_types``; NDJSON through
``pyarrow.json`` with the target schema; Parquet a row group at a time, plus a cast. Only when Arrow
reports a bad value (or NDJSON meets something Arrow reads differently) does a file fall back to a
careful path that finds the bad rows, their 1-based line numbers, and applies ON_ERROR. Batches are
streamed; the fallback works one chunk at a time, so memory stays bounded for files larger than RAM.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stages.conversion import (
    CAST_ERRORS,
    Chunk,
    apply_null_if,
    bad_value_message,
    cast_array,
    convert_columns,
    decode_binary,
    emit_chunk,
    is_binary,
    null_if_array,
)
from stages.csv_dialect import csv_arrow_options, csv_dialect, needs_staging, stage_text
from stages.errors import StageError
from stages.formats import MISSING_FIELD_CHOICES, compression_codec, open_stream
from stages.ndjson_reader import NdjsonFile
from stages.on_error import ErrorSink, FileStats, OnError, SkipFile
from stages.options import choice_option, null_if_option
from stages.parquet_io import parquet_batches
from stages.storage.base import StorageBackend

__all__ = ["open_file_reader"]

_CAREFUL_ROWS = 65536  # rows per chunk on the fallback path
_SKIP_FILE_BUFFER_BYTES = 64 << 20  # SKIP_FILE keeps this much in memory before re-reading instead


class _Restart(Exception):
    """Internal: the fast CSV path met something it cannot account for; re-read carefully."""


# ---------------------------------------------------------------------------------------------
# CSV / TSV


class _CsvFile:
    """One CSV/TSV file: the fast Arrow scan, and the careful fallback that resumes after it."""

    def __init__(
        self,
        backend: StorageBackend,
        key: str,
        options: Mapping[str, str],
        target: pa.Schema,
        sink: ErrorSink,
        batch_rows: int,
        defaults: Mapping[str, pa.Scalar],
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.batch_rows = batch_rows
        self.dialect = csv_dialect(options)
        # EMPTY_FIELD_AS, read before keeping_empty() below changes the null texts.
        dialect = self.dialect
        self.empty_as = (
            "FIELD_DEFAULT" if dialect.empty_as_default else "NULL" if "" in dialect.null_values else "STRING"
        )
        self.defaults = [defaults.get(f.name) for f in target]
        # EMPTY_FIELD_AS = FIELD_DEFAULT with defaults to use: empty fields are read as "" and filled.
        self.fill_empty = self.dialect.empty_as_default and any(d is not None for d in self.defaults)
        if self.fill_empty:
            self.dialect = self.dialect.keeping_empty()
        self.codec = compression_codec(options, key)
        self.names = [f"c{i}" for i in range(len(target))]

    def batches(self) -> Iterator[pa.RecordBatch]:
        if not self.dialect.quotes_plain:
            # Arrow's reader cannot tell a quoted field from a bare one once parsed.
            yield from self._careful(skip_rows=0)
            return
        done = 0
        try:
            for batch in self._fast():
                done += batch.num_rows
                yield batch
        except _Restart:
            yield from self._careful(skip_rows=done)

    # -- fast path ------------------------------------------------------------------------------

    def _fast(self) -> Iterator[pa.RecordBatch]:
        try:
            for raw in self._arrow_batches():
                yield self._finish_fast(raw)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return
            raise _Restart from exc

    def _arrow_batches(self) -> Iterator[pa.RecordBatch]:
        read, parse, convert = csv_arrow_options(
            self.dialect, self.names, list(self.target.types), as_text=self.fill_empty
        )
        # Arrow's streaming CSV reader, not a dataset scan: fed into DuckDB, a dataset scan of one large
        # file grew the server's memory by about a quarter of the file's size (measured, pyarrow 26).
        with open_stream(self.backend, self.key, self.codec) as stream:
            yield from pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)

    def _finish_fast(self, raw: pa.RecordBatch) -> pa.RecordBatch:
        columns = []
        for arr, fld, default in zip(raw.columns, self.target, self.defaults, strict=True):
            empty = None
            if self.fill_empty:
                if self.dialect.trim:  # a field of spaces is empty too (as on the careful path)
                    arr = pc.utf8_trim(arr, " ")
                arr, empty = _split_empty(arr)
            if needs_staging(fld.type, self.dialect):
                arr = stage_text(arr, fld.type, self.dialect)
            if self.dialect.binary_format and is_binary(fld.type):
                arr, bad = decode_binary(arr, self.dialect.binary_format)
                if bad:
                    raise _Restart  # the careful path reports each bad value with its line
            try:
                columns.append(_fill(cast_array(arr, fld.type), empty, default))
            except CAST_ERRORS as exc:
                raise _Restart from exc
        return pa.RecordBatch.from_arrays(columns, schema=self.target)

    # -- careful path ---------------------------------------------------------------------------

    def _careful(self, skip_rows: int) -> Iterator[pa.RecordBatch]:
        """Parse with Python's csv module, which reports physical line numbers."""
        with open_stream(self.backend, self.key, self.codec) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            rows = self._rows(text)
            for _ in zip(range(skip_rows), rows, strict=False):
                pass  # already delivered by the fast path
            while True:
                block = list(zip(range(_CAREFUL_ROWS), rows, strict=False))
                if not block:
                    return
                batch = emit_chunk(self._chunk([r for _, r in block]), self.target, self.sink)
                if batch is not None:
                    yield batch

    def _rows(self, text: io.TextIOWrapper) -> Iterator[_Row]:
        """(first line, fields, quoted) of every data row; blank lines are skipped like Arrow does.

        ``quoted`` flags the fields that were enclosed in quotes; None when the row has no quote
        character at all (the common case costs nothing).
        """
        d = self.dialect
        tap = _LineTap(text)
        if d.tsv or d.quote is None:
            reader = csv.reader(
                tap, delimiter=d.delimiter, quoting=csv.QUOTE_NONE, escapechar=None, strict=False
            )
        else:
            reader = csv.reader(
                tap,
                delimiter=d.delimiter,
                quotechar=d.quote,
                escapechar=d.escape,
                doublequote=True,
                strict=False,
            )
        line = 0
        for index, fields in enumerate(reader):
            start, line = line + 1, reader.line_num
            raw = tap.take()
            if index >= d.skip_header and fields:
                quoted = None
                if d.quote is not None and d.quote in raw:
                    quoted = _quoted_fields(raw, d.delimiter, d.quote, d.escape)
                yield start, fields, quoted

    def _chunk(self, rows: list[_Row]) -> Chunk:
        width = len(self.target)
        bad: dict[int, str] = {}
        columns: list[list[str | None]] = [[] for _ in range(width)]
        use_default: list[list[bool]] = [[] for _ in range(width)]
        for index, (_, fields, quoted) in enumerate(rows):
            if len(fields) != width and self.dialect.error_on_mismatch:
                bad[index] = (
                    f"Number of columns in file ({len(fields)}) does not match "
                    f"that of the corresponding table ({width})"
                )
                fields = []
            padded: list[str | None] = [*fields[:width], *[None] * (width - len(fields))]
            for i, value in enumerate(padded):
                text, default = self._text_value(value, quoted is not None and i < len(quoted) and quoted[i])
                columns[i].append(text)
                use_default[i].append(default)
        raw = [pa.array(column, pa.string()) for column in columns]
        staged = [
            stage_text(a, f.type, self.dialect) if needs_staging(f.type, self.dialect) else a
            for a, f in zip(raw, self.target, strict=True)
        ]
        if self.dialect.binary_format:
            for i, fld in enumerate(self.target):
                if is_binary(fld.type):
                    text = staged[i]
                    staged[i], decode_bad = decode_binary(text, self.dialect.binary_format)
                    for row, reason in decode_bad.items():
                        bad.setdefault(row, bad_value_message(text, row, i, fld, reason))
        arrays, cast_bad = convert_columns(staged, self.target)
        arrays = [
            _fill(a, pa.array(m, pa.bool_()) if any(m) else None, d)
            for a, m, d in zip(arrays, use_default, self.defaults, strict=True)
        ]
        for row, message in cast_bad.items():
            bad.setdefault(row, message)
        return Chunk(arrays, bad, lambda row: rows[row][0])

    def _text_value(self, value: str | None, quoted: bool) -> tuple[str | None, bool]:
        """The field's text (None = NULL) and whether the column default replaces it."""
        d = self.dialect
        if value is None:  # a missing trailing field (ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE)
            return None, False
        if quoted:
            if value == "":
                return _EMPTY[d.quoted_empty_as]
            if d.allow_quoted_nulls and value == d.null_display:
                return None, False
            return (value.strip(" ") if d.trim else value), False
        if d.trim:
            value = value.strip(" ")
        if value == "":
            return _EMPTY[self.empty_as]
        if value in d.null_values:
            return None, False
        return value, False


# What an empty field becomes under EMPTY_FIELD_AS / QUOTED_EMPTY_FIELD_AS: (text, use the default).
_EMPTY: dict[str, tuple[str | None, bool]] = {
    "STRING": ("", False),
    "NULL": (None, False),
    "FIELD_DEFAULT": (None, True),
}

_Row = tuple[int, list[str], list[bool] | None]


class _LineTap:
    """The lines ``csv.reader`` pulls, kept until taken: the raw text of the row it just parsed."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._taken: list[str] = []

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken.append(line)
        return line

    def take(self) -> str:
        raw = "".join(self._taken)
        self._taken.clear()
        return raw


def _quoted_fields(raw: str, delimiter: str, quote: str, escape: str | None) -> list[bool]:
    """For each field of one raw CSV row, whether it was enclosed in quotes (Python csv's rules)."""
    flags: list[bool] = []
    at_start, in_quotes, i = True, False, 0
    while i < len(raw):
        ch = raw[i]
        if in_quotes:
            if escape is not None and ch == escape:
                i += 1  # the escaped character
            elif ch == quote:
                if raw.startswith(quote, i + 1):
                    i += 1  # a doubled quote stands for one
                else:
                    in_quotes = False
        elif ch == delimiter:
            if at_start:
                flags.append(False)  # an empty, unquoted field
            at_start = True
        elif ch in "\r\n":
            break
        elif at_start:
            flags.append(ch == quote)
            in_quotes, at_start = ch == quote, False
        elif escape is not None and ch == escape:
            i += 1
        i += 1
    if at_start:
        flags.append(False)  # the last field is empty
    return flags


def _constant(value: pa.Scalar | None, typ: pa.DataType, length: int) -> pa.Array:
    return pa.nulls(length, typ) if value is None else pa.repeat(value.cast(typ), length)


def _split_empty(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Empty texts become NULL; the mask says where they were (for the column default)."""
    empty = pc.fill_null(pc.equal(arr, ""), False)
    return pc.if_else(empty, pa.scalar(None, arr.type), arr), empty


def _fill(arr: pa.Array, where: pa.Array | None, default: pa.Scalar | None) -> pa.Array:
    """The column default where ``where`` is set (FIELD_DEFAULT); otherwise ``arr`` as it is."""
    if where is None or default is None:
        return arr
    return pc.if_else(where, default.cast(arr.type), arr)


# ---------------------------------------------------------------------------------------------
# Parquet


class _ParquetFile:
    """Parquet matched by name, cast to the target types; line = 1-based row number."""

    def __init__(
        self,
        backend: StorageBackend,
        key: str,
        options: Mapping[str, str],
        target: pa.Schema,
        sink: ErrorSink,
        case_sensitive: bool,
        batch_rows: int,
        defaults: Mapping[str, pa.Scalar],
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.case_sensitive, self.batch_rows = case_sensitive, batch_rows
        self.missing = choice_option(options, "MISSING_FIELD_AS", "ERROR", MISSING_FIELD_CHOICES)
        self.null_if = null_if_array(null_if_option(options))  # string values that load as NULL
        # A column missing from the file: its default with FIELD_DEFAULT, else NULL.
        self.missing_values = [
            defaults.get(f.name) if self.missing == "FIELD_DEFAULT" else None for f in target
        ]

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            parquet = pq.ParquetFile(self.backend.open_input(self.key))
            names = parquet.schema_arrow.names
        except (pa.ArrowInvalid, OSError) as exc:
            self.sink.file_error(f"Invalid Parquet file: {exc}")
            return
        columns = self._match(names)
        wanted = sorted({c for c in columns if c is not None})
        offset = 0
        for raw in parquet_batches(parquet, self.batch_rows, wanted):
            batch = self._convert(raw, columns, offset)
            offset += raw.num_rows
            if batch is not None:
                yield batch

    def _match(self, file_names: list[str]) -> list[str | None]:
        """The file column for each target column (None = missing, read as null)."""
        exact = set(file_names)
        folded: dict[str, list[str]] = {}
        for name in file_names:
            folded.setdefault(name.lower(), []).append(name)
        found: list[str | None] = []
        for fld in self.target:
            if fld.name in exact:
                found.append(fld.name)
            elif not self.case_sensitive and len(folded.get(fld.name.lower(), [])) == 1:
                found.append(folded[fld.name.lower()][0])
            elif not self.case_sensitive and fld.name.lower() in folded:
                self.sink.file_error(f"Ambiguous column '{fld.name}' in file: {folded[fld.name.lower()]}")
            elif self.missing == "ERROR":
                self.sink.file_error(f"Missing column '{fld.name}' in file (MISSING_FIELD_AS = ERROR)")
            else:
                found.append(None)
        return found

    def _convert(self, raw: pa.RecordBatch, columns: list[str | None], offset: int) -> pa.RecordBatch | None:
        source = [
            apply_null_if(raw.column(c), self.null_if)
            if c is not None
            else _constant(missing, f.type, raw.num_rows)
            for c, f, missing in zip(columns, self.target, self.missing_values, strict=True)
        ]
        arrays, bad = convert_columns(source, self.target)
        return emit_chunk(Chunk(arrays, bad, lambda row: offset + row + 1), self.target, self.sink)


# ---------------------------------------------------------------------------------------------
# Entry point


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
) -> tuple[pa.RecordBatchReader, FileStats]:
    """Stream one staged file as batches of ``target`` (names and types, in order).

    Args:
        options: normalised file format options (see :func:`stages.formats.normalize_format_options`);
            ``TYPE`` defaults to PARQUET.
        target: the columns to fill. CSV/TSV map fields by position; NDJSON and Parquet by name.
        column_match: ``CASE_INSENSITIVE`` (default) or ``CASE_SENSITIVE`` for NDJSON/Parquet names.
        defaults: column default values by target name, used where the format's FIELD_DEFAULT
            applies (EMPTY_FIELD_AS, MISSING_FIELD_AS, NULL_FIELD_AS); other columns get NULL there.

    Returns:
        The reader and its stats, which fill in as the reader is consumed. ``FileStats.rows_loaded``
        counts the rows handed to the consumer.

    Raises:
        StageError: a bad option (at once); ReadAbort while reading when ON_ERROR aborts.
    """
    stats = FileStats()
    sink = ErrorSink(stats, on_error, display_name)
    factory = _file_factory(backend, key, options, target, sink, column_match, batch_rows, defaults or {})

    def generate() -> Iterator[pa.RecordBatch]:
        source = _skip_file_batches(factory, sink) if on_error.mode == "SKIP_FILE" else _safe(factory(), sink)
        for batch in source:
            stats.rows_loaded += batch.num_rows
            yield batch

    return pa.RecordBatchReader.from_batches(target, generate()), stats


def _file_factory(
    backend: StorageBackend,
    key: str,
    options: Mapping[str, str],
    target: pa.Schema,
    sink: ErrorSink,
    column_match: str,
    batch_rows: int,
    defaults: Mapping[str, pa.Scalar],
) -> Callable[[], Iterator[pa.RecordBatch]]:
    """Validate the options now (errors surface before any reading) and return a batch source."""
    kind = options.get("TYPE", "PARQUET").upper()
    match = column_match.upper()
    if match not in {"CASE_INSENSITIVE", "CASE_SENSITIVE"}:
        raise StageError("ColumnMatchMode must be one of {CASE_SENSITIVE | CASE_INSENSITIVE}")
    sensitive = match == "CASE_SENSITIVE"
    if kind in {"CSV", "TSV", "TEXT"}:
        csv_file = _CsvFile(backend, key, options, target, sink, batch_rows, defaults)
        return csv_file.batches
    if kind == "NDJSON":
        return NdjsonFile(backend, key, options, target, sink, sensitive, defaults).batches
    if kind == "PARQUET":
        return _ParquetFile(backend, key, options, target, sink, sensitive, batch_rows, defaults).batches
    raise StageError(f"Unknown file format TYPE: {kind}")


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
