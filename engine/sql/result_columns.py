"""Which table a query's result columns come straight from (a plain single-table SELECT).

Only ``SELECT *`` or ``SELECT col, col AS col, t.col ... FROM one_table [WHERE/ORDER BY/LIMIT]``
qualifies: every result column is then a column of that table, so clients (JDBC, DBeaver) may
learn its table and edit the result. Anything else (joins, CTEs, subqueries, expressions, renames,
DISTINCT, GROUP BY, set operations) gives None, at plan time, from the tree alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp


@dataclass(frozen=True)
class SourceTable:
    """The table named in FROM, as written (None for a part not written)."""

    catalog: str | None
    schema: str | None
    table: str
    columns: int | None  # result columns that are bare table columns; None for SELECT *


_REFUSED_ARGS = ("with_", "with", "joins", "group", "having", "distinct", "qualify", "windows", "laterals")


def source_table(tree: exp.Expression) -> SourceTable | None:
    if type(tree) is not exp.Select or any(tree.args.get(arg) for arg in _REFUSED_ARGS):
        return None
    from_ = tree.args.get("from_") or tree.args.get("from")
    table = from_.this if isinstance(from_, exp.From) else None
    if type(table) is not exp.Table or not isinstance(table.this, exp.Identifier):
        return None
    if any(table.args.get(arg) for arg in ("joins", "laterals", "pivots", "sample", "version")):
        return None
    names = {table.name.lower(), table.alias_or_name.lower()}
    items = tree.expressions
    if len(items) == 1 and type(items[0]) is exp.Star and not any(items[0].args.values()):
        count = None
    elif all(_bare_column(item, names) for item in items):
        count = len(items)
    else:
        return None
    return SourceTable(table.catalog or None, table.db or None, table.name, count)


def _bare_column(item: exp.Expression, names: set[str]) -> bool:
    column = item.this if type(item) is exp.Alias else item
    if type(column) is not exp.Column or not isinstance(column.this, exp.Identifier):
        return False
    if type(item) is exp.Alias and item.alias.lower() != column.name.lower():
        return False  # a renamed column: Flight SQL has no key for the column's own name
    qualifier = column.table.lower()
    return not column.args.get("db") and (not qualifier or qualifier in names)


# Tables and (user) views with this name, and what an unqualified name resolves against.
_RESOLVE_SQL = (
    "SELECT current_database(), current_schema(), database_name, schema_name, name FROM ("
    " SELECT database_name, schema_name, table_name AS name FROM duckdb_tables()"
    " UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views() WHERE NOT internal"
    ") WHERE lower(name) = lower(?)"
)


def resolve(
    source: SourceTable, run_internal: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
) -> tuple[str, str, str] | None:
    """(catalog, schema, table) the FROM name binds to, following DuckDB's search order."""
    rows = run_internal(_RESOLVE_SQL, [source.table])
    if not rows:
        return None
    current_db, current_schema = str(rows[0][0]), str(rows[0][1])
    found = {(str(r[2]).lower(), str(r[3]).lower()): (str(r[2]), str(r[3]), str(r[4])) for r in rows}
    if source.catalog and source.schema:
        wanted = [(source.catalog, source.schema)]
    elif source.schema:  # schema.table, or else catalog.table (its main schema)
        wanted = [(current_db, source.schema), (source.schema, "main")]
    else:
        wanted = [("temp", "main"), (current_db, current_schema)]
    for catalog, schema in wanted:
        hit = found.get((catalog.lower(), schema.lower()))
        if hit is not None:
            return hit
    return None
