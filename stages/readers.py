"""Read one staged file as an Arrow stream with Databend COPY semantics and error accounting.

The common case (a clean file) runs entirely in Arrow C++: CSV through a ``pyarrow.dataset`` scan
(or ``pyarrow.csv.open_csv`` when the compression cannot be inferred from the name) with the
target types as ``ConvertOptions.column_types``; NDJSON through ``pyarrow.json`` with the target
schema; Parquet through a ``pyarrow.dataset`` scan plus a cast. Only when Arrow reports a bad value (or
NDJSON meets something Arrow reads differently) does a file fall back to a careful path that finds the
bad rows, their 1-based line numbers, and applies ON_ERROR. Batches are streamed; the fallback
works one chunk at a time, so memory stays bounded for files larger than RAM.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.json as pajson

from stages.conversion import CAST_ERRORS, Chunk, cast_array, convert_columns, emit_chunk
from stages.csv_dialect import csv_arrow_options, csv_dialect, needs_staging, stage_text
from stages.errors import StageError
from stages.formats import choice_option, compression_codec, ext_codec
from stages.on_error import ErrorSink, FileStats, OnError, SkipFile
from stages.storage.base import StorageBackend

__all__ = ["open_file_reader"]

_CAREFUL_ROWS = 65536  # rows per chunk on the fallback path
_SKIP_FILE_BUFFER_BYTES = 64 << 20  # SKIP_FILE keeps this much in memory before re-reading instead
_MISSING_CHOICES = {"ERROR", "NULL", "FIELD_DEFAULT"}
_JSON_BLOCK_BYTES = 8 << 20  # NDJSON is read in blocks of whole lines; each is fast or careful
_NON_BLANK_LINE = re.compile(rb"^[ \t\r\f\v]*[^\s]", re.M)
_BLANK_LINE_INSIDE = re.compile(rb"\n[ \t\r\f\v]*\n")
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r\f\v]*(?:\n|\Z)")


class _Restart(Exception):
    """Internal: the fast CSV path met something it cannot account for; re-read carefully."""


def _open_stream(backend: StorageBackend, key: str, codec: str | None) -> pa.NativeFile:
    raw = backend.open_input_stream(key)
    return pa.CompressedInputStream(raw, codec) if codec else raw


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
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.batch_rows = batch_rows
        self.dialect = csv_dialect(options)
        self.codec = compression_codec(options, key)
        self.names = [f"c{i}" for i in range(len(target))]

    def batches(self) -> Iterator[pa.RecordBatch]:
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
            self.dialect, self.names, list(self.target.types), self.batch_rows
        )
        if self.codec == ext_codec(self.key):
            # The dataset scanner infers the same codec from the name and parses blocks in parallel.
            fs, path = self.backend.filesystem_and_path(self.key)
            fmt = ds.CsvFileFormat(parse_options=parse, convert_options=convert, read_options=read)
            # An explicit schema stops the factory from opening the file to infer one.
            schema = pa.schema([(n, convert.column_types[n]) for n in self.names])
            dataset = ds.dataset(path, schema=schema, filesystem=fs, format=fmt)
            yield from dataset.scanner(batch_size=self.batch_rows, use_threads=True).to_reader()
            return
        with _open_stream(self.backend, self.key, self.codec) as stream:
            yield from pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)

    def _finish_fast(self, raw: pa.RecordBatch) -> pa.RecordBatch:
        columns = []
        for arr, fld in zip(raw.columns, self.target, strict=True):
            if needs_staging(fld.type, self.dialect):
                arr = stage_text(arr, fld.type, self.dialect)
            try:
                columns.append(cast_array(arr, fld.type))
            except CAST_ERRORS as exc:
                raise _Restart from exc
        return pa.RecordBatch.from_arrays(columns, schema=self.target)

    # -- careful path ---------------------------------------------------------------------------

    def _careful(self, skip_rows: int) -> Iterator[pa.RecordBatch]:
        """Parse with Python's csv module, which reports physical line numbers."""
        with _open_stream(self.backend, self.key, self.codec) as stream:
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

    def _rows(self, text: io.TextIOWrapper) -> Iterator[tuple[int, list[str]]]:
        """(first line, fields) of every data row; blank lines are skipped like Arrow does."""
        d = self.dialect
        if d.tsv or d.quote is None:
            reader = csv.reader(
                text, delimiter=d.delimiter, quoting=csv.QUOTE_NONE, escapechar=None, strict=False
            )
        else:
            reader = csv.reader(
                text,
                delimiter=d.delimiter,
                quotechar=d.quote,
                escapechar=d.escape,
                doublequote=True,
                strict=False,
            )
        line = 0
        for index, fields in enumerate(reader):
            start, line = line + 1, reader.line_num
            if index >= d.skip_header and fields:
                yield start, fields

    def _chunk(self, rows: list[tuple[int, list[str]]]) -> Chunk:
        width = len(self.target)
        bad: dict[int, str] = {}
        columns: list[list[str | None]] = [[] for _ in range(width)]
        for index, (_, fields) in enumerate(rows):
            if len(fields) != width and self.dialect.error_on_mismatch:
                bad[index] = (
                    f"Number of columns in file ({len(fields)}) does not match "
                    f"that of the corresponding table ({width})"
                )
                fields = []
            padded: list[str | None] = [*fields[:width], *[None] * (width - len(fields))]
            for column, value in zip(columns, padded, strict=True):
                column.append(self._text_value(value))
        raw = [pa.array(column, pa.string()) for column in columns]
        staged = [
            stage_text(a, f.type, self.dialect) if needs_staging(f.type, self.dialect) else a
            for a, f in zip(raw, self.target, strict=True)
        ]
        arrays, cast_bad = convert_columns(staged, self.target)
        for row, message in cast_bad.items():
            bad.setdefault(row, message)
        return Chunk(arrays, bad, lambda row: rows[row][0])

    def _text_value(self, value: str | None) -> str | None:
        d = self.dialect
        if value is None:  # a missing trailing field (ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE)
            return None
        if d.trim:
            value = value.strip(" ")
        if value == d.null_display or (value == "" and d.empty_as_null):
            return None
        return value


