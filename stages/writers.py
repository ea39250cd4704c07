"""COPY INTO <location>: stream an Arrow result into stage files with Databend naming.

Names follow stage-semantics.md §1.5: ``<folder>/data_<query_id>_<group:0000>_<batch:00000000>.<ext>``
(``.csv``, ``.txt`` for TSV/TEXT, ``.ndjson``, ``.parquet``, plus ``.gz``/``.zst``/... for
compressed text formats). Every file is written through ``StorageBackend.open_output`` (atomic,
streamed); a file is closed at a batch boundary once it exceeds ``max_file_size``.

An empty result writes no file (Databend does the same), so the returned list is empty.
"""

from __future__ import annotations

import itertools
import json
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, BinaryIO, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stages.conversion import BINARY_FORMATS, encode_binary, is_binary
from stages.errors import StageError
from stages.options import bool_option, choice_option, unescape_option
from stages.storage.base import StorageBackend

__all__ = ["UnloadedFile", "unload", "unload_extension"]

DEFAULT_MAX_FILE_SIZE = 64 << 20
_TEXT_CODECS = {"NONE": None, "GZIP": "gzip", "ZSTD": "zstd", "BZ2": "bz2", "LZ4": "lz4", "BROTLI": "brotli"}
_CODEC_EXT = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", "lz4": ".lz4", "brotli": ".br"}
_PARQUET_CODECS = {"ZSTD": "zstd", "SNAPPY": "snappy", "NONE": "none", "GZIP": "gzip", "LZ4": "lz4"}
_QUOTE_STYLES = {"QUOTE_NOT_NULL", "QUOTE_MINIMAL"}  # CSV unload: Databend's QUOTE_STYLE
_FORMAT_EXT = {"CSV": ".csv", "TSV": ".txt", "TEXT": ".txt", "NDJSON": ".ndjson", "PARQUET": ".parquet"}
# TSV escapes, backslash first so the backslashes added by later rules are not doubled.
_TSV_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


@dataclass(frozen=True)
class UnloadedFile:
    """One written file; ``name`` is relative to the stage root (what LIST shows)."""

    name: str
    size: int
    rows: int


class _BatchWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Plan:
    kind: str
    options: Mapping[str, str]
    codec: str | None  # text formats only; Parquet compresses internally
    extension: str


def unload_extension(options: Mapping[str, str]) -> str:
    """The file suffix for these format options, e.g. ``.csv.gz`` or ``.parquet``."""
    return _plan(options).extension


def _plan(options: Mapping[str, str]) -> _Plan:
    kind = options.get("TYPE", "PARQUET").upper()
    if kind not in _FORMAT_EXT:
        raise StageError(f"Unknown file format TYPE: {kind}")
    compression = options.get("COMPRESSION", "ZSTD" if kind == "PARQUET" else "NONE").strip().upper()
    if kind == "PARQUET":
        if compression not in _PARQUET_CODECS:
            raise StageError(f"COMPRESSION {compression} is not supported for PARQUET unload (ZSTD | SNAPPY)")
        return _Plan(kind, options, None, ".parquet")
    if compression == "AUTO":
        compression = "GZIP"  # Databend: AUTO means gzip when writing
    if compression not in _TEXT_CODECS:
        raise StageError(f"COMPRESSION {compression} is not supported for {kind} unload")
    codec = _TEXT_CODECS[compression]
    return _Plan(kind, options, codec, _FORMAT_EXT[kind] + (_CODEC_EXT[codec] if codec else ""))


# ---------------------------------------------------------------------------------------------
# Naming


def _file_names(location_path: str, plan: _Plan, *, query_id: str, include_query_id: bool) -> _Namer:
    """``''``, ``'a'`` and ``'a/'`` mean a folder; a last segment ending in ``_`` is a name prefix."""
    path = location_path.lstrip("/")
    if path.endswith("_"):
        base = path
    else:
        folder = path.rstrip("/")
        base = f"{folder}/data_" if folder else "data_"
    if include_query_id:
        base += f"{query_id}_"
    return _Namer(base, plan.extension)


@dataclass(frozen=True)
class _Namer:
    base: str
    extension: str

    def name(self, batch: int, group: int = 0) -> str:
        return f"{self.base}{group:04d}_{batch:08d}{self.extension}"


def _check_modes(
    location_path: str, *, single: bool, overwrite: bool, use_raw_path: bool, include_query_id: bool
) -> None:
    if use_raw_path and not single:
        raise StageError("USE_RAW_PATH=TRUE requires SINGLE=TRUE")
    if use_raw_path and (not location_path.strip("/") or location_path.endswith("/")):
        raise StageError("USE_RAW_PATH=TRUE requires a file path, not a folder")
    if overwrite and not (use_raw_path and not include_query_id):
        raise StageError("OVERWRITE=TRUE requires USE_RAW_PATH=TRUE and INCLUDE_QUERY_ID=FALSE")


