"""Shared pieces of the catalog queries: visible catalogs, bound filters, rows to Arrow.

Every metadata answer filters through :class:`Where`, which always hides the reserved schema, and
keeps only what the caller may see (:class:`Visible`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from engine.names import CATALOG_SCHEMA, RESERVED_PREFIXES

RESERVED_SCHEMA = CATALOG_SCHEMA  # the server's own catalog tables
"""The server's own schema; hidden from every metadata answer."""


# Catalogs that may be listed: attached databases, plus temp while it holds something.
VISIBLE = """
WITH _visible(database_name) AS (
    SELECT database_name FROM duckdb_databases() WHERE NOT internal
    UNION SELECT database_name FROM duckdb_tables() WHERE database_name = 'temp'
    UNION SELECT database_name FROM duckdb_views() WHERE database_name = 'temp' AND NOT internal
)
"""


@dataclass(frozen=True)
class Visible:
    """What the caller may see (computed by engine.statements.visibility for the caller).

    ``tables``: (schema, table) pairs, lower-cased; ``schemas``: schema names, lower-cased.
    Names are compared case-insensitively, as DuckDB looks them up. Temporary objects (catalog
    ``temp``) are the caller's own.
    """

    everything: bool = False
    tables: frozenset[tuple[str, str]] = frozenset()
    schemas: frozenset[str] = frozenset()

    def table(self, catalog: str | None, schema: str, name: str) -> bool:
        return self.everything or catalog == "temp" or (schema.lower(), name.lower()) in self.tables

    def schema(self, catalog: str | None, schema: str) -> bool:
        return self.everything or catalog == "temp" or schema.lower() in self.schemas


EVERYTHING = Visible(everything=True)
"""Root's (and account_admin's) view: nothing is filtered."""


def _like_pattern(pattern: str) -> str:
    """Make a trailing lone escape character literal (DuckDB rejects a pattern ending in it)."""
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return pattern + "\\" if trailing % 2 else pattern


class Where:
    """AND-ed conditions with their bound parameters, never user text inside the SQL."""

    def __init__(self, catalog_column: str, schema_column: str) -> None:
        # Every reserved prefix, not only RESERVED_SCHEMA: the guard keeps users from making such
        # schemas, and a schema the server adds later stays hidden without a change here.
        self.clauses = [f"{catalog_column} IN (SELECT database_name FROM _visible)"]
        self.clauses += [f"NOT starts_with(lower({schema_column}), ?)" for _ in RESERVED_PREFIXES]
        self.params: list[Any] = list(RESERVED_PREFIXES)

    def equal(self, column: str, value: str | None) -> Where:
        if value is not None:
            self.clauses.append(f"{column} = ?")
            self.params.append(value)
        return self

    def like(self, column: str, pattern: str | None) -> Where:
        if pattern is not None:
            self.clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            self.params.append(_like_pattern(pattern))
        return self

    def sql(self) -> str:
        return " AND ".join(self.clauses)


def fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return con.execute(sql, list(params)).fetchall()


def arrow_table(schema: pa.Schema, rows: Iterable[Sequence[Any]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) or [() for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(list(values), type=field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