# ---------------------------------------------------------------------------------------------
# NDJSON


class _NdjsonFile:
    """NDJSON matched by name, a block of whole lines at a time: pyarrow's JSON reader when the block
    is plain, else ``json`` per line (the careful path, with line numbers and ON_ERROR).

    A block goes careful whenever Arrow could read it differently: pyarrow cannot tell a missing key
    from an explicit null (MISSING_FIELD_AS=ERROR), matches names exactly, accepts two objects on one
    line, and parses values by its own rules.
    """

    def __init__(
        self,
        backend: StorageBackend,
        key: str,
        options: Mapping[str, str],
        target: pa.Schema,
        sink: ErrorSink,
        case_sensitive: bool,
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.codec = compression_codec(options, key)
        self.case_sensitive = case_sensitive
        self.missing = choice_option(options, "MISSING_FIELD_AS", "ERROR", _MISSING_CHOICES)
        choice_option(options, "NULL_FIELD_AS", "NULL", {"NULL", "FIELD_DEFAULT"})  # both mean null here
        self.keys = [f.name if case_sensitive else f.name.lower() for f in target]
        self.fast_types = _json_fast_types(target)

    def batches(self) -> Iterator[pa.RecordBatch]:
        line = 1  # the first line of the next block
        with _open_stream(self.backend, self.key, self.codec) as stream:
            for block in _line_blocks(stream, _JSON_BLOCK_BYTES):
                fast = self._fast(block) if self.fast_types is not None else None
                if fast is not None:
                    yield from fast.to_batches()
                else:
                    yield from self._careful(block, line)
                line += block.count(b"\n")

    def _fast(self, block: bytes) -> pa.Table | None:
        """The block read by pyarrow.json, or None where the careful path could read it otherwise."""
        records = _count_records(block)
        if not records:
            return self.target.empty_table()
        assert self.fast_types is not None
        fields = [pa.field(f.name, t) for f, t in zip(self.target, self.fast_types, strict=True)]
        # "infer" keeps other keys as extra columns, so a key that differs only in case is seen.
        parse = pajson.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="infer")
        try:
            raw = pajson.read_json(pa.BufferReader(block), parse_options=parse)
        except pa.ArrowInvalid:
            return None
        if raw.num_rows != records:
            return None  # e.g. two objects on one line, which json.loads refuses
        if not self.case_sensitive:
            wanted = {f.name for f in self.target}
            if any(n not in wanted and n.lower() in self.keys for n in raw.column_names):
                return None  # the careful path matches that key case-insensitively
        columns = []
        for fld in self.target:
            column = raw.column(fld.name)
            if self.missing == "ERROR" and column.null_count:
                return None  # a missing key or an explicit null: only the careful path can tell
            try:
                columns.append(cast_array(column, fld.type))
            except CAST_ERRORS:
                return None
        return pa.Table.from_arrays(columns, schema=self.target)

    def _careful(self, block: bytes, first_line: int) -> Iterator[pa.RecordBatch]:
        text = block.decode("utf-8", errors="replace").split("\n")
        lines = [(n, s) for n, s in enumerate(text, start=first_line) if s.strip()]
        for start in range(0, len(lines), _CAREFUL_ROWS):
            batch = emit_chunk(self._chunk(lines[start : start + _CAREFUL_ROWS]), self.target, self.sink)
            if batch is not None:
                yield batch

    def _chunk(self, lines: list[tuple[int, str]]) -> Chunk:
        bad: dict[int, str] = {}
        columns: list[list[Any]] = [[] for _ in self.keys]
        for index, (_, line) in enumerate(lines):
            values, error = self._record(line)
            if error:
                bad[index] = error
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        arrays: list[pa.Array] = []
        for position, (column, fld) in enumerate(zip(columns, self.target, strict=True)):
            converted, column_bad = _py_column(column, fld.type)
            arrays.append(converted)
            for row, reason in column_bad.items():
                bad.setdefault(row, f"Invalid value for column {position} ({fld.name} {fld.type}): {reason}")
        return Chunk(arrays, bad, lambda row: lines[row][0])

    def _record(self, line: str) -> tuple[list[Any], str | None]:
        nulls: list[Any] = [None] * len(self.keys)
        try:
            record = json.loads(line)
        except ValueError as exc:
            return nulls, f"Invalid JSON: {exc}"
        if not isinstance(record, dict):
            return nulls, f"Expected a JSON object, got {type(record).__name__}"
        if not self.case_sensitive:
            record = {str(k).lower(): v for k, v in record.items()}
        if self.missing == "ERROR":
            for key, fld in zip(self.keys, self.target, strict=True):
                if key not in record:
                    return nulls, f"Missing field '{fld.name}'"
        return [record.get(key) for key in self.keys], None


