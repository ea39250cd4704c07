"""COPY INTO <location> formats: which writer, compression and file suffix the options choose.

CSV and TSV are in :mod:`stages.delimited_writers`; NDJSON and Parquet, being short, live here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stages.delimited_writers import CsvBatchWriter, TsvBatchWriter, text_values
from stages.errors import StageError
from stages.parquet_via_duckdb import DuckdbParquetWriter, needs_duckdb

_TEXT_CODECS = {"NONE": None, "GZIP": "gzip", "ZSTD": "zstd", "BZ2": "bz2", "LZ4": "lz4", "BROTLI": "brotli"}
_CODEC_EXT = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", "lz4": ".lz4", "brotli": ".br"}
_PARQUET_CODECS = {"ZSTD": "zstd", "SNAPPY": "snappy", "NONE": "none", "GZIP": "gzip", "LZ4": "lz4"}
# The one column of an NDJSON unload whose rows DuckDB has already turned into JSON text
# (stages.unload_columns); any other schema is written row by row here.
NDJSON_LINE = "__stageflight_ndjson_line"
_FORMAT_EXT = {"CSV": ".csv", "TSV": ".txt", "TEXT": ".txt", "NDJSON": ".ndjson", "PARQUET": ".parquet"}


class BatchWriter(Protocol):
    """One format's writer over one output stream."""

    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class UnloadFormat:
    """What the format options chose: the writer (``kind``), its options, the compression and suffix."""

    kind: str
    options: Mapping[str, str]
    codec: str | None  # text formats only; Parquet compresses internally
    extension: str


def unload_format(options: Mapping[str, str]) -> UnloadFormat:
    """Check the TYPE and COMPRESSION options now, before any file is opened."""
    kind = options.get("TYPE", "PARQUET").upper()
    if kind not in _FORMAT_EXT:
        raise StageError(f"Unknown file format TYPE: {kind}")
    compression = options.get("COMPRESSION", "ZSTD" if kind == "PARQUET" else "NONE").strip().upper()
    if kind == "PARQUET":
        if compression not in _PARQUET_CODECS:
            raise StageError(f"COMPRESSION {compression} is not supported for PARQUET unload (ZSTD | SNAPPY)")
        return UnloadFormat(kind, options, None, ".parquet")
    if compression == "AUTO":
        compression = "GZIP"  # Databend: AUTO means gzip when writing
    if compression not in _TEXT_CODECS:
        raise StageError(f"COMPRESSION {compression} is not supported for {kind} unload")
    codec = _TEXT_CODECS[compression]
    return UnloadFormat(kind, options, codec, _FORMAT_EXT[kind] + (_CODEC_EXT[codec] if codec else ""))


class _NdjsonBatchWriter:
    """One JSON object per line: the :data:`NDJSON_LINE` text as is, else Python per row."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        self._stream = stream
        self._lines = schema.names == [NDJSON_LINE] and pa.types.is_string(schema.field(0).type)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._lines:
            if batch.num_rows:
                lines = pc.binary_join_element_wise(pc.fill_null(batch.column(0), "{}"), "", "\n")
                self._stream.write(text_values(lines))
            return
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
    """pyarrow's Parquet writer; DuckDB's for a schema pyarrow cannot write (INTERVAL, UNION)."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        codec = _PARQUET_CODECS[options.get("COMPRESSION", "ZSTD").strip().upper()]
        self._writer: pq.ParquetWriter | DuckdbParquetWriter
        if needs_duckdb(schema):
            self._writer = DuckdbParquetWriter(stream, schema, codec)
        else:
            self._writer = pq.ParquetWriter(stream, schema, compression=codec)

    def write(self, batch: pa.RecordBatch) -> None:
        if isinstance(self._writer, pq.ParquetWriter):
            self._writer.write_batch(batch)
        else:
            self._writer.write(batch)

    def close(self) -> None:
        self._writer.close()

    @property
    def buffered(self) -> int:
        """Bytes not yet in the output stream (DuckDB writes its file only when closed)."""
        return self._writer.buffered if isinstance(self._writer, DuckdbParquetWriter) else 0

    def discard(self) -> None:
        if isinstance(self._writer, DuckdbParquetWriter):
            self._writer.discard()
        else:
            self._writer.close()


_WRITERS: dict[str, type[CsvBatchWriter | TsvBatchWriter | _NdjsonBatchWriter | _ParquetBatchWriter]] = {
    "CSV": CsvBatchWriter,
    "TSV": TsvBatchWriter,
    "TEXT": TsvBatchWriter,
    "NDJSON": _NdjsonBatchWriter,
    "PARQUET": _ParquetBatchWriter,
}


def open_batch_writer(fmt: UnloadFormat, stream: pa.NativeFile, schema: pa.Schema) -> BatchWriter:
    """The writer of ``fmt`` over ``stream``; its header, if any, is written at once."""
    return _WRITERS[fmt.kind](stream, schema, fmt.options)
