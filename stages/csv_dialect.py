"""The CSV/TSV dialect of a file format, and what it means for Arrow's CSV reader.

Option parsing, the Arrow read/parse/convert options, and the text clean-up Arrow cannot do. COPY,
``SELECT ... FROM @stage`` and INFER_SCHEMA all read CSV through :func:`csv_dialect` and
:func:`csv_arrow_options`, so one named file format reads the same rows everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stages.conversion import BINARY_FORMATS, FALSE_TEXTS, TRUE_TEXTS
from stages.errors import StageError
from stages.options import bool_option, choice_option, int_option, null_if_option, unescape_option

_CSV_BLOCK_BYTES = 1 << 20  # readahead holds ~40 blocks: larger blocks cost memory, not speed
_TSV_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "\\": "\\", "'": "'"}
_TSV_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
# Arrow matches these exactly; other letter cases send the file to cast_array, which ignores case.
_TRUE_VALUES = [v for t in TRUE_TEXTS for v in sorted({t, t.capitalize(), t.upper()})]
_FALSE_VALUES = [v for t in FALSE_TEXTS for v in sorted({t, t.capitalize(), t.upper()})]
_ARROW_NAN = {"NaN", "nan", "NAN"}


@dataclass(frozen=True)
class CsvDialect:
    tsv: bool
    delimiter: str
    record: str  # RECORD_DELIMITER: "\\n", "\\r\\n" or another single byte (see stages.records)
    quote: str | None
    escape: str | None
    skip_header: int
    error_on_mismatch: bool
    trim: bool
    nan_display: str | None
    # Unquoted field texts that load as NULL: NULL_DISPLAY, "" unless EMPTY_FIELD_AS = STRING, NULL_IF.
    null_values: tuple[str, ...]
    empty_as_default: bool = False  # EMPTY_FIELD_AS = FIELD_DEFAULT (TSV's default)
    null_display: str = "\\N"
    # Quoted fields ("" and "\N"): Databend's QUOTED_EMPTY_FIELD_AS and ALLOW_QUOTED_NULLS.
    quoted_empty_as: str = "STRING"
    allow_quoted_nulls: bool = False
    # How binary values appear as text (CSV's BINARY_FORMAT); None: as the raw text (TSV).
    binary_format: str | None = "HEX"

    @property
    def quotes_plain(self) -> bool:
        """Quoted fields load as their text, never NULL: what Arrow's CSV reader does."""
        return self.quoted_empty_as == "STRING" and not self.allow_quoted_nulls

    def keeping_empty(self) -> CsvDialect:
        """The dialect that reads empty fields as "" (the reader then fills in column defaults)."""
        return replace(self, null_values=tuple(v for v in self.null_values if v != ""))


def csv_dialect(options: Mapping[str, str]) -> CsvDialect:
    tsv = options.get("TYPE", "CSV").upper() in {"TSV", "TEXT"}
    delimiter = unescape_option(options.get("FIELD_DELIMITER", "\\t" if tsv else ","))
    if len(delimiter) != 1:
        raise StageError(f"FIELD_DELIMITER must be one character here, got '{options['FIELD_DELIMITER']}'")
    record = record_delimiter(options)
    quote = None if tsv else unescape_option(options.get("QUOTE", '"')) or None
    escape = "\\" if tsv else unescape_option(options.get("ESCAPE", "")) or None
    for name, value in (("QUOTE", quote), ("ESCAPE", escape)):
        if value is not None and len(value) != 1:
            raise StageError(f"{name} must be a single character")
    _check_special(delimiter, record, quote, escape, tsv)
    empty = choice_option(
        options, "EMPTY_FIELD_AS", "FIELD_DEFAULT" if tsv else "NULL", {"NULL", "STRING", "FIELD_DEFAULT"}
    )
    nan = options.get("NAN_DISPLAY")
    null_display = unescape_option(options.get("NULL_DISPLAY", "\\N")) if not tsv else "\\N"
    empty_as_null = empty != "STRING"  # FIELD_DEFAULT: NULL unless the column has a default
    return CsvDialect(
        tsv=tsv,
        delimiter=delimiter,
        record=record,
        quote=quote,
        escape=escape,
        skip_header=int_option(options, "SKIP_HEADER"),
        error_on_mismatch=bool_option(options, "ERROR_ON_COLUMN_COUNT_MISMATCH", True),
        trim=bool_option(options, "TRIM_SPACE", False),
        nan_display=None if nan is None or nan in _ARROW_NAN else nan,
        null_values=(null_display, *([""] if empty_as_null else []), *null_if_option(options)),
        empty_as_default=empty == "FIELD_DEFAULT",
        null_display=null_display,
        quoted_empty_as=choice_option(
            options, "QUOTED_EMPTY_FIELD_AS", "STRING", {"NULL", "STRING", "FIELD_DEFAULT"}
        ),
        allow_quoted_nulls=bool_option(options, "ALLOW_QUOTED_NULLS", False),
        binary_format=None if tsv else choice_option(options, "BINARY_FORMAT", "HEX", BINARY_FORMATS),
    )


_QUOTES = {'"', "'", "`"}  # Databend's QUOTE values for CSV
_ESCAPES = {"\\"}  # and ESCAPE's ('' means none)


