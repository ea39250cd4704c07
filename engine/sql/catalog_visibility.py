"""Show a caller only the objects it may use in DuckDB's catalog views (catalog-home.md §5.6).

Plans are cached and shared by every user, so the filter cannot name the caller's tables. Every
read of an ``information_schema`` or ``pg_catalog`` view (rewritten by
:mod:`engine.sql.catalog_views`) filters instead on the reserved relation :data:`VISIBLE_RELATION`,
which the statement layer registers on the session's cursor, for the caller, before each run
(``engine.statements.visibility.bind_visibility``). Its rows (:data:`VISIBLE_COLUMNS`):

* ``(schema, table, false)``: a table or view the caller may use (lower-cased names);
* ``(schema, NULL, false)``: a schema the caller may see;
* ``(NULL, NULL, true)``: the caller sees everything (root, ``account_admin``).

Rows of the ``system`` catalog (``information_schema``, ``pg_catalog`` themselves) and of
``temp`` (the session's own temporary objects) always stay. A statement run without the relation
registered fails in DuckDB ("table does not exist"): the filter never silently falls away.

``SHOW TABLES [FROM x]`` becomes a query over ``information_schema.tables``, so it is filtered
the same way (:func:`show_tables_query`).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

VISIBLE_RELATION = "__stage_visible"
VISIBLE_COLUMNS = ("vis_schema", "vis_name", "vis_all")

_ALL = f"EXISTS (SELECT 1 FROM {VISIBLE_RELATION} WHERE vis_all)"
_OPEN_CATALOGS = "('system', 'temp')"


def visible_table(schema: str, name: str, catalog: str | None = None) -> str:
    """SQL: the row's (schema, name) is a table or view the caller may use."""
    pair = f"(lower({schema}), lower({name})) IN (SELECT vis_schema, vis_name FROM {VISIBLE_RELATION})"
    opened = f"coalesce({catalog} IN {_OPEN_CATALOGS}, FALSE) OR " if catalog else ""
    return f"({opened}{_ALL} OR coalesce({pair}, FALSE))"


def visible_schema(schema: str, catalog: str | None = None) -> str:
    """SQL: the row's schema is one the caller may see."""
    listed = (
        f"lower({schema}) IN (SELECT vis_schema FROM {VISIBLE_RELATION} "
        "WHERE vis_name IS NULL AND vis_schema IS NOT NULL)"
    )
    opened = f"coalesce({catalog} IN {_OPEN_CATALOGS}, FALSE) OR " if catalog else ""
    return f"({opened}{_ALL} OR coalesce({listed}, FALSE))"


# pg_catalog names relations and namespaces by oid. Namespaces missing from pg_namespace are the
# system and temp ones (always shown); sequences follow their schema (they have no privileges).
_VISIBLE_NSP = f"SELECT oid FROM pg_catalog.pg_namespace WHERE {visible_schema('nspname')}"
_VISIBLE_REL = (
    "SELECT c.oid FROM pg_catalog.pg_class AS c LEFT JOIN pg_catalog.pg_namespace AS n"
    " ON n.oid = c.relnamespace WHERE n.oid IS NULL"
    f" OR {visible_table('n.nspname', 'c.relname')}"
    f" OR (c.relkind = 'S' AND {visible_schema('n.nspname')})"
)


def _rel(column: str) -> str:
    return f"coalesce({column} IN ({_VISIBLE_REL}), FALSE)"


def _nsp(column: str) -> str:
    return f"coalesce({column} IN ({_VISIBLE_NSP}), FALSE)"


def _constraint(schema: str, name: str) -> str:
    """A constraint (by schema and name) of a table the caller may use."""
    return (
        f"({schema}, {name}) IN (SELECT constraint_schema, constraint_name"
        " FROM information_schema.table_constraints"
        f" WHERE {visible_table('table_schema', 'table_name', 'table_catalog')})"
    )


_TABLE_ROWS = visible_table("table_schema", "table_name", "table_catalog")

CONDITIONS: dict[tuple[str, str], str] = {
    ("information_schema", "tables"): _TABLE_ROWS,
    ("information_schema", "columns"): _TABLE_ROWS,
    ("information_schema", "views"): _TABLE_ROWS,
    ("information_schema", "table_constraints"): _TABLE_ROWS,
    ("information_schema", "key_column_usage"): _TABLE_ROWS,
    ("information_schema", "constraint_column_usage"): _TABLE_ROWS,
    ("information_schema", "constraint_table_usage"): _TABLE_ROWS,
    ("information_schema", "schemata"): visible_schema("schema_name", "catalog_name"),
    ("information_schema", "check_constraints"): _constraint("constraint_schema", "constraint_name"),
    ("information_schema", "referential_constraints"): (
        _constraint("constraint_schema", "constraint_name")
        + " AND "
        + _constraint("unique_constraint_schema", "unique_constraint_name")
    ),
    ("pg_catalog", "pg_namespace"): visible_schema("nspname"),
    ("pg_catalog", "pg_class"): _rel("oid"),
    ("pg_catalog", "pg_tables"): visible_table("schemaname", "tablename"),
    ("pg_catalog", "pg_views"): visible_table("schemaname", "viewname"),
    ("pg_catalog", "pg_indexes"): visible_table("schemaname", "tablename"),
    ("pg_catalog", "pg_sequences"): visible_schema("schemaname"),
    ("pg_catalog", "pg_attribute"): _rel("attrelid"),
    ("pg_catalog", "pg_attrdef"): _rel("adrelid"),
    ("pg_catalog", "pg_constraint"): _rel("conrelid"),
    ("pg_catalog", "pg_index"): _rel("indrelid"),
    ("pg_catalog", "pg_sequence"): _rel("seqrelid"),
    ("pg_catalog", "pg_description"): f"({_rel('objoid')} OR {_nsp('objoid')})",
    ("pg_catalog", "pg_depend"): _rel("objid"),
    ("pg_catalog", "pg_type"): f"(coalesce(typrelid, 0) = 0 OR {_rel('typrelid')})",
}
"""(schema, view) -> the condition a row must meet to be shown; views not listed hold no
per-object rows (``character_sets``, ``pg_am``, ``pg_database``, ``pg_proc``, ...)."""


def condition(schema: str, view: str) -> exp.Expr | None:
    text = CONDITIONS.get((schema, view))
    return None if text is None else sqlglot.condition(text, dialect="duckdb")


def show_tables_query(show: exp.Show) -> exp.Select:
    """``SHOW TABLES [FROM [catalog.]schema | FROM catalog]`` as a query DuckDB answers alike.

    Without FROM: the tables and views on the session's search path (temporary ones included);
    ``FROM x``: schema ``x`` of the current database, or every schema of catalog ``x``.
    """
    source = show.args.get("from_") or show.args.get("from")
    if isinstance(source, exp.Table) and source.args.get("db") is not None:
        catalog, schema = (exp.Literal.string(part).sql() for part in (source.text("db"), source.name))
        where = f"table_catalog = {catalog} AND table_schema = {schema}"
    elif isinstance(source, exp.Table):
        name = exp.Literal.string(source.name).sql()
        where = f"(table_catalog = current_database() AND table_schema = {name}) OR table_catalog = {name}"
    else:
        where = (
            "table_catalog IN (current_database(), 'temp')"
            " AND list_contains(current_schemas(TRUE), table_schema)"
        )
    query = sqlglot.parse_one(
        f"SELECT table_name AS name FROM information_schema.tables WHERE {where} ORDER BY name",
        dialect="duckdb",
    )
    assert isinstance(query, exp.Select)
    return query
