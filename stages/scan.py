"""Reading staged files for queries (``SELECT ... FROM @stage``), Databend style.

CSV/TSV files expose positional columns ``$1 .. $n`` as VARCHAR; Parquet and NDJSON expose their own
column names. Every row also carries ``METADATA$FILENAME`` (relative to the stage root) and
``METADATA$FILE_ROW_NUMBER`` (0-based). Files stream one after another, never whole in memory, and
are decompressed by COMPRESSION (AUTO: by extension). A file Arrow cannot read is an error naming it.
CSV/TSV fields read as COPY would load them into VARCHAR columns (one dialect: stages.csv_dialect).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from stages.conversion import apply_null_if, null_if_array
from stages.csv_dialect import csv_arrow_options, csv_dialect, needs_staging, stage_text
from stages.errors import StageError
from stages.formats import compression_codec, open_stream
from stages.on_error import ABORT
from stages.options import null_if_option
from stages.parquet_io import parquet_batches
from stages.readers import open_file_reader
from stages.storage.base import StorageBackend

FILENAME_COLUMN = "METADATA$FILENAME"
ROW_NUMBER_COLUMN = "METADATA$FILE_ROW_NUMBER"
_JSON_SCHEMA_BYTES = 16 << 20  # NDJSON columns are inferred from this much of the first file


def open_staged(backend: StorageBackend, key: str, options: Mapping[str, str]) -> pa.NativeFile:
    """The file's bytes, decompressed by COMPRESSION (AUTO: by the file's extension)."""
    return open_stream(backend, key, compression_codec(options, key), options)


def _csv_width(backend: StorageBackend, key: str, options: Mapping[str, str]) -> int:
    """How many fields the first record after SKIP_HEADER has."""
    read, parse, convert = csv_arrow_options(csv_dialect(options), None)
    with open_staged(backend, key, options) as stream:
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        return len(reader.schema)


def _csv_batches(
    backend: StorageBackend,
    name: str,
    key: str,
    options: Mapping[str, str],
    schema: pa.Schema,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The fields as text, read exactly as COPY reads them into VARCHAR columns."""
    dialect = csv_dialect(options)
    if not (dialect.quotes_plain and dialect.error_on_mismatch):
        # Quoted-field rules and short rows are applied by COPY's careful reader alone.
        reader, _ = open_file_reader(
            backend, key, name, options, schema, on_error=ABORT, batch_rows=batch_rows
        )
        yield from reader
        return
    read, parse, convert = csv_arrow_options(dialect, schema.names, schema.types)
    clean = needs_staging(pa.string(), dialect)  # TRIM_SPACE, TSV escapes
    with open_staged(backend, key, options) as stream:
        for batch in pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert):
            if clean:
                columns = [stage_text(column, pa.string(), dialect) for column in batch.columns]
                batch = pa.RecordBatch.from_arrays(columns, schema=schema)
            yield batch


def open_ndjson(
    backend: StorageBackend, key: str, options: Mapping[str, str], schema: pa.Schema | None
) -> pajson.JSONStreamingReader:
    # Later files are read with the first file's columns: missing keys are NULL, others ignored.
    parse = (
        pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        if schema is not None
        else pajson.ParseOptions()
    )
    read = pajson.ReadOptions(block_size=_JSON_SCHEMA_BYTES)
    return pajson.open_json(open_staged(backend, key, options), read_options=read, parse_options=parse)


