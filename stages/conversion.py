"""Casting read columns to the target types, with the rows that fail and why.

Shared by every format's careful path: bad values become errors with positions, not a failed file.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from stages.on_error import ErrorSink

_BISECT_LEAF = 16
CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError)


# An ISO 8601 zone designator after the time of day: 'Z', '+02', '+0200', '+02:00'.
_ZONE_SUFFIX = r"^(.*\d:\d\d(?::\d\d(?:\.\d*)?)?)\s*(?:Z|z|[+-]\d\d(?::?\d\d)?)$"


def cast_array(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    if arr.type == typ:
        return arr
    if pa.types.is_time(typ) and pa.types.is_string(arr.type):
        # Arrow has no string -> time cast; a date prefix turns the value into a timestamp.
        stamped = pc.binary_join_element_wise("1970-01-01 ", arr, "")
        return stamped.cast(pa.timestamp(typ.unit)).cast(typ)
    if pa.types.is_timestamp(typ) and pa.types.is_string(arr.type):
        return _text_to_timestamp(arr, typ)
    if pa.types.is_boolean(typ) and pa.types.is_string(arr.type):
        return _text_to_boolean(arr)
    return arr.cast(typ, safe=True)


# CSV's BINARY_FORMAT: how binary values are written as text (Databend's default is HEX).
BINARY_FORMATS = {"HEX", "BASE64"}


def is_binary(typ: pa.DataType) -> bool:
    return pa.types.is_binary(typ) or pa.types.is_large_binary(typ)


def decode_binary(arr: pa.Array, binary_format: str) -> tuple[pa.Array, dict[int, str]]:
    """Texts to bytes as BINARY_FORMAT says; bad rows become null and are returned as ``{row: reason}``.

    Per value in Python: Arrow has no hex or base64 kernel, and binary columns are rare in CSV.
    """
    decode = bytes.fromhex if binary_format == "HEX" else _from_base64
    values: list[bytes | None] = []
    bad: dict[int, str] = {}
    for row, text in enumerate(arr.to_pylist()):
        if text is None:
            values.append(None)
            continue
        try:
            values.append(decode(text))
        except ValueError:  # binascii.Error is one
            values.append(None)
            bad[row] = f"not valid {binary_format}"
    return pa.array(values, pa.binary()), bad


def encode_binary(arr: pa.Array, binary_format: str) -> pa.Array:
    """Bytes to texts as BINARY_FORMAT says (nulls stay null)."""
    if binary_format == "HEX":
        return pa.array([None if v is None else v.hex() for v in arr.to_pylist()], pa.string())
    return pa.array(
        [None if v is None else base64.b64encode(v).decode() for v in arr.to_pylist()], pa.string()
    )


def _from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


# Arrow shows DuckDB's JSON columns as plain strings; the engine marks them on the target schema.
JSON_FIELD_METADATA = {b"stageflight.type": b"JSON"}


def is_json_field(fld: pa.Field) -> bool:
    return bool(fld.metadata) and fld.metadata.get(b"stageflight.type") == b"JSON"


# What DuckDB's cast to BOOLEAN accepts, in any letter case.
TRUE_TEXTS = ("true", "t", "yes", "y", "1")
FALSE_TEXTS = ("false", "f", "no", "n", "0")


def _text_to_boolean(arr: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(arr)
    true = pc.is_in(lowered, value_set=pa.array(TRUE_TEXTS))
    false = pc.is_in(lowered, value_set=pa.array(FALSE_TEXTS))
    invalid = pc.and_(pc.is_valid(arr), pc.invert(pc.or_(true, false)))
    if pc.any(invalid).as_py():
        first = pc.filter(arr, invalid)[0].as_py()
        raise pa.ArrowInvalid(f"Could not convert '{first}' to BOOLEAN")
    return pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))


def _text_to_timestamp(arr: pa.Array, typ: pa.TimestampType) -> pa.Array:
    """Arrow insists on a zone offset exactly when the type has a zone; DuckDB and Snowflake do not.

    TIMESTAMP ignores a written offset (the wall time is kept); TIMESTAMPTZ reads a value written
    without one in the column's zone.
    """
    try:
        return arr.cast(typ, safe=True)
    except pa.ArrowInvalid:
        if typ.tz is None:
            return pc.replace_substring_regex(arr, _ZONE_SUFFIX, r"\1").cast(typ, safe=True)
        naive = arr.cast(pa.timestamp(typ.unit), safe=True)
        return pc.assume_timezone(naive, typ.tz).cast(typ)


def null_if_array(values: Sequence[str]) -> pa.Array | None:
    """NULL_IF values as an Arrow value set (None when there are none)."""
    return pa.array(values, pa.string()) if values else None


def apply_null_if(column: pa.Array | pa.ChunkedArray, null_if: pa.Array | None) -> pa.Array | pa.ChunkedArray:
    """String values listed in NULL_IF become NULL; other types are left alone (Databend)."""
    if null_if is None or not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    listed = pc.is_in(column, value_set=null_if.cast(column.type))
    return pc.if_else(listed, pa.scalar(None, column.type), column)


def _find_bad(arr: pa.Array, typ: pa.DataType, base: int, out: dict[int, str]) -> None:
    """Bisect ``arr`` down to the rows whose cast fails: O(bad * log n) casts, all vectorised."""
    if len(arr) <= _BISECT_LEAF:
        for i in range(len(arr)):
            try:
                cast_array(arr.slice(i, 1), typ)
            except CAST_ERRORS as exc:
                out[base + i] = str(exc)
        return
    mid = len(arr) // 2
    for start, part in ((0, arr.slice(0, mid)), (mid, arr.slice(mid))):
        try:
            cast_array(part, typ)
        except CAST_ERRORS:
            _find_bad(part, typ, base + start, out)


def _convert(arr: pa.Array, typ: pa.DataType) -> tuple[pa.Array, dict[int, str]]:
    """Cast ``arr``; bad rows become null and are returned as ``{row: reason}``."""
    try:
        return cast_array(arr, typ), {}
    except CAST_ERRORS:
        pass
    bad: dict[int, str] = {}
    _find_bad(arr, typ, 0, bad)
    mask = pa.array([i in bad for i in range(len(arr))])
    cleaned = pc.if_else(mask, pa.scalar(None, arr.type), arr)
    return cast_array(cleaned, typ), bad


def _value_text(arr: pa.Array, row: int) -> str:
    value = arr[row].as_py()
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


@dataclass
class Chunk:
    """Converted columns of consecutive rows, with the rows that failed and their lines."""

    arrays: list[pa.Array]
    bad: dict[int, str] = field(default_factory=dict)
    lines: Callable[[int], int | None] = lambda row: None


def convert_columns(raw: Sequence[pa.Array], target: pa.Schema) -> tuple[list[pa.Array], dict[int, str]]:
    arrays: list[pa.Array] = []
    bad: dict[int, str] = {}
    for index, (arr, fld) in enumerate(zip(raw, target, strict=True)):
        converted, column_bad = _convert(arr, fld.type)
        arrays.append(converted)
        for row, reason in column_bad.items():
            bad.setdefault(row, bad_value_message(arr, row, index, fld, reason))
    return arrays, bad


def bad_value_message(arr: pa.Array, row: int, index: int, fld: pa.Field, reason: str) -> str:
    """What a row error says about a value that does not fit its column."""
    return f"Invalid value '{_value_text(arr, row)}' for column {index} ({fld.name} {fld.type}): {reason}"


def emit_chunk(chunk: Chunk, target: pa.Schema, sink: ErrorSink) -> pa.RecordBatch | None:
    """Report the chunk's errors in row order (ON_ERROR may raise) and keep the good rows."""
    batch = pa.RecordBatch.from_arrays(chunk.arrays, schema=target)
    if not chunk.bad:
        return batch
    for row in sorted(chunk.bad):
        sink.row_error(chunk.lines(row), chunk.bad[row])
    keep = pa.array([i not in chunk.bad for i in range(batch.num_rows)])
    good = batch.filter(keep)
    return good if good.num_rows else None
