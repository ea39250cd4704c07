"""Hide the server's reserved schema from DuckDB's catalog views (docs/security.md §3).

``information_schema`` and ``pg_catalog`` list every schema's tables, columns, constraints and row
counts, the reserved ``__stageflight`` schema and the ``__stage_*`` tables the engine registers
included. A read of one of these views becomes a subquery over the same view that drops those rows:

    FROM information_schema.tables  ->  FROM (SELECT * FROM information_schema.tables
                                              WHERE <table_schema and table_name not reserved>) AS tables

Each read also keeps only the objects the caller may use (engine/sql/catalog_visibility.py),
and ``SHOW TABLES`` is answered by such a read.

The views with no schema column to filter on (``sqlite_master``, ``duckdb_*``, ...) are refused by
the guard instead. Only :func:`hide_reserved_catalog` is public; the guard applies it to every
statement it regenerates, so no path to DuckDB skips it.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from engine.errors import StatementRejected
from engine.names import RESERVED_PREFIXES
from engine.sql.catalog_visibility import condition as visibility_condition
from engine.sql.catalog_visibility import show_tables_query

# How a column identifies what a row is about: a schema or table name, a pg_namespace oid or a
# pg_class oid. A row is hidden when any listed column points into the reserved objects.
_NAME, _NSP, _REL = "name", "nsp", "rel"
Rule = tuple[tuple[str, str], ...]

_TABLE_NAME: Rule = (("table_schema", _NAME), ("table_name", _NAME))
_INFORMATION_SCHEMA: dict[str, Rule] = {
    "tables": _TABLE_NAME,
    "columns": _TABLE_NAME,
    "views": _TABLE_NAME,
    "schemata": (("schema_name", _NAME),),
    "check_constraints": (("constraint_schema", _NAME),),
    "referential_constraints": (("constraint_schema", _NAME), ("unique_constraint_schema", _NAME)),
    "table_constraints": (("constraint_schema", _NAME), *_TABLE_NAME),
    "key_column_usage": (("constraint_schema", _NAME), *_TABLE_NAME),
    "constraint_column_usage": (("constraint_schema", _NAME), *_TABLE_NAME),
    "constraint_table_usage": (("constraint_schema", _NAME), *_TABLE_NAME),
    "character_sets": (),
}
_PG_CATALOG: dict[str, Rule] = {
    "pg_namespace": (("nspname", _NAME),),
    "pg_class": (("relnamespace", _NSP), ("relname", _NAME)),
    "pg_tables": (("schemaname", _NAME), ("tablename", _NAME)),
    "pg_views": (("schemaname", _NAME), ("viewname", _NAME)),
    "pg_indexes": (("schemaname", _NAME), ("tablename", _NAME), ("indexname", _NAME)),
    "pg_sequences": (("schemaname", _NAME), ("sequencename", _NAME)),
    "pg_attribute": (("attrelid", _REL),),
    "pg_attrdef": (("adrelid", _REL),),
    "pg_constraint": (("connamespace", _NSP), ("conrelid", _REL)),
    "pg_index": (("indrelid", _REL), ("indexrelid", _REL)),
    "pg_sequence": (("seqrelid", _REL),),
    "pg_description": (("objoid", _REL), ("objoid", _NSP)),
    "pg_depend": (("objid", _REL), ("refobjid", _REL)),
    "pg_type": (("typnamespace", _NSP), ("typrelid", _REL)),
    "pg_proc": (("pronamespace", _NSP),),
    "pg_am": (),
    "pg_collation": (),
    "pg_database": (),
    "pg_enum": (),
    "pg_tablespace": (),
}
_PLAIN_TABLE_ARGS = ("this", "db", "catalog", "alias")
_VIEWS = {"information_schema": _INFORMATION_SCHEMA, "pg_catalog": _PG_CATALOG}


def _reserved(column: str) -> str:
    tests = " OR ".join(f"starts_with(lower(CAST({column} AS VARCHAR)), '{p}')" for p in RESERVED_PREFIXES)
    return f"coalesce({tests}, FALSE)"


_RESERVED_NSP = f"SELECT oid FROM pg_catalog.pg_namespace WHERE {_reserved('nspname')}"
_RESERVED_REL = (
    f"SELECT oid FROM pg_catalog.pg_class WHERE {_reserved('relname')} OR relnamespace IN ({_RESERVED_NSP})"
)


def _visible(column: str, kind: str) -> str:
    if kind == _NAME:
        return f"NOT {_reserved(column)}"
    oids = _RESERVED_NSP if kind == _NSP else _RESERVED_REL
    return f"coalesce({column} NOT IN ({oids}), TRUE)"


# Where a table is named, not read: DuckDB refuses writes to its views, and DESCRIBE shows columns only.
# Every other place (FROM, JOIN, MERGE ... USING, DELETE ... USING, ...) reads it and is filtered.
_NAMED_TARGETS = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_NAMED_TARGETS_ANY_ARG = (
    exp.Schema,
    exp.TruncateTable,
    exp.Drop,
    exp.Create,
    exp.Alter,
    exp.Describe,
    exp.Index,
)


def _is_named_target(table: exp.Table) -> bool:
    parent = table.parent
    if isinstance(parent, _NAMED_TARGETS_ANY_ARG):
        return True
    return isinstance(parent, _NAMED_TARGETS) and table.arg_key == "this"


def _view_of(table: exp.Table, cte_names: set[str]) -> tuple[str, str] | None:
    """(schema, view) of a catalog view read, or None when ``table`` is not one."""
    if not isinstance(table.this, exp.Identifier) or _is_named_target(table):
        return None
    name, schema = table.name.lower(), table.db.lower()
    if schema in _VIEWS:
        return (schema, name) if name in _VIEWS[schema] else None
    if not schema and not table.catalog and name in _PG_CATALOG and name not in cte_names:
        return "pg_catalog", name  # pg_catalog is on DuckDB's search path
    return None


def _filtered(table: exp.Table, rule: Rule, view: tuple[str, str]) -> exp.Expression:
    extra = sorted(key for key, value in table.args.items() if value and key not in _PLAIN_TABLE_ARGS)
    if extra:
        raise StatementRejected(f"System view {table.name} cannot be used with {extra[0].upper()}")
    source = table.copy()
    source.set("alias", None)
    if not source.db:
        source.set("db", exp.to_identifier("pg_catalog"))
    query = exp.select("*").from_(source)
    if rule:
        condition = " AND ".join(_visible(column, kind) for column, kind in rule)
        query = query.where(sqlglot.condition(condition, dialect="duckdb"))
    visible = visibility_condition(*view)
    if visible is not None:  # only what the caller may use (engine/sql/catalog_visibility.py)
        query = query.where(visible)
    alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name))
    return exp.Subquery(this=query, alias=alias.copy())


def hide_reserved_catalog(tree: exp.Expression) -> exp.Expression:
    """``tree`` with every read of a catalog view filtered (a copy; ``tree`` itself if none).

    Each read keeps only the rows of objects that are not reserved and that the caller may use
    (the reserved relation :data:`engine.sql.catalog_visibility.VISIBLE_RELATION`, registered for
    the caller at run time). ``SHOW TABLES`` is first rewritten into such a read.
    """
    if isinstance(tree, exp.Show) and str(tree.name).upper() == "TABLES":
        unknown = sorted(key for key, value in tree.args.items() if value and key not in _SHOW_TABLES_ARGS)
        if unknown:
            raise StatementRejected(f"SHOW TABLES cannot be used with {unknown[0].upper()}")
        tree = show_tables_query(tree)
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    if not any(_view_of(table, cte_names) is not None for table in tree.find_all(exp.Table)):
        return tree
    tree = tree.copy()
    targets = [(table, _view_of(table, cte_names)) for table in tree.find_all(exp.Table)]
    for table, view in targets:
        if view is not None:
            table.replace(_filtered(table, _VIEWS[view[0]][view[1]], view))
    return tree


_SHOW_TABLES_ARGS = ("this", "from_", "from")