def record_delimiter(options: Mapping[str, str]) -> str:
    """RECORD_DELIMITER: one ASCII character (not a letter or digit) or '\\r\\n', as Databend takes it."""
    given = options.get("RECORD_DELIMITER", "\\n")
    record = unescape_option(given)
    if record != "\r\n" and (len(record) != 1 or not record.isascii()):
        raise StageError(f"RECORD_DELIMITER must be one ASCII character or '\\r\\n', got '{given}'")
    if record.isalnum():
        raise StageError(f"RECORD_DELIMITER must not be a letter or digit, got '{given}'")
    return record


def _check_special(delimiter: str, record: str, quote: str | None, escape: str | None, tsv: bool) -> None:
    """The combinations Databend refuses: each special character must be told from the others."""
    if not delimiter.isascii():
        raise StageError(f"FIELD_DELIMITER must be one ASCII character, got '{delimiter}'")
    if delimiter.isalnum():
        raise StageError(f"FIELD_DELIMITER must not be a letter or digit, got '{delimiter}'")
    if delimiter in record:
        raise StageError("FIELD_DELIMITER must differ from RECORD_DELIMITER")
    if tsv:
        if delimiter == "\\":
            raise StageError("FIELD_DELIMITER must not be the escape character '\\\\'")
        return
    if quote is not None and quote not in _QUOTES:
        raise StageError(f"QUOTE must be one of '\"', \"'\" or '`' for CSV, got '{quote}'")
    if escape is not None and escape not in _ESCAPES:
        raise StageError(f"ESCAPE must be '\\\\' or '' for CSV, got '{escape}'")
    if quote is not None and delimiter == quote:
        raise StageError("FIELD_DELIMITER must differ from QUOTE")
    if quote is not None and quote in record:
        raise StageError("RECORD_DELIMITER must differ from QUOTE")
    if escape is not None and (delimiter == escape or escape in record):
        raise StageError("FIELD_DELIMITER and RECORD_DELIMITER must differ from ESCAPE")


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


def needs_staging(typ: pa.DataType, dialect: CsvDialect) -> bool:
    """Columns read as text and converted by us (after trimming/NaN/escape handling)."""
    if dialect.trim:
        return True
    if dialect.nan_display is not None and pa.types.is_floating(typ):
        return True
    if dialect.tsv and (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        return True  # backslash escapes must be decoded; Arrow would only drop the backslash
    if pa.types.is_timestamp(typ):
        return True  # cast_array accepts zone offsets the way DuckDB does; Arrow's parser does not
    return not any(check(typ) for check in _ARROW_CSV_TYPES)


def stage_text(arr: pa.Array, typ: pa.DataType, dialect: CsvDialect) -> pa.Array:
    """Vectorised text clean-up before the cast (fast path); nulls are already applied."""
    if dialect.trim:
        arr = pc.utf8_trim(arr, " ")
        arr = pc.if_else(
            pc.is_in(arr, pa.array(dialect.null_values, pa.string())), pa.scalar(None, pa.string()), arr
        )
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


def _skip_row(row: Any) -> str:
    # ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE: a ragged row says nothing about the columns.
    return "skip"


def csv_arrow_options(
    dialect: CsvDialect,
    names: list[str] | None,
    types: list[pa.DataType] | None = None,
    *,
    as_text: bool = False,
    header_names: bool = False,
    use_threads: bool = True,
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    """Arrow's CSV options for the dialect: the one mapping COPY, stage queries and INFER_SCHEMA share.

    ``names`` and ``types`` are the columns to read (``as_text``: every column as text, cast later).
    Without them Arrow counts the columns and infers their types; ``header_names`` then takes the
    names from the last header line SKIP_HEADER skips (INFER_SCHEMA). ``use_threads``: Arrow may
    parse blocks on its pool beside the caller.
    """
    if names is None:
        header = header_names and dialect.skip_header > 0
        read = pacsv.ReadOptions(
            skip_rows=dialect.skip_header - header,
            autogenerate_column_names=not header,
            block_size=_CSV_BLOCK_BYTES,
            use_threads=use_threads,
        )
    else:
        read = pacsv.ReadOptions(
            skip_rows=dialect.skip_header,
            column_names=names,
            block_size=_CSV_BLOCK_BYTES,
            use_threads=use_threads,
        )
    parse = pacsv.ParseOptions(
        delimiter=dialect.delimiter,
        quote_char=dialect.quote or False,
        double_quote=dialect.quote is not None,
        # TSV backslash escapes are decoded by stage_text: Arrow would only drop the backslash.
        escape_char=False if dialect.tsv else (dialect.escape or False),
        newlines_in_values=dialect.quote is not None,
        invalid_row_handler=_skip_row if names is None and not dialect.error_on_mismatch else _reject_row,
    )
    column_types = None
    if names is not None and types is not None:
        fast_types = [pa.string() if as_text or needs_staging(t, dialect) else t for t in types]
        column_types = dict(zip(names, fast_types, strict=True))
    convert = pacsv.ConvertOptions(
        column_types=column_types,
        null_values=list(dialect.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        # Inferred types keep Arrow's own boolean texts: DuckDB's (y/n, t/f) would type letter columns.
        **({} if column_types is None else {"true_values": _TRUE_VALUES, "false_values": _FALSE_VALUES}),
    )
    return read, parse, convert
