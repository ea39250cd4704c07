"""Which catalogs user SQL may name (docs/design/catalog-home.md §5.2).

A name may be qualified only with the main database or ``temp``. DuckDB reads ``x.t`` as catalog
``x`` when no schema ``x`` exists, so the first part of a two-part name is refused too when it is
another catalog DuckDB knows (``system``, ``memory`` or any other attached one). The engine calls
:func:`configure_catalogs_from` at start with its own DuckDB; the plan cache keys on statement
text only, so this is one process-wide setting, set before any statement is planned. Until then
the main database is ``stageflight``, the name DuckDB gives ``EngineConfig.database_path``.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
from sqlglot import exp

from engine.errors import StatementRejected

ALWAYS_ATTACHED = frozenset({"system", "memory", "temp"})
_allowed_catalogs: frozenset[str] = frozenset({"stageflight", "temp"})
_refused_catalogs: frozenset[str] = ALWAYS_ATTACHED - _allowed_catalogs


def configure_catalogs(allowed: Iterable[str], attached: Iterable[str] = ()) -> None:
    """Set the catalogs a name may be qualified with (``allowed``) and the other catalog names
    DuckDB knows (``attached``), whose use as a qualifier is refused. Call once, at engine start."""
    global _allowed_catalogs, _refused_catalogs
    allowed_set = frozenset(name.lower() for name in allowed)
    if not allowed_set:
        raise ValueError("configure_catalogs needs at least one allowed catalog")
    known = ALWAYS_ATTACHED | {name.lower() for name in attached}
    _allowed_catalogs, _refused_catalogs = allowed_set, known - allowed_set


def configure_catalogs_from(cur: duckdb.DuckDBPyConnection) -> None:
    """Allow the current database of ``cur`` and ``temp``; refuse every other attached catalog."""
    main = cur.execute("SELECT current_database()").fetchall()[0][0]
    attached = [row[0] for row in cur.execute("SELECT database_name FROM duckdb_databases()").fetchall()]
    configure_catalogs({str(main), "temp"}, [str(name) for name in attached])


def allowed_catalogs() -> frozenset[str]:
    return _allowed_catalogs


def check_catalog(name: str | None) -> None:
    """Refuse a catalog name that is not the main database or temp (e.g. for USE)."""
    if name is not None and name.lower() not in _allowed_catalogs:
        raise StatementRejected(f"Catalog not allowed: {name}")


def check_table_catalog(table: exp.Table, present: list[exp.Expr]) -> None:
    """Refuse a table (or schema, or SHOW TABLES FROM) reference that names another catalog;
    ``present`` are its name parts as written, outermost first."""
    catalog = table.args.get("catalog")
    if isinstance(catalog, exp.Identifier):
        check_catalog(catalog.name)
        return
    first = present[0]
    if first.name.lower() not in _refused_catalogs:
        return
    if table.this is None:  # CREATE/DROP SCHEMA s: a schema named like a catalog reads as that catalog
        raise StatementRejected(f"Schema name {first.name} is not allowed: it names a catalog")
    if len(present) > 1 or isinstance(table.parent, exp.Show):  # x.t, SHOW TABLES FROM x
        raise StatementRejected(f"Catalog not allowed: {first.name}")


def check_object_name_literal(func_name: str, text: str) -> None:
    """nextval('memory.main.seq'): the sequence name is a qualified name inside a string."""
    parts = [part.strip().strip('"').lower() for part in text.split(".")]
    if len(parts) >= 3:
        check_catalog(parts[0])
    elif len(parts) == 2 and parts[0] in _refused_catalogs:
        raise StatementRejected(f"Catalog not allowed: {parts[0]} (in {func_name})")