def _join(stage_prefix: str, name: str) -> str:
    if not stage_prefix:
        return name
    return stage_prefix if not name else f"{stage_prefix.rstrip('/')}/{name}"


# ---------------------------------------------------------------------------------------------
# Output plumbing


class _CountingSink:
    """File-like wrapper that counts bytes; ``close`` leaves the storage stream to its context."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.size, self.closed = raw, 0, False

    def write(self, data: bytes | memoryview | pa.Buffer) -> int:
        view = memoryview(data)
        self.raw.write(view)
        self.size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self.raw.flush()

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class _CsvBatchWriter:
    """CSV as Databend writes it: QUOTE_STYLE = QUOTE_NOT_NULL (default) quotes every non-NULL field,
    QUOTE_MINIMAL only the fields that need it; binary columns as BINARY_FORMAT text."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        if unescape_option(options.get("QUOTE", '"')) != '"':
            raise StageError("QUOTE other than '\"' is not supported for CSV unload")
        self._stream = stream
        self._binary_format = choice_option(options, "BINARY_FORMAT", "HEX", BINARY_FORMATS)
        self._binary = [i for i, f in enumerate(schema) if is_binary(f.type)]
        for i in self._binary:  # written as text
            schema = schema.set(i, schema.field(i).with_type(pa.string()))
        self._schema = schema
        self._delimiter = _one_char(options, "FIELD_DELIMITER", ",")
        self._eol = _eol(options)
        self._null = unescape_option(options.get("NULL_DISPLAY", "\\N"))
        header = bool_option(options, "OUTPUT_HEADER", False)
        style = choice_option(options, "QUOTE_STYLE", "QUOTE_NOT_NULL", _QUOTE_STYLES)
        # Arrow's writer has no "minimal" style ("needed" quotes every string): that one is ours.
        self._writer: pacsv.CSVWriter | None = None
        if style == "QUOTE_MINIMAL":
            # Quoted: the delimiter, quotes and line breaks; also '' and the NULL text, which would
            # otherwise read back as NULL.
            self._special = "[" + re.escape(self._delimiter + '"\r\n') + "]"
            if header:
                names = self._quote_where_needed(pa.array(schema.names, pa.string())).to_pylist()
                stream.write((self._delimiter.join(names) + self._eol).encode())
        else:
            write_options = pacsv.WriteOptions(
                include_header=header,
                delimiter=self._delimiter,
                eol=self._eol,
                null_string=self._null,
                quoting_style="all_valid",
            )
            self._writer = pacsv.CSVWriter(stream, schema, write_options=write_options)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._binary:
            columns = list(batch.columns)
            for i in self._binary:
                columns[i] = encode_binary(columns[i], self._binary_format)
            batch = pa.RecordBatch.from_arrays(columns, schema=self._schema)
        if self._writer is not None:
            self._writer.write_batch(batch)
            return
        fields = []
        for column in batch.columns:
            text = column if pa.types.is_string(column.type) else column.cast(pa.string())
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                text = self._quote_where_needed(text)
            fields.append(pc.fill_null(text, self._null))
        self._stream.write(_values(self._line(fields)))

    def _quote_where_needed(self, text: pa.Array) -> pa.Array:
        needed = pc.or_(
            pc.match_substring_regex(text, self._special),
            pc.is_in(text, value_set=pa.array(["", self._null], pa.string())),
        )
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        return pc.if_else(needed, quoted, text)

    def _line(self, fields: list[pa.Array]) -> pa.Array:
        # No nulls remain, so the data buffer holds the lines back to back.
        lines = pc.binary_join_element_wise(*fields, self._delimiter)
        return pc.binary_join_element_wise(lines, "", self._eol)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _TsvBatchWriter:
    """Tab separated, no quoting, backslash escapes, ``\\N`` for NULL; built column-wise."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        self._stream, self._schema = stream, schema
        self._delimiter = _one_char(options, "FIELD_DELIMITER", "\t")
        self._eol = _eol(options)
        if bool_option(options, "OUTPUT_HEADER", False):
            header = self._delimiter.join(_tsv_escape_text(name) for name in schema.names)
            stream.write((header + self._eol).encode())

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [_tsv_column(column) for column in batch.columns]
        lines = pc.binary_join_element_wise(*columns, self._delimiter)
        # No nulls remain, so the data buffer holds the lines back to back.
        lines = pc.binary_join_element_wise(lines, "", self._eol)
        self._stream.write(_values(lines))

    def close(self) -> None:
        pass


def _values(strings: pa.Array) -> pa.Buffer:
    """The concatenated bytes of a null-free string array (zero copy)."""
    buffers = strings.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(strings) + 1, [None, buffers[1]], offset=strings.offset)
    return buffers[2][offsets[0].as_py() : offsets[-1].as_py()]


def _tsv_column(column: pa.Array) -> pa.Array:
    text = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        for plain, escaped in _TSV_ESCAPES:
            text = pc.replace_substring(text, plain, escaped)
    return pc.fill_null(text, "\\N")


def _tsv_escape_text(text: str) -> str:
    for plain, escaped in _TSV_ESCAPES:
        text = text.replace(plain, escaped)
    return text


class _NdjsonBatchWriter:
    """One JSON object per line (Python per row: unload of NDJSON is not a hot path)."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        self._stream = stream

    def write(self, batch: pa.RecordBatch) -> None:
        lines = [json.dumps(row, default=_json_default, ensure_ascii=False) for row in batch.to_pylist()]
        self._stream.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        pass


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class _ParquetBatchWriter:
    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        codec = _PARQUET_CODECS[options.get("COMPRESSION", "ZSTD").strip().upper()]
        self._writer = pq.ParquetWriter(stream, schema, compression=codec)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


