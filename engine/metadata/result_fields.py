"""Flight SQL column metadata on query results (``ARROW:FLIGHT:SQL:*``), as GetTables reports it.

JDBC reads a result column's type name, precision and scale from these keys (without them it
reports DECIMAL(18,3) as 0/0), and its table from ``TABLE_NAME`` / ``SCHEMA_NAME`` /
``CATALOG_NAME`` (DBeaver edits a result only when it knows the table). Type metadata comes from
the Arrow type alone (nothing is looked up); table names are added by the planner only for a
plain single-table SELECT (engine/sql/result_columns.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import pyarrow as pa

from engine.metadata.schemas import (
    CATALOG_NAME_KEY,
    DB_SCHEMA_NAME_KEY,
    PRECISION_KEY,
    SCALE_KEY,
    SCHEMA_NAME_KEY,
    TABLE_NAME_KEY,
    TYPE_NAME_KEY,
)
from engine.results import Result

# Arrow type id -> (DuckDB type name, decimal digits for integers, as GetTables reports them).
_SIMPLE: dict[pa.DataType, tuple[str, int | None]] = {
    pa.bool_(): ("BOOLEAN", None),
    pa.int8(): ("TINYINT", 3),
    pa.int16(): ("SMALLINT", 5),
    pa.int32(): ("INTEGER", 10),
    pa.int64(): ("BIGINT", 19),
    pa.uint8(): ("UTINYINT", 3),
    pa.uint16(): ("USMALLINT", 5),
    pa.uint32(): ("UINTEGER", 10),
    pa.uint64(): ("UBIGINT", 20),
    pa.float16(): ("FLOAT", None),
    pa.float32(): ("FLOAT", None),
    pa.float64(): ("DOUBLE", None),
    pa.string(): ("VARCHAR", None),
    pa.large_string(): ("VARCHAR", None),
    pa.string_view(): ("VARCHAR", None),
    pa.binary(): ("BLOB", None),
    pa.large_binary(): ("BLOB", None),
    pa.binary_view(): ("BLOB", None),
    pa.date32(): ("DATE", None),
    pa.date64(): ("DATE", None),
    pa.month_day_nano_interval(): ("INTERVAL", None),
    pa.null(): ("NULL", None),
}


def type_name(t: pa.DataType) -> str:
    """DuckDB's name for an Arrow type as DuckDB produces it (``DECIMAL`` without its digits)."""
    simple = _SIMPLE.get(t)
    if simple is not None:
        return simple[0]
    if pa.types.is_decimal(t):
        return "DECIMAL"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_duration(t):
        return "INTERVAL"
    if pa.types.is_dictionary(t):
        return "ENUM" if pa.types.is_string(t.value_type) else type_name(t.value_type)
    if pa.types.is_map(t):
        return f"MAP({type_name(t.key_type)}, {type_name(t.item_type)})"
    if pa.types.is_fixed_size_list(t):
        return f"{type_name(t.value_type)}[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"{type_name(t.value_type)}[]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {type_name(f.type)}" for f in t) + ")"
    if pa.types.is_fixed_size_binary(t):
        return "UUID" if t.byte_width == 16 else "BLOB"
    return str(t).upper()


def type_metadata(t: pa.DataType) -> dict[str, str]:
    """TYPE_NAME, and PRECISION/SCALE for decimals and integers (GetTables reports the same)."""
    meta = {TYPE_NAME_KEY: type_name(t)}
    if pa.types.is_decimal(t):
        meta[PRECISION_KEY] = str(t.precision)
        meta[SCALE_KEY] = str(t.scale)
    else:
        simple = _SIMPLE.get(t)
        if simple is not None and simple[1] is not None:
            meta[PRECISION_KEY] = str(simple[1])
            meta[SCALE_KEY] = "0"
    return meta


def table_metadata(catalog: str, schema: str, table: str) -> dict[str, str]:
    """Where a column comes from (both schema keys, as GetTables writes them)."""
    return {
        CATALOG_NAME_KEY: catalog,
        SCHEMA_NAME_KEY: schema,
        DB_SCHEMA_NAME_KEY: schema,
        TABLE_NAME_KEY: table,
    }


def annotated(schema: pa.Schema, extra: Sequence[dict[str, str] | None] = ()) -> pa.Schema:
    """``schema`` with type metadata on every field, plus ``extra[i]`` on the i-th field.

    Metadata a field already carries wins (a table's own names, set by the planner).
    """
    fields = []
    for index, field in enumerate(schema):
        meta = type_metadata(field.type)
        more = extra[index] if index < len(extra) else None
        if more:
            meta.update(more)
        if field.metadata:
            meta.update({k.decode(): v.decode() for k, v in field.metadata.items()})
        fields.append(field.with_metadata(meta))
    return pa.schema(fields, metadata=schema.metadata)


def is_annotated(schema: pa.Schema) -> bool:
    """Every field already carries a TYPE_NAME (nothing to add)."""
    key = TYPE_NAME_KEY.encode()
    return all(field.metadata and key in field.metadata for field in schema)


def conformed(result: Result, schema: pa.Schema) -> Result:
    """``result`` with ``schema`` (same types, other metadata): zero-copy, once per batch."""
    if result.schema.equals(schema, check_metadata=True):
        return result
    table = result.table
    if table is not None:
        table = pa.Table.from_arrays(table.columns, schema=schema)
    stream = result.stream
    if stream is not None:
        stream = _rebatched(stream, schema)
    return replace(result, schema=schema, table=table, stream=stream)


def _rebatched(stream: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in stream:
        yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
