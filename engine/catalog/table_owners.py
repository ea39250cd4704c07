"""Who owns a table: the ``table_owners`` table, and the table a name means in a session.

A table stage ``@%t`` belongs to its table's owner: the user who created the table (root for
tables created before owners were recorded). The rows follow the tables through DDL
(:mod:`engine.statements.table_identity`).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.catalog.load_history import RunSQL
from engine.names import CATALOG_SCHEMA

OWNERS_TABLE = f"{CATALOG_SCHEMA}.table_owners"


@dataclass(frozen=True)
class TableInfo:
    schema: str
    table: str
    owner: str | None  # None: created before owners were recorded, so root's
    temporary: bool = False


def find_table(
    run: RunSQL, schema: str | None, table: str, *, temporary: bool = True, owner: bool = True
) -> TableInfo | None:
    """The table ``[schema.]table`` means in this session, as DuckDB resolves it.

    A bare name is looked up along the search path: temporary tables, then the session's schemas
    (``SET schema``/``search_path``), then ``main``. ``run`` is the session's (its cursor and
    transaction), so a table the session created in its open transaction is found too.
    ``owner=False`` leaves the owner out (None): in the lake, reading the owners table is a scan.
    """
    joined = (
        f"LEFT JOIN {OWNERS_TABLE} o ON NOT t.temporary AND lower(o.schema_name) = lower(t.schema_name) "
        "AND lower(o.table_name) = lower(t.table_name) "
    )
    rows = run(
        f"SELECT t.temporary, t.schema_name, t.table_name, {'o.owner' if owner else 'NULL'}, "
        f"current_schemas(false) FROM duckdb_tables() t {joined if owner else ''}"
        "WHERE lower(t.table_name) = lower(?) AND (t.temporary OR t.database_name = current_database()) "
        "AND t.schema_name <> ?",
        [table, CATALOG_SCHEMA],
    )
    found = [
        TableInfo(schema=r[1], table=r[2], owner=r[3], temporary=bool(r[0]))
        for r in rows
        if temporary or not r[0]
    ]
    if schema is not None:
        return next((f for f in found if not f.temporary and f.schema.lower() == schema.lower()), None)
    if not found:
        return None
    order = ["\0temp"] + [str(s).lower() for s in rows[0][4] or []] + ["main"]

    def rank(info: TableInfo) -> int:
        key = "\0temp" if info.temporary else info.schema.lower()
        return order.index(key) if key in order else len(order)

    best = min(found, key=rank)
    return best if rank(best) < len(order) else None


def table_for_stage(run: RunSQL, schema: str | None, table: str) -> tuple[str, str, str | None] | None:
    """What a table-stage reference ``@%[schema.]table`` names: (schema, table, owner) or None.

    Temporary tables have no table stage, so a bare name skips them.
    """
    info = find_table(run, schema, table, temporary=False)
    return None if info is None else (info.schema, info.table, info.owner)


@dataclass(frozen=True)
class TableIdentity:
    """A table as grants name it: its uuid (None before one was recorded) and recorded owner."""

    schema: str
    table: str
    table_id: str | None
    owner: str  # root for tables created before owners were recorded


def table_identity(run: RunSQL, schema: str | None, table: str) -> TableIdentity | None:
    """The uuid and owner of the (non-temporary) table ``[schema.]table`` means in this session.

    ``run`` is the session's, as for :func:`find_table`. A transferred ownership (GRANT
    OWNERSHIP, kept in the security database) is the authorizer's to apply on top.
    """
    info = find_table(run, schema, table, temporary=False)
    return None if info is None else identity_of(run, info.schema, info.table)


def identity_of(run: RunSQL, schema: str, name: str) -> TableIdentity:
    """The owner row of the table or view named exactly ``schema.name`` (root's when it has none)."""
    rows = run(
        f"SELECT table_id, owner FROM {OWNERS_TABLE} "
        "WHERE lower(schema_name) = lower(?) AND lower(table_name) = lower(?)",
        [schema, name],
    )
    if not rows:
        return TableIdentity(schema, name, None, ROOT_OWNER)
    return TableIdentity(schema, name, str(rows[0][0]), str(rows[0][1]))


def table_names_by_id(run: RunSQL, table_ids: list[str]) -> dict[str, tuple[str, str]]:
    """table uuid -> (schema, table) for the ids that still name a table row."""
    if not table_ids:
        return {}
    marks = ", ".join("?" for _ in table_ids)
    rows = run(
        f"SELECT table_id, schema_name, table_name FROM {OWNERS_TABLE} WHERE table_id IN ({marks})", table_ids
    )
    return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}


ROOT_OWNER = "root"
