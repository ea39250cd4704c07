"""File format options (Databend spelling): validation, defaults, and compressed streams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from stages.csv_dialect import csv_dialect
from stages.errors import StageError
from stages.options import choice_option, null_if_option
from stages.records import records_as_lines
from stages.storage.base import StorageBackend

FORMAT_TYPES = {"CSV", "TSV", "TEXT", "NDJSON", "PARQUET"}
MISSING_FIELD_CHOICES = {"ERROR", "NULL", "FIELD_DEFAULT"}  # NDJSON and Parquet: MISSING_FIELD_AS
NULL_FIELD_CHOICES = {"NULL", "FIELD_DEFAULT"}  # NDJSON: NULL_FIELD_AS
DEFAULT_FORMAT = "PARQUET"  # Databend's default when neither statement nor stage names a format
_EXT_CODECS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".lz4": "lz4"}
_NAMED_CODECS = {"GZIP": "gzip", "ZSTD": "zstd", "BZ2": "bz2", "LZ4": "lz4", "BROTLI": "brotli"}

_COMMON = {"TYPE", "FORMAT_NAME", "COMPRESSION"}
_OPTIONS_BY_TYPE: dict[str, set[str]] = {
    "CSV": _COMMON
    | {
        "SKIP_HEADER",
        "FIELD_DELIMITER",
        "RECORD_DELIMITER",
        "QUOTE",
        "ESCAPE",
        "NULL_DISPLAY",
        "NAN_DISPLAY",
        "EMPTY_FIELD_AS",
        "QUOTED_EMPTY_FIELD_AS",
        "ALLOW_QUOTED_NULLS",
        "ERROR_ON_COLUMN_COUNT_MISMATCH",
        "TRIM_SPACE",
        "BINARY_FORMAT",
        "ENCODING",
        "OUTPUT_HEADER",
        "QUOTE_STYLE",
        "NULL_IF",
    },
    "TSV": _COMMON
    | {
        "SKIP_HEADER",
        "FIELD_DELIMITER",
        "RECORD_DELIMITER",
        "NULL_DISPLAY",
        "NAN_DISPLAY",
        "EMPTY_FIELD_AS",
        "ERROR_ON_COLUMN_COUNT_MISMATCH",
        "TRIM_SPACE",
        "ENCODING",
        "OUTPUT_HEADER",
        "ESCAPE",
        "QUOTE",
    },
    "NDJSON": _COMMON | {"NULL_FIELD_AS", "MISSING_FIELD_AS", "NULL_IF"},
    "PARQUET": _COMMON | {"MISSING_FIELD_AS", "NULL_IF", "USE_LOGIC_TYPE"},
}
_OPTIONS_BY_TYPE["TEXT"] = _OPTIONS_BY_TYPE["TSV"]
ALL_OPTIONS = set().union(*_OPTIONS_BY_TYPE.values())
# Databend options the readers and writers do not implement yet: refused rather than ignored.
NOT_YET_SUPPORTED = {
    "USE_LOGIC_TYPE",
}


def normalize_format_options(options: Mapping[str, str]) -> dict[str, str]:
    """Upper-case keys (and TYPE), check every option is known for the format type.

    Raises:
        StageError: an unknown option, an unknown TYPE, or an option that does not apply to it.
    """
    normalized = {key.upper(): value for key, value in options.items()}
    unknown = sorted(set(normalized) - ALL_OPTIONS)
    if unknown:
        raise StageError(f"Unknown file format option: {unknown[0]}")
    missing = sorted(set(normalized) & NOT_YET_SUPPORTED)
    if missing:
        raise StageError(f"File format option {missing[0]} is not supported yet")
    encoding = normalized.get("ENCODING", "UTF-8").upper().replace("_", "-")
    if encoding not in ("UTF-8", "UTF8"):
        raise StageError(f"ENCODING {normalized['ENCODING']} is not supported: files must be UTF-8")
    if "NULL_IF" in normalized:
        null_if_option(normalized)  # a malformed list fails when the format is defined, not when used
    if "FORMAT_NAME" in normalized and len(normalized) > 1:
        raise StageError("FORMAT_NAME cannot be combined with other file format options")
    if "TYPE" in normalized:
        kind = normalized["TYPE"] = normalized["TYPE"].upper()
        if kind not in FORMAT_TYPES:
            raise StageError(f"Unknown file format TYPE: {kind} (use CSV, TSV, TEXT, NDJSON or PARQUET)")
        wrong = sorted(set(normalized) - _OPTIONS_BY_TYPE[kind])
        if wrong:
            raise StageError(f"Unsupported option {wrong[0]} for file format {kind}")
    elif len(normalized) > (1 if "FORMAT_NAME" in normalized else 0):
        raise StageError("File format options need TYPE = CSV | TSV | TEXT | NDJSON | PARQUET")
    _check_values(normalized)
    return normalized


def _check_values(options: Mapping[str, str]) -> None:
    """Check option values when the format is given, not first when a file is read.

    A COPY that finds no file to load, or a CREATE FILE FORMAT, otherwise accepts a typo silently.
    """
    if options.get("TYPE") in ("CSV", "TSV", "TEXT"):
        csv_dialect(options)
    if "MISSING_FIELD_AS" in options:
        choice_option(options, "MISSING_FIELD_AS", "ERROR", MISSING_FIELD_CHOICES)
    if "NULL_FIELD_AS" in options:
        choice_option(options, "NULL_FIELD_AS", "NULL", NULL_FIELD_CHOICES)


def compression_codec(options: Mapping[str, str], key: str) -> str | None:
    """The pyarrow codec name for COMPRESSION (AUTO looks at the file extension)."""
    name = options.get("COMPRESSION", "AUTO").strip().upper()
    if name == "AUTO":
        return ext_codec(key)
    if name in {"NONE", "RAW"}:
        return None
    if name not in _NAMED_CODECS:
        raise StageError(f"COMPRESSION {name} is not supported for loading (AUTO|NONE|GZIP|ZSTD|BZ2|LZ4)")
    return _NAMED_CODECS[name]


def ext_codec(key: str) -> str | None:
    dot = key.rfind(".")
    return _EXT_CODECS.get(key[dot:].lower()) if dot >= 0 else None


def open_stream(
    backend: StorageBackend, key: str, codec: str | None, options: Mapping[str, str] | None = None
) -> Any:
    """The file's bytes, decompressed with ``codec`` (an Arrow codec name) when given.

    With the ``options`` of a CSV/TSV format whose RECORD_DELIMITER is not a line break, each
    record ends in '\\n' instead (:mod:`stages.records`), as the CSV readers need.
    """
    raw = backend.open_input_stream(key)
    stream = pa.CompressedInputStream(raw, codec) if codec else raw
    if options is None or options.get("TYPE", "PARQUET").upper() not in ("CSV", "TSV", "TEXT"):
        return stream
    dialect = csv_dialect(options)
    return records_as_lines(stream, dialect.record, dialect.quote, dialect.escape)
