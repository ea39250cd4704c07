"""Which columns are generated (GENERATED ALWAYS AS ...), on every DuckDB the server runs on.

DuckDB 2.0 reports it in ``duckdb_columns().is_generated``. DuckDB 1.5 (the version the DuckLake
extensions are built for) has no such column and shows a generated column's expression as its
``column_default``; there the table's own CREATE text from ``duckdb_tables().sql`` says which is which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

_has_is_generated: bool | None = None


def has_is_generated(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether duckdb_columns() has is_generated (probed once: one DuckDB per process)."""
    global _has_is_generated
    if _has_is_generated is None:
        columns = con.execute("SELECT * FROM duckdb_columns() LIMIT 0").description or []
        _has_is_generated = any(column[0] == "is_generated" for column in columns)
    return _has_is_generated


def generated_columns(
    con: duckdb.DuckDBPyConnection, visible_cte: str, where_sql: str, params: Sequence[Any]
) -> set[tuple[str, str, str, str]]:
    """(database, schema, table, column) of the generated columns, read from CREATE texts (DuckDB 1.5)."""
    sql = (
        visible_cte + "SELECT database_name, schema_name, table_name, sql FROM duckdb_tables()"
        " WHERE " + where_sql + " AND sql ILIKE '%GENERATED%'"
    )
    found: set[tuple[str, str, str, str]] = set()
    for database, schema, table, text in con.execute(sql, list(params)).fetchall():
        try:
            tree = sqlglot.parse_one(text, read="duckdb")
        except SqlglotError:  # unreadable: its columns are reported as ordinary ones
            continue
        for column in tree.find_all(exp.ColumnDef):
            kinds = (constraint.args.get("kind") for constraint in column.constraints)
            if any(isinstance(kind, exp.GeneratedAsIdentityColumnConstraint) for kind in kinds):
                found.add((database, schema, table, column.name))
    return found
