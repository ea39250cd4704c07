"""NDJSON files for COPY: matched to the target columns by name, with Databend's missing-field rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson

from stages.conversion import (
    CAST_ERRORS,
    Chunk,
    apply_null_if,
    cast_array,
    emit_chunk,
    is_json_field,
    null_if_array,
)
from stages.file_read import CAREFUL_ROWS, FileRead
from stages.formats import MISSING_FIELD_CHOICES, NULL_FIELD_CHOICES, compression_codec, open_stream
from stages.options import choice_option, null_if_option

_JSON_BLOCK_BYTES = 8 << 20  # NDJSON is read in blocks of whole lines; each is fast or careful
_NON_BLANK_LINE = re.compile(rb"^[ \t\r\f\v]*[^\s]", re.M)
_BLANK_LINE_INSIDE = re.compile(rb"\n[ \t\r\f\v]*\n")
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r\f\v]*(?:\n|\Z)")


class NdjsonFile:
    """NDJSON matched by name, a block of whole lines at a time: pyarrow's JSON reader when the block
    is plain, else ``json`` per line (the careful path, with line numbers and ON_ERROR).

    A block goes careful whenever Arrow could read it differently: pyarrow cannot tell a missing key
    from an explicit null (MISSING_FIELD_AS=ERROR), matches names exactly, accepts two objects on one
    line, and parses values by its own rules.
    """

    def __init__(self, file: FileRead) -> None:
        self.file, self.target = file, file.target
        options = file.options
        self.codec = compression_codec(options, file.key)
        self.case_sensitive = file.case_sensitive
        self.missing = choice_option(options, "MISSING_FIELD_AS", "ERROR", MISSING_FIELD_CHOICES)
        null_field = choice_option(options, "NULL_FIELD_AS", "NULL", NULL_FIELD_CHOICES)
        # Python values that stand in for a missing key / an explicit null (FIELD_DEFAULT: the default).
        values = [_default_value(f, file.defaults.get(f.name)) for f in self.target]
        self.missing_values = values if self.missing == "FIELD_DEFAULT" else [None] * len(values)
        self.null_values = values if null_field == "FIELD_DEFAULT" else [None] * len(values)
        self.keys = [f.name if self.case_sensitive else f.name.lower() for f in self.target]
        self.fast_types = _json_fast_types(self.target)
        self.null_if = frozenset(null_if_option(options))  # JSON strings that load as NULL
        self.null_if_array = null_if_array(sorted(self.null_if))

    def batches(self) -> Iterator[pa.RecordBatch]:
        line = 1  # the first line of the next block
        with open_stream(self.file.backend, self.file.key, self.codec) as stream:
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
            read = pajson.ReadOptions(use_threads=self.file.use_threads)
            raw = pajson.read_json(pa.BufferReader(block), read_options=read, parse_options=parse)
        except pa.ArrowInvalid:
            return None
        if raw.num_rows != records:
            return None  # e.g. two objects on one line, which json.loads refuses
        if not self.case_sensitive:
            wanted = {f.name for f in self.target}
            if any(n not in wanted and n.lower() in self.keys for n in raw.column_names):
                return None  # the careful path matches that key case-insensitively
        columns = []
        for i, fld in enumerate(self.target):
            column = raw.column(fld.name)
            distinguish = self.missing == "ERROR" or self.missing_values[i] is not None
            if column.null_count and (distinguish or self.null_values[i] is not None):
                return None  # a missing key or an explicit null: only the careful path can tell
            try:
                columns.append(cast_array(apply_null_if(column, self.null_if_array), fld.type))
            except CAST_ERRORS:
                return None
        return pa.Table.from_arrays(columns, schema=self.target)

    def _careful(self, block: bytes, first_line: int) -> Iterator[pa.RecordBatch]:
        text = block.decode("utf-8", errors="replace").split("\n")
        lines = [(n, s) for n, s in enumerate(text, start=first_line) if s.strip()]
        for start in range(0, len(lines), CAREFUL_ROWS):
            batch = emit_chunk(self._chunk(lines[start : start + CAREFUL_ROWS]), self.target, self.file.sink)
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
            if is_json_field(fld):  # a JSON column keeps the value's JSON text, strings quoted
                column = [None if v is None else json.dumps(v, ensure_ascii=False) for v in column]
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
        values = [
            (record[key] if record[key] is not None else null) if key in record else missing
            for key, missing, null in zip(self.keys, self.missing_values, self.null_values, strict=True)
        ]
        if self.null_if:
            values = [None if isinstance(v, str) and v in self.null_if else v for v in values]
        return values, None


def _default_value(fld: pa.Field, default: pa.Scalar | None) -> Any:
    """A column default as a value read from JSON (a JSON column's default is JSON text already)."""
    value = None if default is None else default.as_py()
    return json.loads(value) if value is not None and is_json_field(fld) else value


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
    for fld in target:
        typ = fld.type
        if is_json_field(fld):
            return None  # pyarrow cannot hand back a value's JSON text
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
    if pa.types.is_decimal(typ) and isinstance(value, float):
        return Decimal(repr(value))  # the number as written, not its binary approximation
    return pa.array([value], typ)[0]
