"""CSV/TSV files for COPY: fields by position, Arrow's streaming reader first, Python's csv module
when Arrow meets a value it cannot account for (that path knows each row's line number)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stages.conversion import (
    CAST_ERRORS,
    Chunk,
    bad_value_message,
    cast_array,
    convert_columns,
    decode_binary,
    emit_chunk,
    is_binary,
)
from stages.csv_dialect import csv_arrow_options, csv_dialect, needs_staging, stage_text
from stages.file_read import CAREFUL_ROWS, FileRead
from stages.formats import compression_codec, open_stream


class _Restart(Exception):
    """Internal: the fast CSV path met something it cannot account for; re-read carefully."""


class CsvFile:
    """One CSV/TSV file: the fast Arrow scan, and the careful fallback that resumes after it."""

    def __init__(self, file: FileRead) -> None:
        self.file, self.target = file, file.target
        self.dialect = csv_dialect(file.options)
        # EMPTY_FIELD_AS, read before keeping_empty() below changes the null texts.
        dialect = self.dialect
        self.empty_as = (
            "FIELD_DEFAULT" if dialect.empty_as_default else "NULL" if "" in dialect.null_values else "STRING"
        )
        self.defaults = [file.defaults.get(f.name) for f in self.target]
        # EMPTY_FIELD_AS = FIELD_DEFAULT with defaults to use: empty fields are read as "" and filled.
        self.fill_empty = self.dialect.empty_as_default and any(d is not None for d in self.defaults)
        if self.fill_empty:
            self.dialect = self.dialect.keeping_empty()
        self.codec = compression_codec(file.options, file.key)
        self.names = [f"c{i}" for i in range(len(self.target))]

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
            self.dialect,
            self.names,
            list(self.target.types),
            as_text=self.fill_empty,
            use_threads=self.file.use_threads,
        )
        # Arrow's streaming CSV reader, not a dataset scan: fed into DuckDB, a dataset scan of one large
        # file grew the server's memory by about a quarter of the file's size (measured, pyarrow 26).
        with open_stream(self.file.backend, self.file.key, self.codec, self.file.options) as stream:
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
        with open_stream(self.file.backend, self.file.key, self.codec, self.file.options) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            rows = self._rows(text)
            for _ in zip(range(skip_rows), rows, strict=False):
                pass  # already delivered by the fast path
            while True:
                block = list(zip(range(CAREFUL_ROWS), rows, strict=False))
                if not block:
                    return
                batch = emit_chunk(self._chunk([r for _, r in block]), self.target, self.file.sink)
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


def _split_empty(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Empty texts become NULL; the mask says where they were (for the column default)."""
    empty = pc.fill_null(pc.equal(arr, ""), False)
    return pc.if_else(empty, pa.scalar(None, arr.type), arr), empty


def _fill(arr: pa.Array, where: pa.Array | None, default: pa.Scalar | None) -> pa.Array:
    """The column default where ``where`` is set (FIELD_DEFAULT); otherwise ``arr`` as it is."""
    if where is None or default is None:
        return arr
    return pc.if_else(where, default.cast(arr.type), arr)