def _count_records(block: bytes) -> int:
    """Non-blank lines of ``block``: the records the careful path reads."""
    tail = block[block.rfind(b"\n") + 1 :]
    if _BLANK_LINE_INSIDE.search(block) or _BLANK_FIRST_LINE.match(block) or (tail and not tail.strip()):
        return len(_NON_BLANK_LINE.findall(block))  # rare, and five times slower
    return block.count(b"\n") + (1 if tail else 0)


def _line_blocks(stream: pa.NativeFile, size: int) -> Iterator[bytes]:
    """``stream`` in blocks of about ``size`` bytes, each ending at a line end (or the file end)."""
    carry = b""
    while chunk := stream.read(size):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        carry = data[cut:]
    if carry:
        yield carry


def _json_fast_types(target: pa.Schema) -> list[pa.DataType] | None:
    """The types pyarrow.json should parse each target column as, or None when it cannot agree.

    Numbers, booleans and strings parse as themselves. Dates, times and decimals are read as JSON
    strings and cast, as the careful path does; anything else (nested, binary) goes careful.
    """
    types: list[pa.DataType] = []
    for typ in target.types:
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ):
            types.append(typ)
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
            types.append(typ)
        elif pa.types.is_temporal(typ) or pa.types.is_decimal(typ):
            types.append(pa.string())
        else:
            return None
    return types


