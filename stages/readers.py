"""Read one staged file as an Arrow stream with Databend COPY semantics and error accounting.

The common case (a clean file) runs entirely in Arrow C++: CSV through a ``pyarrow.dataset`` scan
(or ``pyarrow.csv.open_csv`` when the compression cannot be inferred from the name) with the
target types as ``ConvertOptions.column_types``; Parquet through ``ParquetFile.iter_batches`` plus a
cast. Only when Arrow reports a bad value does a file fall back to a careful path that finds the
bad rows, their 1-based line numbers, and applies ON_ERROR. Batches are streamed; the fallback
works one chunk at a time, so memory stays bounded for files larger than RAM.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from stages.errors import StageError
from stages.storage.base import StorageBackend

__all__ = [
    "FileStats",
    "OnError",
    "ReadAbort",
    "open_file_reader",
    "parse_on_error",
    "unescape_option",
]

_CSV_BLOCK_BYTES = 1 << 20  # readahead holds ~40 blocks: larger blocks cost memory, not speed
_CAREFUL_ROWS = 65536  # rows per chunk on the fallback path
_SKIP_FILE_BUFFER_BYTES = 64 << 20  # SKIP_FILE keeps this much in memory before re-reading instead
_BISECT_LEAF = 16
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError)
_ON_ERROR_RE = re.compile(r"^(CONTINUE|ABORT|SKIP_FILE)(?:_(\d+))?$")
_ON_ERROR_HELP = "ON_ERROR must be one of CONTINUE | SKIP_FILE | SKIP_FILE_<num> | ABORT | ABORT_<num>"
_OPTION_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "0": "\0"}
_TSV_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "\\": "\\", "'": "'"}
_TSV_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_EXT_CODECS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".lz4": "lz4"}
_NAMED_CODECS = {"GZIP": "gzip", "ZSTD": "zstd", "BZ2": "bz2", "LZ4": "lz4", "BROTLI": "brotli"}
_TRUE_VALUES = ["true", "True", "TRUE", "1"]
_FALSE_VALUES = ["false", "False", "FALSE", "0"]
_ARROW_NAN = {"NaN", "nan", "NAN"}
_MISSING_CHOICES = {"ERROR", "NULL", "FIELD_DEFAULT"}


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


class _SkipFile(Exception):
    """Internal: SKIP_FILE decided this file loads nothing."""


class _Restart(Exception):
    """Internal: the fast CSV path met something it cannot account for; re-read carefully."""


@dataclass
class _Sink:
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
            raise _SkipFile

    def file_error(self, message: str) -> None:
        """A problem with the whole file (e.g. a missing Parquet column): nothing loads from it."""
        self.row_error(None, message)
        raise _SkipFile

    def _abort_message(self) -> str:
        stats = self.stats
        where = f"at file '{self.display_name}'"
        if stats.first_error_line is not None:
            where += f", line {stats.first_error_line}"
        return f"abort after {stats.errors_seen} errors! The first error {where}: {stats.first_error}"


# ---------------------------------------------------------------------------------------------
# Option helpers


def unescape_option(value: str) -> str:
    """Databend escapes inside option strings: ``\\t \\n \\r \\\\ \\0`` (as typed in SQL)."""
    return re.sub(r"\\(.)", lambda m: _OPTION_ESCAPES.get(m[1], m[0]), value)


def _bool_option(options: Mapping[str, str], name: str, default: bool) -> bool:
    value = options.get(name)
    if value is None:
        return default
    text = value.strip().upper()
    if text not in {"TRUE", "FALSE", "1", "0"}:
        raise StageError(f"{name} must be TRUE or FALSE, got '{value}'")
    return text in {"TRUE", "1"}


def _choice_option(options: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = options.get(name, default).strip().upper()
    if value not in allowed:
        raise StageError(f"{name} must be one of {' | '.join(sorted(allowed))}, got '{value}'")
    return value


def _codec(options: Mapping[str, str], key: str) -> str | None:
    """The pyarrow codec name for COMPRESSION (AUTO looks at the file extension)."""
    name = options.get("COMPRESSION", "AUTO").strip().upper()
    if name == "AUTO":
        return _ext_codec(key)
    if name in {"NONE", "RAW"}:
        return None
    if name not in _NAMED_CODECS:
        raise StageError(f"COMPRESSION {name} is not supported for loading (AUTO|NONE|GZIP|ZSTD|BZ2|LZ4)")
    return _NAMED_CODECS[name]


def _ext_codec(key: str) -> str | None:
    dot = key.rfind(".")
    return _EXT_CODECS.get(key[dot:].lower()) if dot >= 0 else None


def _open_stream(backend: StorageBackend, key: str, codec: str | None) -> pa.NativeFile:
    raw = backend.open_input_stream(key)
    return pa.CompressedInputStream(raw, codec) if codec else raw


# ---------------------------------------------------------------------------------------------
# Conversion with error positions (shared by every format's careful path)


def _cast(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    if arr.type == typ:
        return arr
    if pa.types.is_time(typ) and pa.types.is_string(arr.type):
        # Arrow has no string -> time cast; a date prefix turns the value into a timestamp.
        stamped = pc.binary_join_element_wise("1970-01-01 ", arr, "")
        return stamped.cast(pa.timestamp(typ.unit)).cast(typ)
    return arr.cast(typ, safe=True)


def _find_bad(arr: pa.Array, typ: pa.DataType, base: int, out: dict[int, str]) -> None:
    """Bisect ``arr`` down to the rows whose cast fails: O(bad * log n) casts, all vectorised."""
    if len(arr) <= _BISECT_LEAF:
        for i in range(len(arr)):
            try:
                _cast(arr.slice(i, 1), typ)
            except _CAST_ERRORS as exc:
                out[base + i] = str(exc)
        return
    mid = len(arr) // 2
    for start, part in ((0, arr.slice(0, mid)), (mid, arr.slice(mid))):
        try:
            _cast(part, typ)
        except _CAST_ERRORS:
            _find_bad(part, typ, base + start, out)


def _convert(arr: pa.Array, typ: pa.DataType) -> tuple[pa.Array, dict[int, str]]:
    """Cast ``arr``; bad rows become null and are returned as ``{row: reason}``."""
    try:
        return _cast(arr, typ), {}
    except _CAST_ERRORS:
        pass
    bad: dict[int, str] = {}
    _find_bad(arr, typ, 0, bad)
    mask = pa.array([i in bad for i in range(len(arr))])
    cleaned = pc.if_else(mask, pa.scalar(None, arr.type), arr)
    return _cast(cleaned, typ), bad


def _value_text(arr: pa.Array, row: int) -> str:
    value = arr[row].as_py()
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


@dataclass
class _Chunk:
    """Converted columns of consecutive rows, with the rows that failed and their lines."""

    arrays: list[pa.Array]
    bad: dict[int, str] = field(default_factory=dict)
    lines: Callable[[int], int | None] = lambda row: None


def _convert_columns(raw: Sequence[pa.Array], target: pa.Schema) -> tuple[list[pa.Array], dict[int, str]]:
    arrays: list[pa.Array] = []
    bad: dict[int, str] = {}
    for index, (arr, fld) in enumerate(zip(raw, target, strict=True)):
        converted, column_bad = _convert(arr, fld.type)
        arrays.append(converted)
        for row, reason in column_bad.items():
            where = f"column {index} ({fld.name} {fld.type})"
            bad.setdefault(row, f"Invalid value '{_value_text(arr, row)}' for {where}: {reason}")
    return arrays, bad


def _emit(chunk: _Chunk, target: pa.Schema, sink: _Sink) -> pa.RecordBatch | None:
    """Report the chunk's errors in row order (ON_ERROR may raise) and keep the good rows."""
    batch = pa.RecordBatch.from_arrays(chunk.arrays, schema=target)
    if not chunk.bad:
        return batch
    for row in sorted(chunk.bad):
        sink.row_error(chunk.lines(row), chunk.bad[row])
    keep = pa.array([i not in chunk.bad for i in range(batch.num_rows)])
    good = batch.filter(keep)
    return good if good.num_rows else None


