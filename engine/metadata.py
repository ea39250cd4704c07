"""Catalog metadata answers for Flight SQL (GetCatalogs, GetTables, GetPrimaryKeys, ...).

Pure functions over a DuckDB connection: each runs a few catalog queries (``duckdb_*()`` table
functions and ``information_schema``) and returns a ``pyarrow.Table`` with exactly the schema the
Flight SQL spec gives (flight-sql-surface.md §2); the Flight layer only has to send it.

What is listed:

* Catalogs: every attached, non-internal database (the server's database and anything attached
  to it), plus ``temp`` only while the connection has temporary tables or views. ``system`` (DuckDB's
  built-ins: ``information_schema``, ``pg_catalog``) is never listed.
* The server's reserved schema ``__stageflight`` (users, hashes, stages, grants) never appears:
  not as a schema, a table, a column owner, nor on either side of a key.
* Temporary objects are per DuckDB connection: pass the session's own connection to see them.

Filters follow CommandGet*: ``None`` means "no filter"; ``""`` as a catalog or schema means
"objects without one", which in DuckDB is nothing. Patterns are SQL LIKE (``%``, ``_``) with ``\\``
as escape character (what GetSqlInfo advertises as SQL_SEARCH_STRING_ESCAPE); they are always
bound as parameters.

The connection must have no open (undrained) result: every query here is fetched completely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from engine.names import quote_ident as quote_identifier

__all__ = [
    "CATALOGS_SCHEMA",
    "DB_SCHEMAS_SCHEMA",
    "FOREIGN_KEYS_SCHEMA",
    "PRIMARY_KEYS_SCHEMA",
    "RESERVED_SCHEMA",
    "TABLES_SCHEMA",
    "TABLES_WITH_SCHEMA_SCHEMA",
    "TABLE_TYPES",
    "TABLE_TYPES_SCHEMA",
    "XDBC_TYPE_INFO_SCHEMA",
    "get_catalogs",
    "get_cross_reference",
    "get_db_schemas",
    "get_exported_keys",
    "get_imported_keys",
    "get_primary_keys",
    "get_table_types",
    "get_tables",
    "get_xdbc_type_info",
    "quote_identifier",
]

RESERVED_SCHEMA = "__stageflight"
"""The server's own schema; hidden from every metadata answer."""

TABLE_TYPES = ("LOCAL TEMPORARY", "TABLE", "VIEW")
"""Table types as reported by GetTables (DuckDB's ``BASE TABLE`` is reported as ``TABLE``)."""

NO_ACTION = 3
"""UpdateDeleteRules.NO_ACTION (= JDBC DatabaseMetaData.importedKeyNoAction); DuckDB has no other."""

# --- result schemas (flight-sql-surface.md §2) -------------------------------------------------

CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8(), nullable=False)])

DB_SCHEMAS_SCHEMA = pa.schema(
    [pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8(), nullable=False)]
)

TABLES_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("table_type", pa.utf8(), nullable=False),
    ]
)

TABLES_WITH_SCHEMA_SCHEMA = TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), nullable=False))

TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", pa.utf8(), nullable=False)])

PRIMARY_KEYS_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("column_name", pa.utf8(), nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("key_name", pa.utf8()),
    ]
)

FOREIGN_KEYS_SCHEMA = pa.schema(
    [
        pa.field("pk_catalog_name", pa.utf8()),
        pa.field("pk_db_schema_name", pa.utf8()),
        pa.field("pk_table_name", pa.utf8(), nullable=False),
        pa.field("pk_column_name", pa.utf8(), nullable=False),
        pa.field("fk_catalog_name", pa.utf8()),
        pa.field("fk_db_schema_name", pa.utf8()),
        pa.field("fk_table_name", pa.utf8(), nullable=False),
        pa.field("fk_column_name", pa.utf8(), nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", pa.utf8()),
        pa.field("pk_key_name", pa.utf8()),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)

XDBC_TYPE_INFO_SCHEMA = pa.schema(
    [
        pa.field("type_name", pa.utf8(), nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32()),
        pa.field("literal_prefix", pa.utf8()),
        pa.field("literal_suffix", pa.utf8()),
        pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), nullable=False))),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_()),
        pa.field("local_type_name", pa.utf8()),
        pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32()),
        pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32()),
    ]
)