@contextmanager
def naming_the_file(name: str) -> Iterator[None]:
    """Arrow's complaints about a file's contents become errors that name the file."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StageError(f"Cannot read staged file {name}: {text}") from None


# What to suggest for a file read as Parquet that is not one, by its extension (before compression).
_FORMAT_BY_SUFFIX = {".csv": "CSV", ".tsv": "TSV", ".txt": "TSV", ".ndjson": "NDJSON", ".json": "NDJSON"}


def _parquet_file(backend: StorageBackend, key: str, name: str, hint: bool) -> pq.ParquetFile:
    """Open a Parquet file; one that is not Parquet says so, and (``hint``: a query that named no
    FILE_FORMAT) which option reads it."""
    try:
        return pq.ParquetFile(backend.open_input(key))
    except pa.ArrowInvalid as exc:
        if "magic bytes" not in str(exc) and "minimum file footer" not in str(exc):
            raise
        text = f"Cannot read staged file {name}: Parquet magic bytes not found, it is not a Parquet file"
        if hint:
            base = name.lower()
            for codec in (".gz", ".gzip", ".zst", ".bz2", ".xz", ".br", ".deflate"):
                base = base.removesuffix(codec)
            suggested = next((f for s, f in _FORMAT_BY_SUFFIX.items() if base.endswith(s)), "CSV")
            text += (
                f". A query with no FILE_FORMAT reads Parquet: add (FILE_FORMAT => '{suggested}')"
                " or the format the file has"
            )
        raise StageError(text) from None


def _empty(exc: pa.ArrowInvalid) -> bool:
    return str(exc).startswith(("Empty CSV file", "Empty JSON stream"))


def _with_metadata(batch: pa.RecordBatch, name: str, first_row: int) -> pa.RecordBatch:
    n = batch.num_rows
    names = pa.array([name] * n, pa.string())
    rows = pa.array(range(first_row, first_row + n), pa.int64())
    return pa.RecordBatch.from_arrays(
        [*batch.columns, names, rows], names=[*batch.schema.names, FILENAME_COLUMN, ROW_NUMBER_COLUMN]
    )


def _file_batches(
    backend: StorageBackend,
    name: str,
    key: str,
    kind: str,
    options: Mapping[str, str],
    batch_rows: int,
    schema: pa.Schema,
    hint: bool = False,
) -> Iterator[pa.RecordBatch]:
    null_if = null_if_array(null_if_option(options))
    with naming_the_file(name):
        try:
            if kind == "PARQUET":
                parquet = _parquet_file(backend, key, name, hint)
                for batch in parquet_batches(parquet, batch_rows):
                    yield _conform(batch, schema, name, null_if)
            elif kind == "NDJSON":
                for batch in open_ndjson(backend, key, options, schema):
                    yield _conform(batch, schema, name, null_if)
            else:
                yield from _csv_batches(backend, name, key, options, schema, batch_rows)
        except pa.ArrowInvalid as exc:
            if not _empty(exc):  # an empty file adds no rows
                raise


def _conform(batch: pa.RecordBatch, schema: pa.Schema, name: str, null_if: pa.Array | None) -> pa.RecordBatch:
    if null_if is not None:
        batch = pa.RecordBatch.from_arrays(
            [apply_null_if(c, null_if) for c in batch.columns], schema=batch.schema
        )
    if batch.schema.equals(schema):
        return batch
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
        else:
            try:
                columns.append(batch.column(index).cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise StageError(
                    f"File {name}: column {field.name} does not match the first file: {exc}"
                ) from None
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _first_schema(
    backend: StorageBackend, name: str, key: str, kind: str, options: Mapping[str, str], hint: bool
) -> pa.Schema:
    """The columns every file is read as: the first file's own (Parquet, NDJSON) or ``$1 .. $n``."""
    with naming_the_file(name):
        if kind == "PARQUET":
            return _parquet_file(backend, key, name, hint).schema_arrow
        if kind == "NDJSON":
            return open_ndjson(backend, key, options, None).schema
        width = _csv_width(backend, key, options)
    return pa.schema([pa.field(f"${i + 1}", pa.string()) for i in range(width)])


def scan_files(
    backend: StorageBackend,
    files: Sequence[tuple[str, str]],
    options: Mapping[str, str],
    batch_rows: int = 131_072,
    with_metadata: bool = True,
    *,
    not_parquet_hint: bool = False,
) -> pa.RecordBatchReader:
    """A reader over ``files`` (``(name relative to the stage root, storage key)``), in order.

    ``not_parquet_hint``: Parquet is only the default (no FILE_FORMAT given), so a file that is not
    Parquet is refused with the option that would read it.

    Raises:
        StageError: no files, or files whose columns do not agree with the first one.
    """
    if not files:
        raise StageError("No files found at this stage location")
    kind = options.get("TYPE", "PARQUET").upper()
    if kind == "TEXT":
        kind = "TSV"
    hint = not_parquet_hint
    schema = _first_schema(backend, files[0][0], files[0][1], kind, options, hint)
    if not with_metadata:
        return pa.RecordBatchReader.from_batches(
            schema,
            (
                batch
                for name, key in files
                for batch in _file_batches(backend, name, key, kind, options, batch_rows, schema, hint)
            ),
        )
    out_schema = pa.schema(
        [*schema, pa.field(FILENAME_COLUMN, pa.string()), pa.field(ROW_NUMBER_COLUMN, pa.int64())]
    )

    def batches() -> Iterator[pa.RecordBatch]:
        for name, key in files:
            row = 0
            for batch in _file_batches(backend, name, key, kind, options, batch_rows, schema, hint):
                yield _with_metadata(batch, name, row)
                row += batch.num_rows

    return pa.RecordBatchReader.from_batches(out_schema, batches())