# ---------------------------------------------------------------------------------------------
# CSV / TSV


@dataclass(frozen=True)
class _CsvDialect:
    tsv: bool
    delimiter: str
    quote: str | None
    escape: str | None
    skip_header: int
    null_display: str
    empty_as_null: bool
    error_on_mismatch: bool
    trim: bool
    nan_display: str | None


def _csv_dialect(options: Mapping[str, str]) -> _CsvDialect:
    tsv = options.get("TYPE", "CSV").upper() in {"TSV", "TEXT"}
    delimiter = unescape_option(options.get("FIELD_DELIMITER", "\\t" if tsv else ","))
    if len(delimiter) != 1:
        raise StageError(f"FIELD_DELIMITER must be one character here, got '{options['FIELD_DELIMITER']}'")
    record = unescape_option(options.get("RECORD_DELIMITER", "\\n"))
    if record not in {"\n", "\r\n"}:
        raise StageError("RECORD_DELIMITER must be '\\n' or '\\r\\n'")
    quote = None if tsv else unescape_option(options.get("QUOTE", '"')) or None
    escape = "\\" if tsv else unescape_option(options.get("ESCAPE", "")) or None
    for name, value in (("QUOTE", quote), ("ESCAPE", escape)):
        if value is not None and len(value) != 1:
            raise StageError(f"{name} must be a single character")
    empty = _choice_option(
        options, "EMPTY_FIELD_AS", "FIELD_DEFAULT" if tsv else "NULL", {"NULL", "STRING", "FIELD_DEFAULT"}
    )
    nan = options.get("NAN_DISPLAY")
    return _CsvDialect(
        tsv=tsv,
        delimiter=delimiter,
        quote=quote,
        escape=escape,
        skip_header=_int_option(options, "SKIP_HEADER"),
        null_display=unescape_option(options.get("NULL_DISPLAY", "\\N")) if not tsv else "\\N",
        empty_as_null=empty != "STRING",  # FIELD_DEFAULT -> NULL here; the INSERT applies defaults
        error_on_mismatch=_bool_option(options, "ERROR_ON_COLUMN_COUNT_MISMATCH", True),
        trim=_bool_option(options, "TRIM_SPACE", False),
        nan_display=None if nan is None or nan in _ARROW_NAN else nan,
    )