# Per-column metadata keys in GetTables(include_schema). Clients (arrow-java, arrow-go, C++) read
# SCHEMA_NAME; FlightSql.proto documents DB_SCHEMA_NAME, so both are written.
_META = "ARROW:FLIGHT:SQL:"
CATALOG_NAME_KEY = _META + "CATALOG_NAME"
SCHEMA_NAME_KEY = _META + "SCHEMA_NAME"
DB_SCHEMA_NAME_KEY = _META + "DB_SCHEMA_NAME"
TABLE_NAME_KEY = _META + "TABLE_NAME"
TYPE_NAME_KEY = _META + "TYPE_NAME"
PRECISION_KEY = _META + "PRECISION"
SCALE_KEY = _META + "SCALE"
IS_AUTO_INCREMENT_KEY = _META + "IS_AUTO_INCREMENT"
IS_CASE_SENSITIVE_KEY = _META + "IS_CASE_SENSITIVE"
IS_READ_ONLY_KEY = _META + "IS_READ_ONLY"
IS_SEARCHABLE_KEY = _META + "IS_SEARCHABLE"
REMARKS_KEY = _META + "REMARKS"

# --- SQL helpers ---------------------------------------------------------------------------------

# Catalogs that may be listed: attached databases, plus temp while it holds something.
_VISIBLE = """
WITH _visible(database_name) AS (
    SELECT database_name FROM duckdb_databases() WHERE NOT internal
    UNION SELECT database_name FROM duckdb_tables() WHERE database_name = 'temp'
    UNION SELECT database_name FROM duckdb_views() WHERE database_name = 'temp' AND NOT internal
)
"""


def _like_pattern(pattern: str) -> str:
    """Make a trailing lone escape character literal (DuckDB rejects a pattern ending in it)."""
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return pattern + "\\" if trailing % 2 else pattern


class _Where:
    """AND-ed conditions with their bound parameters, never user text inside the SQL."""

    def __init__(self, catalog_column: str, schema_column: str) -> None:
        self.clauses = [
            f"{catalog_column} IN (SELECT database_name FROM _visible)",
            f"lower({schema_column}) <> ?",
        ]
        self.params: list[Any] = [RESERVED_SCHEMA]

    def equal(self, column: str, value: str | None) -> _Where:
        if value is not None:
            self.clauses.append(f"{column} = ?")
            self.params.append(value)
        return self

    def like(self, column: str, pattern: str | None) -> _Where:
        if pattern is not None:
            self.clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            self.params.append(_like_pattern(pattern))
        return self

    def sql(self) -> str:
        return " AND ".join(self.clauses)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return con.execute(sql, list(params)).fetchall()