def _py_column(values: list[Any], typ: pa.DataType) -> tuple[pa.Array, dict[int, str]]:
    """Python values -> Arrow; per value only when the vectorised build fails."""
    try:
        return pa.array(values, typ), {}
    except CAST_ERRORS:
        pass
    out: list[Any] = []
    bad: dict[int, str] = {}
    for row, value in enumerate(values):
        try:
            out.append(_py_value(value, typ))
        except CAST_ERRORS as exc:
            bad[row] = f"'{str(value)[:64]}': {exc}"
            out.append(None)
    return pa.array(out, typ), bad


def _py_value(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str):
        return cast_array(pa.array([value]), typ)[0]
    return pa.array([value], typ)[0]


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
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.case_sensitive, self.batch_rows = case_sensitive, batch_rows
        self.missing = choice_option(options, "MISSING_FIELD_AS", "ERROR", _MISSING_CHOICES)

    def batches(self) -> Iterator[pa.RecordBatch]:
        fs, path = self.backend.filesystem_and_path(self.key)
        try:
            # The dataset scanner decodes row groups in parallel (faster than iter_batches).
            dataset = ds.dataset(path, filesystem=fs, format="parquet")
        except (pa.ArrowInvalid, OSError) as exc:
            self.sink.file_error(f"Invalid Parquet file: {exc}")
            return
        columns = self._match(dataset.schema.names)
        wanted = sorted({c for c in columns if c is not None})
        scanner = dataset.scanner(columns=wanted, batch_size=self.batch_rows, use_threads=True)
        offset = 0
        for raw in scanner.to_reader():
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
            raw.column(c) if c is not None else pa.nulls(raw.num_rows, f.type)
            for c, f in zip(columns, self.target, strict=True)
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
) -> tuple[pa.RecordBatchReader, FileStats]:
    """Stream one staged file as batches of ``target`` (names and types, in order).

    Args:
        options: normalised file format options (see :func:`stages.formats.normalize_format_options`);
            ``TYPE`` defaults to PARQUET.
        target: the columns to fill. CSV/TSV map fields by position; NDJSON and Parquet by name.
        column_match: ``CASE_INSENSITIVE`` (default) or ``CASE_SENSITIVE`` for NDJSON/Parquet names.

    Returns:
        The reader and its stats, which fill in as the reader is consumed. ``FileStats.rows_loaded``
        counts the rows handed to the consumer.

    Raises:
        StageError: a bad option (at once); ReadAbort while reading when ON_ERROR aborts.
    """
    stats = FileStats()
    sink = ErrorSink(stats, on_error, display_name)
    factory = _file_factory(backend, key, options, target, sink, column_match, batch_rows)

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
) -> Callable[[], Iterator[pa.RecordBatch]]:
    """Validate the options now (errors surface before any reading) and return a batch source."""
    kind = options.get("TYPE", "PARQUET").upper()
    match = column_match.upper()
    if match not in {"CASE_INSENSITIVE", "CASE_SENSITIVE"}:
        raise StageError("ColumnMatchMode must be one of {CASE_SENSITIVE | CASE_INSENSITIVE}")
    sensitive = match == "CASE_SENSITIVE"
    if kind in {"CSV", "TSV", "TEXT"}:
        csv_file = _CsvFile(backend, key, options, target, sink, batch_rows)
        return csv_file.batches
    if kind == "NDJSON":
        return _NdjsonFile(backend, key, options, target, sink, sensitive).batches
    if kind == "PARQUET":
        return _ParquetFile(backend, key, options, target, sink, sensitive, batch_rows).batches
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