def _int_option(options: Mapping[str, str], name: str) -> int:
    value = options.get(name, "0").strip()
    if not value.isdigit():
        raise StageError(f"{name} must be a non-negative integer, got '{value}'")
    return int(value)


_ARROW_CSV_TYPES: tuple[Callable[[pa.DataType], bool], ...] = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_boolean,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_date,
    pa.types.is_timestamp,
    pa.types.is_decimal,
    pa.types.is_time,
    pa.types.is_null,
)


def _needs_staging(typ: pa.DataType, dialect: _CsvDialect) -> bool:
    """Columns read as text and converted by us (after trimming/NaN/escape handling)."""
    if dialect.trim:
        return True
    if dialect.nan_display is not None and pa.types.is_floating(typ):
        return True
    if dialect.tsv and (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        return True  # backslash escapes must be decoded; Arrow would only drop the backslash
    return not any(check(typ) for check in _ARROW_CSV_TYPES)


def _stage_text(arr: pa.Array, typ: pa.DataType, dialect: _CsvDialect) -> pa.Array:
    """Vectorised text clean-up before the cast (fast path); nulls are already applied."""
    if dialect.trim:
        arr = pc.utf8_trim(arr, " ")
        nulls = [dialect.null_display] + ([""] if dialect.empty_as_null else [])
        arr = pc.if_else(pc.is_in(arr, pa.array(nulls)), pa.scalar(None, pa.string()), arr)
    if dialect.nan_display is not None and pa.types.is_floating(typ):
        arr = pc.if_else(pc.equal(arr, dialect.nan_display), "NaN", arr)
    if dialect.tsv and pc.any(pc.match_substring(arr, "\\")).as_py():
        arr = pa.array([None if v is None else _tsv_unescape(v) for v in arr.to_pylist()], pa.string())
    return arr


def _tsv_unescape(text: str) -> str:
    return _TSV_ESCAPE_RE.sub(lambda m: _TSV_ESCAPES.get(m[1], m[1]), text)


def _reject_row(row: Any) -> str:
    # Any invalid row (column count) sends the file to the careful path, which knows its line.
    return "error"


def _csv_arrow_options(
    dialect: _CsvDialect, names: list[str], types: list[pa.DataType], batch_rows: int
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    read = pacsv.ReadOptions(skip_rows=dialect.skip_header, column_names=names, block_size=_CSV_BLOCK_BYTES)
    parse = pacsv.ParseOptions(
        delimiter=dialect.delimiter,
        quote_char=dialect.quote or False,
        double_quote=dialect.quote is not None,
        escape_char=False if dialect.tsv else (dialect.escape or False),
        newlines_in_values=dialect.quote is not None,
        invalid_row_handler=_reject_row,
    )
    fast_types = [pa.string() if _needs_staging(t, dialect) else t for t in types]
    convert = pacsv.ConvertOptions(
        column_types=dict(zip(names, fast_types, strict=True)),
        null_values=[dialect.null_display] + ([""] if dialect.empty_as_null else []),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=_TRUE_VALUES,
        false_values=_FALSE_VALUES,
    )
    return read, parse, convert


class _CsvFile:
    """One CSV/TSV file: the fast Arrow scan, and the careful fallback that resumes after it."""

    def __init__(
        self,
        backend: StorageBackend,
        key: str,
        options: Mapping[str, str],
        target: pa.Schema,
        sink: _Sink,
        batch_rows: int,
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.batch_rows = batch_rows
        self.dialect = _csv_dialect(options)
        self.codec = _codec(options, key)
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
        read, parse, convert = _csv_arrow_options(
            self.dialect, self.names, list(self.target.types), self.batch_rows
        )
        if self.codec == _ext_codec(self.key):
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
            if _needs_staging(fld.type, self.dialect):
                arr = _stage_text(arr, fld.type, self.dialect)
            try:
                columns.append(_cast(arr, fld.type))
            except _CAST_ERRORS as exc:
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
                batch = _emit(self._chunk([r for _, r in block]), self.target, self.sink)
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

    def _chunk(self, rows: list[tuple[int, list[str]]]) -> _Chunk:
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
            _stage_text(a, f.type, self.dialect) if _needs_staging(f.type, self.dialect) else a
            for a, f in zip(raw, self.target, strict=True)
        ]
        arrays, cast_bad = _convert_columns(staged, self.target)
        for row, message in cast_bad.items():
            bad.setdefault(row, message)
        return _Chunk(arrays, bad, lambda row: rows[row][0])

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
    """NDJSON matched by name. Parsed with ``json`` per line: pyarrow's reader cannot tell a missing
    key from an explicit null, which MISSING_FIELD_AS=ERROR needs."""

    def __init__(
        self,
        backend: StorageBackend,
        key: str,
        options: Mapping[str, str],
        target: pa.Schema,
        sink: _Sink,
        case_sensitive: bool,
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.codec = _codec(options, key)
        self.case_sensitive = case_sensitive
        self.missing = _choice_option(options, "MISSING_FIELD_AS", "ERROR", _MISSING_CHOICES)
        _choice_option(options, "NULL_FIELD_AS", "NULL", {"NULL", "FIELD_DEFAULT"})  # both mean null here
        self.keys = [f.name if case_sensitive else f.name.lower() for f in target]

    def batches(self) -> Iterator[pa.RecordBatch]:
        with _open_stream(self.backend, self.key, self.codec) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n")
            lines = ((n, s) for n, s in enumerate(text, start=1) if s.strip())
            while True:
                block = list(zip(range(_CAREFUL_ROWS), lines, strict=False))
                if not block:
                    return
                batch = _emit(self._chunk([item for _, item in block]), self.target, self.sink)
                if batch is not None:
                    yield batch

    def _chunk(self, lines: list[tuple[int, str]]) -> _Chunk:
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
        return _Chunk(arrays, bad, lambda row: lines[row][0])

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


def _py_column(values: list[Any], typ: pa.DataType) -> tuple[pa.Array, dict[int, str]]:
    """Python values -> Arrow; per value only when the vectorised build fails."""
    try:
        return pa.array(values, typ), {}
    except _CAST_ERRORS:
        pass
    out: list[Any] = []
    bad: dict[int, str] = {}
    for row, value in enumerate(values):
        try:
            out.append(_py_value(value, typ))
        except _CAST_ERRORS as exc:
            bad[row] = f"'{str(value)[:64]}': {exc}"
            out.append(None)
    return pa.array(out, typ), bad


def _py_value(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str):
        return _cast(pa.array([value]), typ)[0]
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
        sink: _Sink,
        case_sensitive: bool,
        batch_rows: int,
    ) -> None:
        self.backend, self.key, self.target, self.sink = backend, key, target, sink
        self.case_sensitive, self.batch_rows = case_sensitive, batch_rows
        self.missing = _choice_option(options, "MISSING_FIELD_AS", "ERROR", _MISSING_CHOICES)

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
        arrays, bad = _convert_columns(source, self.target)
        return _emit(_Chunk(arrays, bad, lambda row: offset + row + 1), self.target, self.sink)


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
    sink = _Sink(stats, on_error, display_name)
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
    sink: _Sink,
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


def _safe(batches: Iterator[pa.RecordBatch], sink: _Sink) -> Iterator[pa.RecordBatch]:
    """A file-level error under CONTINUE/ABORT_N ends the file quietly (it is already counted)."""
    try:
        yield from batches
    except _SkipFile:
        return


def _skip_file_batches(
    factory: Callable[[], Iterator[pa.RecordBatch]], sink: _Sink
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
    except _SkipFile:
        return
    if buffered is not None:
        yield from buffered
        return
    errors = sink.stats.errors_seen
    sink.stats.errors_seen, sink.stats.first_error, sink.stats.first_error_line = 0, None, None
    try:
        yield from factory()
    except _SkipFile:  # the file changed between the passes; keep what the first pass decided
        return
    sink.stats.errors_seen = max(errors, sink.stats.errors_seen)
