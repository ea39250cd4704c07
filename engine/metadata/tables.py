"""GetCatalogs, GetDbSchemas, GetTableTypes and GetTables (with each table's Arrow schema)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import duckdb
import pyarrow as pa

from engine.metadata.generated import generated_columns, has_is_generated
from engine.metadata.query import EVERYTHING, VISIBLE, Visible, Where, arrow_table, fetch
from engine.metadata.schemas import (
    CATALOG_NAME_KEY,
    CATALOGS_SCHEMA,
    DB_SCHEMA_NAME_KEY,
    DB_SCHEMAS_SCHEMA,
    IS_AUTO_INCREMENT_KEY,
    IS_CASE_SENSITIVE_KEY,
    IS_READ_ONLY_KEY,
    IS_SEARCHABLE_KEY,
    PRECISION_KEY,
    REMARKS_KEY,
    SCALE_KEY,
    SCHEMA_NAME_KEY,
    TABLE_NAME_KEY,
    TABLE_TYPES_SCHEMA,
    TABLES_SCHEMA,
    TABLES_WITH_SCHEMA_SCHEMA,
    TYPE_NAME_KEY,
)
from engine.names import quote_ident as quote_identifier

TABLE_TYPES = ("LOCAL TEMPORARY", "TABLE", "VIEW")
"""Table types as reported by GetTables (DuckDB's ``BASE TABLE`` is reported as ``TABLE``)."""


def get_catalogs(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """GetCatalogs: visible catalogs, sorted."""
    rows = fetch(con, VISIBLE + "SELECT database_name FROM _visible ORDER BY database_name")
    return arrow_table(CATALOGS_SCHEMA, rows)


def get_db_schemas(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema_pattern: str | None,
    *,
    visible: Visible = EVERYTHING,
) -> pa.Table:
    """GetDbSchemas: schemas of visible catalogs the caller may see, sorted by catalog then schema."""
    where = Where("database_name", "schema_name").equal("database_name", catalog)
    where.like("schema_name", schema_pattern)
    sql = (
        VISIBLE
        + "SELECT DISTINCT database_name, schema_name FROM duckdb_schemas() WHERE "
        + where.sql()
        + " ORDER BY database_name, schema_name"
    )
    rows = [row for row in fetch(con, sql, where.params) if visible.schema(row[0], row[1])]
    return arrow_table(DB_SCHEMAS_SCHEMA, rows)


def get_table_types(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """GetTableTypes: the types GetTables reports, sorted."""
    return arrow_table(TABLE_TYPES_SCHEMA, [(table_type,) for table_type in TABLE_TYPES])


def get_tables(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema_pattern: str | None,
    table_pattern: str | None,
    table_types: Sequence[str] = (),
    include_schema: bool = False,
    *,
    visible: Visible = EVERYTHING,
) -> pa.Table:
    """GetTables: the tables and views the caller may see, sorted by catalog, schema, name and type.

    Args:
        con: a connection to the server's database (the session's own, to include its temp tables).
        catalog: exact catalog name; None for any.
        schema_pattern: LIKE pattern on the schema name; None for any.
        table_pattern: LIKE pattern on the table name; None for any.
        table_types: keep only these types (``TABLE``, ``VIEW``, ``LOCAL TEMPORARY``; compared
            case-insensitively); empty for all.
        include_schema: add ``table_schema``, each table's IPC-serialized Arrow schema with
            ``ARROW:FLIGHT:SQL:*`` field metadata and the catalog's nullability.
        visible: what the caller may see (the server always passes the caller's).
    """
    where = Where("table_catalog", "table_schema").equal("table_catalog", catalog)
    where.like("table_schema", schema_pattern).like("table_name", table_pattern)
    sql = (
        VISIBLE + "SELECT * FROM (SELECT table_catalog, table_schema, table_name,"
        " CASE table_type WHEN 'BASE TABLE' THEN 'TABLE' ELSE table_type END AS table_type"
        " FROM information_schema.tables WHERE " + where.sql() + ")"
    )
    params = list(where.params)
    if table_types:
        sql += " WHERE upper(table_type) IN (SELECT unnest(?::VARCHAR[]))"
        params.append([table_type.upper() for table_type in table_types])
    rows = fetch(con, sql + " ORDER BY table_catalog, table_schema, table_name, table_type", params)
    rows = [row for row in rows if visible.table(row[0], row[1], row[2])]
    if not include_schema:
        return arrow_table(TABLES_SCHEMA, rows)
    columns = _columns(con, catalog, schema_pattern, table_pattern)
    with_schema = [
        (*row, _table_schema(con, row[0], row[1], row[2], row[3] == "VIEW", columns.get(row[:3], [])))
        for row in rows
    ]
    return arrow_table(TABLES_WITH_SCHEMA_SCHEMA, with_schema)


class _Column(NamedTuple):
    name: str
    nullable: bool
    type_name: str
    precision: int | None
    scale: int | None
    default: str | None
    generated: bool
    comment: str | None


def _columns(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema_pattern: str | None,
    table_pattern: str | None,
) -> dict[tuple[str, str, str], list[_Column]]:
    where = Where("database_name", "schema_name").equal("database_name", catalog)
    where.like("schema_name", schema_pattern).like("table_name", table_pattern)
    native = has_is_generated(con)
    sql = (
        VISIBLE + "SELECT database_name, schema_name, table_name, column_name, is_nullable, data_type,"
        " numeric_precision, numeric_scale, column_default, "
        + ("is_generated" if native else "false")
        + ", comment FROM duckdb_columns() WHERE "
        + where.sql()
        + " ORDER BY column_index"
    )
    generated = set() if native else generated_columns(con, VISIBLE, where.sql(), where.params)
    found: dict[tuple[str, str, str], list[_Column]] = {}
    for row in fetch(con, sql, where.params):
        column = _Column(*row[3:])
        if row[:4] in generated:
            column = column._replace(generated=True)
        found.setdefault(row[:3], []).append(column)
    return found


# Decimal digits of the integer types, reported as PRECISION (JDBC's column size for them).
_INTEGER_DIGITS = {
    "TINYINT": 3,
    "SMALLINT": 5,
    "INTEGER": 10,
    "BIGINT": 19,
    "HUGEINT": 39,
    "UTINYINT": 3,
    "USMALLINT": 5,
    "UINTEGER": 10,
    "UBIGINT": 20,
    "UHUGEINT": 39,
}


def _column_metadata(catalog: str, schema: str, table: str, is_view: bool, column: _Column) -> dict[str, str]:
    def flag(value: bool) -> str:
        return "1" if value else "0"

    type_name = column.type_name
    meta = {
        CATALOG_NAME_KEY: catalog,
        SCHEMA_NAME_KEY: schema,
        DB_SCHEMA_NAME_KEY: schema,
        TABLE_NAME_KEY: table,
        TYPE_NAME_KEY: type_name,
        IS_AUTO_INCREMENT_KEY: flag((column.default or "").lower().startswith("nextval(")),
        IS_CASE_SENSITIVE_KEY: flag(type_name == "VARCHAR" or type_name.startswith("ENUM")),
        IS_READ_ONLY_KEY: flag(is_view or column.generated),
        IS_SEARCHABLE_KEY: "1",
    }
    if type_name.startswith("DECIMAL") and column.precision is not None:
        meta[PRECISION_KEY] = str(column.precision)
        meta[SCALE_KEY] = str(column.scale or 0)
    elif type_name in _INTEGER_DIGITS:
        meta[PRECISION_KEY] = str(_INTEGER_DIGITS[type_name])
        meta[SCALE_KEY] = "0"
    if column.comment:
        meta[REMARKS_KEY] = column.comment
    return meta


def _table_schema(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    schema: str,
    table: str,
    is_view: bool,
    columns: Sequence[_Column],
) -> bytes:
    """The Arrow schema of one table/view (bound with LIMIT 0, no data read), IPC-serialized."""
    name = ".".join(quote_identifier(part) for part in (catalog, schema, table))
    try:
        arrow = con.sql(f"SELECT * FROM {name} LIMIT 0").to_arrow_table().schema
    except duckdb.Error:
        # A view whose definition no longer binds (e.g. its table was dropped): list it, without
        # columns, rather than failing the whole listing.
        arrow = pa.schema([])
    by_name = {column.name: column for column in columns}
    fields = []
    for index, field in enumerate(arrow):
        column = columns[index] if index < len(columns) and columns[index].name == field.name else None
        column = column or by_name.get(field.name)
        if column is None:
            fields.append(field)
            continue
        fields.append(
            field.with_nullable(column.nullable).with_metadata(
                _column_metadata(catalog, schema, table, is_view, column)
            )
        )
    return pa.schema(fields).serialize().to_pybytes()
