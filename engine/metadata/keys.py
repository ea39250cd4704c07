"""GetPrimaryKeys, GetImportedKeys, GetExportedKeys and GetCrossReference from DuckDB constraints."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from engine.metadata.query import EVERYTHING, VISIBLE, Visible, Where, arrow_table, fetch
from engine.metadata.schemas import FOREIGN_KEYS_SCHEMA, PRIMARY_KEYS_SCHEMA

NO_ACTION = 3
"""UpdateDeleteRules.NO_ACTION (= JDBC DatabaseMetaData.importedKeyNoAction); DuckDB has no other."""


def get_primary_keys(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema: str | None,
    table: str,
    *,
    visible: Visible = EVERYTHING,
) -> pa.Table:
    """GetPrimaryKeys: one row per key column, key_sequence 1-based, of tables the caller may see.

    ``catalog``/``schema`` are exact names (None = any); ``table`` is an exact name.
    """
    where = Where("database_name", "schema_name").equal("database_name", catalog)
    where.equal("schema_name", schema).equal("table_name", table)
    sql = (
        VISIBLE + "SELECT database_name, schema_name, table_name, constraint_name, constraint_column_names"
        " FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' AND " + where.sql()
    )
    rows = []
    for cat, sch, tbl, key_name, key_columns in fetch(con, sql, where.params):
        if not visible.table(cat, sch, tbl):
            continue
        names = _ColumnNames(con, cat, sch)
        for sequence, column in enumerate(key_columns, start=1):
            rows.append((cat, sch, tbl, names.column(tbl, column), sequence, key_name))
    rows.sort(key=lambda row: (row[0], row[1], row[2], row[5] or "", row[4]))
    return arrow_table(PRIMARY_KEYS_SCHEMA, rows)


class _ColumnNames:
    """Canonical spelling of table/column names in one schema (constraints keep them as typed)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, catalog: str, schema: str) -> None:
        rows = fetch(
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
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema: str | None, visible: Visible
) -> list[_ForeignKey]:
    """FOREIGN KEY constraints (DuckDB keeps both sides in one catalog and schema) whose two
    tables the caller may both see: a key to or from a table it may not see is left out."""
    where = Where("database_name", "schema_name").equal("database_name", catalog)
    where.equal("schema_name", schema)
    sql = (
        VISIBLE + "SELECT database_name, schema_name, table_name, constraint_type, constraint_name,"
        " constraint_column_names, referenced_table, referenced_column_names"
        " FROM duckdb_constraints()"
        " WHERE constraint_type IN ('FOREIGN KEY', 'PRIMARY KEY', 'UNIQUE') AND " + where.sql()
    )
    rows = fetch(con, sql, where.params)
    names: dict[tuple[str, str], _ColumnNames] = {}
    unique_keys: dict[tuple[str, str, str, tuple[str, ...]], str] = {}
    for cat, sch, tbl, kind, key_name, key_columns, _, _ in sorted(rows, key=lambda r: r[3] != "PRIMARY KEY"):
        if kind != "FOREIGN KEY":
            lowered = tuple(column.lower() for column in key_columns)
            unique_keys.setdefault((cat, sch, tbl.lower(), lowered), key_name)
    found = []
    for cat, sch, tbl, kind, key_name, key_columns, ref_table, ref_columns in rows:
        if kind != "FOREIGN KEY" or not visible.table(cat, sch, tbl):
            continue
        canon = names.setdefault((cat, sch), _ColumnNames(con, cat, sch))
        pk_table = canon.table(ref_table)
        if not visible.table(cat, sch, pk_table):
            continue
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
    return arrow_table(FOREIGN_KEYS_SCHEMA, rows)


def get_imported_keys(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema: str | None,
    table: str,
    *,
    visible: Visible = EVERYTHING,
) -> pa.Table:
    """GetImportedKeys: the foreign keys *of* ``table`` (the primary keys it references)."""
    keys = [key for key in _foreign_keys(con, catalog, schema, visible) if key.fk_table == table]
    return _key_rows(keys, by_fk_side=False)


def get_exported_keys(
    con: duckdb.DuckDBPyConnection,
    catalog: str | None,
    schema: str | None,
    table: str,
    *,
    visible: Visible = EVERYTHING,
) -> pa.Table:
    """GetExportedKeys: the foreign keys in other tables that reference ``table``."""
    keys = [key for key in _foreign_keys(con, catalog, schema, visible) if key.pk_table == table]
    return _key_rows(keys, by_fk_side=True)


def get_cross_reference(
    con: duckdb.DuckDBPyConnection,
    pk_catalog: str | None,
    pk_schema: str | None,
    pk_table: str,
    fk_catalog: str | None,
    fk_schema: str | None,
    fk_table: str,
    *,
    visible: Visible = EVERYTHING,
) -> pa.Table:
    """GetCrossReference: the foreign keys of ``fk_table`` that reference ``pk_table``."""
    if None not in (pk_catalog, fk_catalog) and pk_catalog != fk_catalog:
        return arrow_table(FOREIGN_KEYS_SCHEMA, [])
    if None not in (pk_schema, fk_schema) and pk_schema != fk_schema:
        return arrow_table(FOREIGN_KEYS_SCHEMA, [])
    catalog = pk_catalog if pk_catalog is not None else fk_catalog
    schema = pk_schema if pk_schema is not None else fk_schema
    keys = [
        key
        for key in _foreign_keys(con, catalog, schema, visible)
        if key.pk_table == pk_table and key.fk_table == fk_table
    ]
    return _key_rows(keys, by_fk_side=True)