def _table(schema: pa.Schema, rows: Iterable[Sequence[Any]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) or [() for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(list(values), type=field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


# --- catalogs, schemas, tables -------------------------------------------------------------------


def get_catalogs(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """GetCatalogs: visible catalogs, sorted."""
    rows = _fetch(con, _VISIBLE + "SELECT database_name FROM _visible ORDER BY database_name")
    return _table(CATALOGS_SCHEMA, rows)


def get_db_schemas(
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema_pattern: str | None
) -> pa.Table:
    """GetDbSchemas: schemas of visible catalogs, sorted by catalog then schema."""
    where = _Where("database_name", "schema_name").equal("database_name", catalog)
    where.like("schema_name", schema_pattern)
    sql = (
        _VISIBLE
        + "SELECT DISTINCT database_name, schema_name FROM duckdb_schemas() WHERE "
        + where.sql()
        + " ORDER BY database_name, schema_name"
    )
    return _table(DB_SCHEMAS_SCHEMA, _fetch(con, sql, where.params))


def get_table_types(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """GetTableTypes: the types GetTables reports, sorted."""
    return _table(TABLE_TYPES_SCHEMA, [(table_type,) for table_type in TABLE_TYPES])


def get_tables(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema_pattern: str | None,
    table_pattern: str | None,
    table_types: Sequence[str] = (),
    include_schema: bool = False,
) -> pa.Table:
    """GetTables: tables and views, sorted by catalog, schema, table name and type.

    Args:
        con: a connection to the server's database (the session's own, to include its temp tables).
        catalog: exact catalog name; None for any.
        schema_pattern: LIKE pattern on the schema name; None for any.
        table_pattern: LIKE pattern on the table name; None for any.
        table_types: keep only these types (``TABLE``, ``VIEW``, ``LOCAL TEMPORARY``; compared
            case-insensitively); empty for all.
        include_schema: add ``table_schema``, each table's IPC-serialized Arrow schema with
            ``ARROW:FLIGHT:SQL:*`` field metadata and the catalog's nullability.
    """
    where = _Where("table_catalog", "table_schema").equal("table_catalog", catalog)
    where.like("table_schema", schema_pattern).like("table_name", table_pattern)
    sql = (
        _VISIBLE + "SELECT * FROM (SELECT table_catalog, table_schema, table_name,"
        " CASE table_type WHEN 'BASE TABLE' THEN 'TABLE' ELSE table_type END AS table_type"
        " FROM information_schema.tables WHERE " + where.sql() + ")"
    )
    params = list(where.params)
    if table_types:
        sql += " WHERE upper(table_type) IN (SELECT unnest(?::VARCHAR[]))"
        params.append([table_type.upper() for table_type in table_types])
    rows = _fetch(con, sql + " ORDER BY table_catalog, table_schema, table_name, table_type", params)
    if not include_schema:
        return _table(TABLES_SCHEMA, rows)
    columns = _columns(con, catalog, schema_pattern, table_pattern)
    with_schema = [
        (*row, _table_schema(con, row[0], row[1], row[2], row[3] == "VIEW", columns.get(row[:3], [])))
        for row in rows
    ]
    return _table(TABLES_WITH_SCHEMA_SCHEMA, with_schema)


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
    where = _Where("database_name", "schema_name").equal("database_name", catalog)
    where.like("schema_name", schema_pattern).like("table_name", table_pattern)
    sql = (
        _VISIBLE + "SELECT database_name, schema_name, table_name, column_name, is_nullable, data_type,"
        " numeric_precision, numeric_scale, column_default, is_generated, comment"
        " FROM duckdb_columns() WHERE " + where.sql() + " ORDER BY column_index"
    )
    found: dict[tuple[str, str, str], list[_Column]] = {}
    for row in _fetch(con, sql, where.params):
        found.setdefault(row[:3], []).append(_Column(*row[3:]))
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


# --- keys ----------------------------------------------------------------------------------------


def get_primary_keys(
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema: str | None, table: str
) -> pa.Table:
    """GetPrimaryKeys: one row per key column, key_sequence 1-based.

    ``catalog``/``schema`` are exact names (None = any); ``table`` is an exact name.
    """
    where = _Where("database_name", "schema_name").equal("database_name", catalog)
    where.equal("schema_name", schema).equal("table_name", table)
    sql = (
        _VISIBLE + "SELECT database_name, schema_name, table_name, constraint_name, constraint_column_names"
        " FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' AND " + where.sql()
    )
    rows = []
    for cat, sch, tbl, key_name, key_columns in _fetch(con, sql, where.params):
        names = _ColumnNames(con, cat, sch)
        for sequence, column in enumerate(key_columns, start=1):
            rows.append((cat, sch, tbl, names.column(tbl, column), sequence, key_name))
    rows.sort(key=lambda row: (row[0], row[1], row[2], row[5] or "", row[4]))
    return _table(PRIMARY_KEYS_SCHEMA, rows)


class _ColumnNames:
    """Canonical spelling of table/column names in one schema (constraints keep them as typed)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, catalog: str, schema: str) -> None:
        rows = _fetch(
            con,
            "SELECT table_name, column_name FROM duckdb_columns()"
            " WHERE database_name = ? AND schema_name = ?",
            [catalog, schema],
        )
        self._tables = {table.lower(): table for table, _ in rows}
        self._columns = {(table.lower(), column.lower()): column for table, column in rows}

    def table(self, name: str) -> str:
        return self._tables.get(name.lower(), name)

    def column(self, table: str, name: str) -> str:
        return self._columns.get((table.lower(), name.lower()), name)


@dataclass(frozen=True)
class _ForeignKey:
    catalog: str
    schema: str
    pk_table: str
    pk_columns: tuple[str, ...]
    pk_key_name: str | None
    fk_table: str
    fk_columns: tuple[str, ...]
    fk_key_name: str | None

    def rows(self) -> list[tuple[Any, ...]]:
        return [
            (self.catalog, self.schema, self.pk_table, pk_column)
            + (self.catalog, self.schema, self.fk_table, fk_column)
            + (sequence, self.fk_key_name, self.pk_key_name, NO_ACTION, NO_ACTION)
            for sequence, (pk_column, fk_column) in enumerate(
                zip(self.pk_columns, self.fk_columns, strict=True), start=1
            )
        ]


def _foreign_keys(
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema: str | None
) -> list[_ForeignKey]:
    """FOREIGN KEY constraints (DuckDB keeps both sides in one catalog and schema)."""
    where = _Where("database_name", "schema_name").equal("database_name", catalog)
    where.equal("schema_name", schema)
    sql = (
        _VISIBLE + "SELECT database_name, schema_name, table_name, constraint_type, constraint_name,"
        " constraint_column_names, referenced_table, referenced_column_names"
        " FROM duckdb_constraints()"
        " WHERE constraint_type IN ('FOREIGN KEY', 'PRIMARY KEY', 'UNIQUE') AND " + where.sql()
    )
    rows = _fetch(con, sql, where.params)
    names: dict[tuple[str, str], _ColumnNames] = {}
    unique_keys: dict[tuple[str, str, str, tuple[str, ...]], str] = {}
    for cat, sch, tbl, kind, key_name, key_columns, _, _ in sorted(rows, key=lambda r: r[3] != "PRIMARY KEY"):
        if kind != "FOREIGN KEY":
            lowered = tuple(column.lower() for column in key_columns)
            unique_keys.setdefault((cat, sch, tbl.lower(), lowered), key_name)
    found = []
    for cat, sch, tbl, kind, key_name, key_columns, ref_table, ref_columns in rows:
        if kind != "FOREIGN KEY":
            continue
        canon = names.setdefault((cat, sch), _ColumnNames(con, cat, sch))
        pk_table = canon.table(ref_table)
        lowered = tuple(column.lower() for column in ref_columns)
        found.append(
            _ForeignKey(
                catalog=cat,
                schema=sch,
                pk_table=pk_table,
                pk_columns=tuple(canon.column(pk_table, column) for column in ref_columns),
                pk_key_name=unique_keys.get((cat, sch, pk_table.lower(), lowered)),
                fk_table=tbl,
                fk_columns=tuple(canon.column(tbl, column) for column in key_columns),
                fk_key_name=key_name,
            )
        )
    return found


def _key_rows(keys: Iterable[_ForeignKey], by_fk_side: bool) -> pa.Table:
    rows = [row for key in keys for row in key.rows()]
    if by_fk_side:  # fk catalog, schema, table, fk key name, sequence
        rows.sort(key=lambda r: (r[4], r[5], r[6], r[9] or "", r[8]))
    else:  # pk catalog, schema, table, pk key name, sequence
        rows.sort(key=lambda r: (r[0], r[1], r[2], r[10] or "", r[8]))
    return _table(FOREIGN_KEYS_SCHEMA, rows)


def get_imported_keys(
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema: str | None, table: str
) -> pa.Table:
    """GetImportedKeys: the foreign keys *of* ``table`` (the primary keys it references)."""
    keys = [key for key in _foreign_keys(con, catalog, schema) if key.fk_table == table]
    return _key_rows(keys, by_fk_side=False)


def get_exported_keys(
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema: str | None, table: str
) -> pa.Table:
    """GetExportedKeys: the foreign keys in other tables that reference ``table``."""
    keys = [key for key in _foreign_keys(con, catalog, schema) if key.pk_table == table]
    return _key_rows(keys, by_fk_side=True)


def get_cross_reference(
    con: duckdb.DuckDBPyConnection,
    pk_catalog: str | None,
    pk_schema: str | None,
    pk_table: str,
    fk_catalog: str | None,
    fk_schema: str | None,
    fk_table: str,
) -> pa.Table:
    """GetCrossReference: the foreign keys of ``fk_table`` that reference ``pk_table``."""
    if None not in (pk_catalog, fk_catalog) and pk_catalog != fk_catalog:
        return _table(FOREIGN_KEYS_SCHEMA, [])
    if None not in (pk_schema, fk_schema) and pk_schema != fk_schema:
        return _table(FOREIGN_KEYS_SCHEMA, [])
    catalog = pk_catalog if pk_catalog is not None else fk_catalog
    schema = pk_schema if pk_schema is not None else fk_schema
    keys = [
        key
        for key in _foreign_keys(con, catalog, schema)
        if key.pk_table == pk_table and key.fk_table == fk_table
    ]
    return _key_rows(keys, by_fk_side=True)


# --- type info -----------------------------------------------------------------------------------


class _XdbcType(NamedTuple):
    type_name: str
    data_type: int  # java.sql.Types
    column_size: int | None = None
    literal_prefix: str | None = None
    literal_suffix: str | None = None
    create_params: list[str] | None = None
    nullable: int = 1  # Nullable.NULLABILITY_NULLABLE
    case_sensitive: bool = False
    searchable: int = 2  # Searchable.SEARCHABLE_BASIC (every operator but LIKE)
    unsigned_attribute: bool | None = None
    fixed_prec_scale: bool = False
    auto_increment: bool | None = None
    local_type_name: str | None = None
    minimum_scale: int | None = None
    maximum_scale: int | None = None
    sql_data_type: int | None = None  # None = same as data_type
    datetime_subcode: int | None = None
    num_prec_radix: int | None = None
    interval_precision: int | None = None


def _number(
    name: str,
    data_type: int,
    size: int,
    radix: int,
    scale: tuple[int | None, int | None] = (None, None),
    unsigned: bool = False,
    create_params: list[str] | None = None,
) -> _XdbcType:
    return _XdbcType(
        name,
        data_type,
        column_size=size,
        create_params=create_params,
        unsigned_attribute=unsigned,
        auto_increment=False,
        minimum_scale=scale[0],
        maximum_scale=scale[1],
        num_prec_radix=radix,
    )


def _integer(name: str, data_type: int, digits: int, unsigned: bool = False) -> _XdbcType:
    return _number(name, data_type, digits, 10, scale=(0, 0), unsigned=unsigned)


def _quoted(name: str, data_type: int, size: int | None, prefix: str, **kw: Any) -> _XdbcType:
    return _XdbcType(name, data_type, column_size=size, literal_prefix=prefix, literal_suffix="'", **kw)


_SQL_DATETIME, _SQL_INTERVAL = 9, 10  # XdbcDataType.XDBC_DATETIME / XDBC_INTERVAL

# java.sql.Types: BOOLEAN 16, TINYINT -6, SMALLINT 5, INTEGER 4, BIGINT -5, NUMERIC 2, DECIMAL 3,
# REAL 7 (DuckDB FLOAT is 4 bytes), DOUBLE 8, VARCHAR 12, VARBINARY -3, DATE 91, TIME 92,
# TIMESTAMP 93, TIME_WITH_TIMEZONE 2013, TIMESTAMP_WITH_TIMEZONE 2014, OTHER 1111, STRUCT 2002,
# ARRAY 2003.
_XDBC_TYPES: tuple[_XdbcType, ...] = (
    _XdbcType("BOOLEAN", 16, column_size=1),
    _integer("TINYINT", -6, 3),
    _integer("UTINYINT", -6, 3, unsigned=True),
    _integer("SMALLINT", 5, 5),
    _integer("USMALLINT", 5, 5, unsigned=True),
    _integer("INTEGER", 4, 10),
    _integer("UINTEGER", 4, 10, unsigned=True),
    _integer("BIGINT", -5, 19),
    _integer("UBIGINT", -5, 20, unsigned=True),
    _integer("HUGEINT", 2, 39),
    _number("DECIMAL", 3, 38, 10, scale=(0, 38), create_params=["precision", "scale"]),
    _number("FLOAT", 7, 24, 2),
    _number("DOUBLE", 8, 53, 2),
    _quoted("VARCHAR", 12, 2147483647, "'", case_sensitive=True, searchable=3),
    _XdbcType("BLOB", -3, column_size=2147483647, literal_prefix="'", literal_suffix="'::BLOB"),
    _quoted("DATE", 91, 10, "DATE '", sql_data_type=_SQL_DATETIME, datetime_subcode=1),
    _quoted("TIME", 92, 15, "TIME '", sql_data_type=_SQL_DATETIME, datetime_subcode=2),
    _quoted("TIMESTAMP", 93, 26, "TIMESTAMP '", sql_data_type=_SQL_DATETIME, datetime_subcode=3),
    _quoted("UUID", 1111, 36, "'"),
    _quoted("INTERVAL", 1111, None, "INTERVAL '", sql_data_type=_SQL_INTERVAL),
    _XdbcType("STRUCT", 2002, create_params=["fields"]),
    _XdbcType("LIST", 2003, create_params=["element type"]),
    _quoted("TIME WITH TIME ZONE", 2013, 21, "TIMETZ '", sql_data_type=_SQL_DATETIME, datetime_subcode=4),
    _quoted(
        "TIMESTAMP WITH TIME ZONE", 2014, 32, "TIMESTAMPTZ '", sql_data_type=_SQL_DATETIME, datetime_subcode=5
    ),
)


def get_xdbc_type_info(con: duckdb.DuckDBPyConnection | None, data_type: int | None = None) -> pa.Table:
    """GetXdbcTypeInfo: a static description of DuckDB's main types, sorted by data_type, type_name.

    ``con`` is unused (the answer does not depend on the database) and kept for a uniform call
    shape. ``data_type`` keeps only rows with that java.sql.Types code.
    """
    rows = [
        row._replace(sql_data_type=row.data_type if row.sql_data_type is None else row.sql_data_type)
        for row in _XDBC_TYPES
        if data_type is None or row.data_type == data_type
    ]
    rows.sort(key=lambda row: (row.data_type, row.type_name))
    return _table(XDBC_TYPE_INFO_SCHEMA, rows)
