"""INFER_SCHEMA for staged files: column names and SQL types, merged across files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stages.csv_dialect import csv_arrow_options, csv_dialect
from stages.errors import StageError
from stages.scan import naming_the_file, open_ndjson, open_staged
from stages.storage.base import StorageBackend

INFER_SCHEMA_COLUMNS = pa.schema(
    [
        pa.field("column_name", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("nullable", pa.bool_(), nullable=False),
        pa.field("filenames", pa.string(), nullable=False),
        pa.field("order_id", pa.uint64(), nullable=False),
    ]
)


def sql_type(arrow_type: pa.DataType) -> str:
    """DuckDB spelling of an Arrow type (what CREATE TABLE would use)."""
    simple = {
        pa.bool_(): "BOOLEAN",
        pa.int8(): "TINYINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.uint8(): "UTINYINT",
        pa.uint16(): "USMALLINT",
        pa.uint32(): "UINTEGER",
        pa.uint64(): "UBIGINT",
        pa.float32(): "FLOAT",
        pa.float64(): "DOUBLE",
        pa.string(): "VARCHAR",
        pa.large_string(): "VARCHAR",
        pa.binary(): "BLOB",
        pa.large_binary(): "BLOB",
        pa.date32(): "DATE",
        pa.null(): "VARCHAR",
    }
    if arrow_type in simple:
        return simple[arrow_type]
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision}, {arrow_type.scale})"
    if pa.types.is_time(arrow_type):
        return "TIME"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return sql_type(arrow_type.value_type) + "[]"
    if pa.types.is_struct(arrow_type):
        inner = ", ".join(f'"{f.name}" {sql_type(f.type)}' for f in arrow_type)
        return f"STRUCT({inner})"
    return "VARCHAR"


def _file_schema(backend: StorageBackend, name: str, key: str, options: Mapping[str, str]) -> pa.Schema:
    with naming_the_file(name):
        return _arrow_schema(backend, key, options)


def _arrow_schema(backend: StorageBackend, key: str, options: Mapping[str, str]) -> pa.Schema:
    kind = options.get("TYPE", "PARQUET").upper()
    if kind == "PARQUET":
        return pq.ParquetFile(backend.open_input(key)).schema_arrow
    if kind == "NDJSON":
        return open_ndjson(backend, key, options, None).schema
    dialect = csv_dialect(options)
    header = dialect.skip_header >= 1  # the last skipped line names the columns
    read, parse, convert = csv_arrow_options(dialect, None, header_names=True)
    with open_staged(backend, key, options) as stream:
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
    schema = reader.schema
    if not header:
        schema = pa.schema([pa.field(f"${i + 1}", f.type) for i, f in enumerate(schema)])
    return schema


def infer_schema(
    backend: StorageBackend,
    files: Sequence[tuple[str, str]],
    options: Mapping[str, str],
    max_files: int | None = None,
) -> pa.Table:
    if not files:
        raise StageError("INFER_SCHEMA found no files at this location")
    merged: dict[str, tuple[pa.DataType, list[str]]] = {}
    order: list[str] = []
    for name, key in files[: max_files or len(files)]:
        for field in _file_schema(backend, name, key, options):
            if field.name not in merged:
                merged[field.name] = (field.type, [name])
                order.append(field.name)
            else:
                known, names = merged[field.name]
                if known != field.type:
                    known = (
                        pa.string()
                        if not (pa.types.is_integer(known) and pa.types.is_integer(field.type))
                        else pa.int64()
                    )
                merged[field.name] = (known, [*names, name])
    rows = [
        {
            "column_name": c,
            "type": sql_type(merged[c][0]),
            "nullable": True,
            "filenames": ", ".join(merged[c][1]),
            "order_id": i,
        }
        for i, c in enumerate(order)
    ]
    return pa.Table.from_pylist(rows, schema=INFER_SCHEMA_COLUMNS)