_WRITERS: dict[str, type[_CsvBatchWriter | _TsvBatchWriter | _NdjsonBatchWriter | _ParquetBatchWriter]] = {
    "CSV": _CsvBatchWriter,
    "TSV": _TsvBatchWriter,
    "TEXT": _TsvBatchWriter,
    "NDJSON": _NdjsonBatchWriter,
    "PARQUET": _ParquetBatchWriter,
}


def _one_char(options: Mapping[str, str], name: str, default: str) -> str:
    value = unescape_option(options[name]) if name in options else default
    if len(value) != 1:
        raise StageError(f"{name} must be one character for unload")
    return value


def _eol(options: Mapping[str, str]) -> str:
    value = unescape_option(options.get("RECORD_DELIMITER", "\\n"))
    if value not in {"\n", "\r\n"}:
        raise StageError("RECORD_DELIMITER must be '\\n' or '\\r\\n'")
    return value


class _OpenFile:
    """One output file: storage stream -> byte counter -> optional compression -> format writer."""

    def __init__(self, backend: StorageBackend, key: str, name: str, plan: _Plan, schema: pa.Schema) -> None:
        self.name, self.rows = name, 0
        self._context: AbstractContextManager[BinaryIO] = backend.open_output(key)
        self._counter = _CountingSink(self._context.__enter__())
        try:
            self._file = pa.PythonFile(self._counter, mode="w")
            self._stream = pa.CompressedOutputStream(self._file, plan.codec) if plan.codec else self._file
            self._writer: _BatchWriter = _WRITERS[plan.kind](self._stream, schema, plan.options)
        except BaseException as exc:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            raise

    @property
    def size(self) -> int:
        return self._counter.size

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write(batch)
        self.rows += batch.num_rows

    def finish(self) -> UnloadedFile:
        try:
            self._writer.close()
            self._stream.close()
        except BaseException as exc:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._context.__exit__(None, None, None)
        return UnloadedFile(self.name, self._counter.size, self.rows)

    def abort(self, exc: BaseException) -> None:
        """Discard the partial file (the backend drops its temporary file)."""
        try:
            # Closed now, the encoder cannot write to the discarded stream later (pyarrow's
            # ParquetWriter closes itself when collected).
            self._writer.close()
            self._stream.close()
        except BaseException:  # noqa: S110 - the file is being discarded anyway
            pass
        try:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException:  # noqa: S110 - the original error matters more
            pass


# ---------------------------------------------------------------------------------------------
# Entry point


def unload(
    reader: pa.RecordBatchReader,
    backend: StorageBackend,
    stage_prefix: str,
    location_path: str,
    options: Mapping[str, str],
    *,
    query_id: str,
    single: bool,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    overwrite: bool = False,
    use_raw_path: bool = False,
    include_query_id: bool = True,
    writers: int = 1,
) -> list[UnloadedFile]:
    """Write ``reader`` under ``stage_prefix`` + ``location_path``; return the files written.

    Args:
        stage_prefix: the storage key prefix of the stage root (``''`` or ending in ``'/'``).
        location_path: the path after ``@stage`` (``''``, ``'a'``, ``'a/'``, ``'a/data_'``, or a file
            name with ``use_raw_path``).
        options: normalised file format options; ``TYPE`` defaults to PARQUET.
        max_file_size: bytes; a new file starts at the next batch once a file exceeds it.
        writers: Parquet files written at once (see :func:`_write_parallel`); text formats and
            ``single`` always use one. Pass 1 when the rows' order across files matters (ORDER BY).

    Raises:
        StageError: invalid mode combination or option, or ``file already exists: <name>``.
    """
    plan = _plan(options)
    _check_modes(
        location_path,
        single=single,
        overwrite=overwrite,
        use_raw_path=use_raw_path,
        include_query_id=include_query_id,
    )
    if use_raw_path:
        names = None
        raw_name = location_path.lstrip("/")
    else:
        names = _file_names(location_path, plan, query_id=query_id, include_query_id=include_query_id)
        raw_name = ""

    def next_name(index: int) -> str:
        name = raw_name if names is None else names.name(index)
        if not overwrite and backend.exists(_join(stage_prefix, name)):
            raise StageError(f"file already exists: {name}")
        return name

    if writers > 1 and not single and plan.kind == "PARQUET":
        return _write_parallel(
            reader, backend, stage_prefix, plan, next_name, max_file_size=max_file_size, writers=writers
        )
    written = _write_files(
        reader,
        reader.schema,
        backend,
        stage_prefix,
        plan,
        _numbered(next_name),
        max_file_size=max_file_size,
        single=single,
    )
    return [f for _, f in written]


def _numbered(next_name: Callable[[int], str]) -> Callable[[], tuple[int, str]]:
    """Number and name of each next file, 0, 1, 2, ... in the order asked (thread-safe)."""
    numbers = itertools.count()
    lock = threading.Lock()

    def open_name() -> tuple[int, str]:
        with lock:
            index = next(numbers)
            return index, next_name(index)

    return open_name


def _write_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    backend: StorageBackend,
    stage_prefix: str,
    plan: _Plan,
    open_name: Callable[[], tuple[int, str]],
    *,
    max_file_size: int,
    single: bool,
) -> list[tuple[int, UnloadedFile]]:
    """Write ``batches`` into files opened one after another; (number, file) for each file written.

    ``open_name`` gives the next file's number and name. A file is closed at a batch boundary once it
    exceeds ``max_file_size`` (never with ``single``); on any error the unfinished file is discarded.
    """
    files: list[tuple[int, UnloadedFile]] = []
    current: tuple[int, _OpenFile] | None = None
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if current is None:
                index, name = open_name()
                current = (index, _OpenFile(backend, _join(stage_prefix, name), name, plan, schema))
            current[1].write(batch)
            if not single and current[1].size > max_file_size:
                files.append((current[0], current[1].finish()))
                current = None
        if current is not None:
            files.append((current[0], current[1].finish()))
            current = None
    except BaseException as exc:
        if current is not None:
            current[1].abort(exc)
        raise
    return files


class _Stopped(Exception):
    """Internal: another writer or the producer failed; this writer discards its unfinished file."""


def _write_parallel(
    reader: pa.RecordBatchReader,
    backend: StorageBackend,
    stage_prefix: str,
    plan: _Plan,
    next_name: Callable[[int], str],
    *,
    max_file_size: int,
    writers: int,
) -> list[UnloadedFile]:
    """Several Parquet files at once, each on its own thread, fed batches in arrival order.

    pyarrow encodes and compresses one file on one core; DuckDB's own COPY TO uses them all. Each
    file holds its rows in order, but consecutive batches may land in different files (as in
    Databend's and Snowflake's parallel unload). Files are numbered in the order they are opened.
    """
    feed: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2 * writers)
    lock = threading.Lock()
    open_name = _numbered(next_name)  # shared by the writers
    done: list[tuple[int, UnloadedFile]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        ended = False  # the producer's end marker was taken

        def fed() -> Iterator[pa.RecordBatch]:
            nonlocal ended
            while (batch := feed.get()) is not None:
                if stop.is_set():
                    raise _Stopped
                yield batch
            ended = True
            if stop.is_set():
                raise _Stopped  # the producer failed: the last file is not finished either

        try:
            written = _write_files(
                fed(),
                reader.schema,
                backend,
                stage_prefix,
                plan,
                open_name,
                max_file_size=max_file_size,
                single=False,
            )
            with lock:
                done.extend(written)
        except BaseException as exc:
            if not isinstance(exc, _Stopped):
                stop.set()
                with lock:
                    failures.append(exc)
            while not ended and feed.get() is not None:  # drain, so the producer never blocks
                pass

    threads = [threading.Thread(target=write, name=f"unload-{i}", daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    try:
        for batch in reader:
            if stop.is_set():
                break
            if batch.num_rows:
                feed.put(batch)
    except BaseException as exc:
        stop.set()
        failures.append(exc)
    finally:
        for _ in threads:
            feed.put(None)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return [f for _, f in sorted(done, key=lambda pair: pair[0])]
