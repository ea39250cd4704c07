"""What a caller may see of the catalog: for metadata answers and for catalog-view reads.

Rules (docs/design/catalog-home.md §4, §5.5-§5.6, as :mod:`engine.statements.access` applies
them to plain SQL):

* root and ``account_admin`` see everything;
* a table or view is visible when the caller owns it (a transferred ownership counts, not the
  creator's row), or holds any table privilege on it, on its schema (``db.*``) or globally;
* a schema is visible with USAGE on it, its ownership, or any visible table in it;
* a session's temporary objects are its own (catalog views keep the ``temp`` catalog; the
  metadata cursor has none).

:func:`visibility` computes the answer as :class:`engine.metadata.Visible`. Every rewritten
catalog-view read filters on the reserved name :data:`engine.sql.catalog_visibility.VISIBLE_RELATION`
(fixed at plan time, the same for every user); :func:`with_visibility` registers the caller's rows
on the session's cursor for one run and puts their registered name in its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from engine.catalog.authorizer import Authorizer
from engine.catalog.privileges import Principal
from engine.catalog.table_owners import OWNERS_TABLE
from engine.metadata.query import EVERYTHING, Visible
from engine.names import CATALOG_SCHEMA
from engine.plans import RunContext
from engine.results import Result
from engine.sql.catalog_visibility import VISIBLE_COLUMNS, VISIBLE_RELATION
from engine.statements.grantees import session_principals

T = TypeVar("T")
RunSQL = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_OBJECTS = f"""
SELECT t.schema_name, t.name, o.table_id, o.owner
FROM (
    SELECT schema_name, table_name AS name FROM duckdb_tables()
    WHERE NOT temporary AND database_name = current_database()
    UNION ALL
    SELECT schema_name, view_name FROM duckdb_views()
    WHERE NOT internal AND NOT temporary AND database_name = current_database()
) AS t
LEFT JOIN {OWNERS_TABLE} AS o
    ON lower(o.schema_name) = lower(t.schema_name) AND lower(o.table_name) = lower(t.name)
WHERE t.schema_name <> ?
"""
_SCHEMAS = (
    "SELECT schema_name FROM duckdb_schemas() WHERE TRUE"
    " AND database_name = current_database() AND schema_name <> ?"
)

_ARROW_SCHEMA = pa.schema(
    [
        pa.field(VISIBLE_COLUMNS[0], pa.utf8()),
        pa.field(VISIBLE_COLUMNS[1], pa.utf8()),
        pa.field(VISIBLE_COLUMNS[2], pa.bool_()),
    ]
)


def visibility(authz: Authorizer, principals: frozenset[Principal], run: RunSQL) -> Visible:
    """What ``principals`` may see in the database ``run`` queries (server-built SQL only)."""
    if authz.is_admin(principals):
        return EVERYTHING
    rows = run(_OBJECTS, [CATALOG_SCHEMA])
    owned = [
        (str(schema), str(name), authz.table_owner(None if tid is None else str(tid), owner), tid)
        for schema, name, tid, owner in rows
    ]
    visible = authz.visible_tables(
        principals, owned, key=lambda row: (row[0], str(row[3]) if row[3] is not None else row[1], row[2])
    )
    tables = frozenset((schema.lower(), name.lower()) for schema, name, _, _ in visible)
    with_tables = {schema for schema, _ in tables}
    schemas = frozenset(
        str(s).lower()
        for (s,) in run(_SCHEMAS, [CATALOG_SCHEMA])
        if str(s).lower() in with_tables or authz.allows_schema(principals, str(s), "USAGE")
    )
    return Visible(everything=False, tables=tables, schemas=schemas)


def session_visibility(session: RunContext) -> Visible:
    """What the session's caller may see, read on its own cursor (inside its transaction)."""
    principals = session_principals(session)
    return visibility(
        session.engine.authorizer, principals, lambda sql, params: session.run_internal(sql, params)
    )


def caller_visibility(session: RunContext, con: duckdb.DuckDBPyConnection) -> Visible:
    """What the session's caller may see, read on ``con`` (the engine's metadata cursor), for the
    Flight SQL metadata commands."""
    principals = session_principals(session)
    return visibility(
        session.engine.authorizer, principals, lambda sql, params: con.execute(sql, params).fetchall()
    )


def visibility_table(visible: Visible) -> pa.Table:
    """The rows of :data:`VISIBLE_RELATION` (see engine/sql/catalog_visibility.py)."""
    if visible.everything:
        rows: list[tuple[str | None, str | None, bool]] = [(None, None, True)]
    else:
        rows = [(schema, name, False) for schema, name in sorted(visible.tables)]
        rows += [(schema, None, False) for schema in sorted(visible.schemas)]
    columns = list(zip(*rows, strict=True)) or [(), (), ()]
    arrays = [pa.array(list(values), type=f.type) for values, f in zip(columns, _ARROW_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=_ARROW_SCHEMA)


def reads_catalog_views(sql: str) -> bool:
    """Whether regenerated SQL filters on the caller's visibility (it names the relation).

    User SQL cannot name it: the guard refuses reserved names in identifiers and strings alike.
    """
    return VISIBLE_RELATION in sql


def with_visibility(session: RunContext, sql: str, run: Callable[[str], T], *, describe: bool = False) -> T:
    """``run(text)``: ``sql`` with the caller's visibility registered under a fresh reserved name
    that replaces :data:`VISIBLE_RELATION` in it (``sql`` itself when it reads no catalog view).

    ``describe``: only the result schema is wanted (a LIMIT 0 run on a cursor already held), so
    an empty relation is registered instead of reading the caller's privileges. The relation is
    dropped when the run is over, or when a streamed result is closed.
    """
    if not reads_catalog_views(sql):
        return run(sql)
    visible = Visible() if describe else session_visibility(session)
    name = session.register_arrow(visibility_table(visible))
    try:
        result = run(sql.replace(VISIBLE_RELATION, name))
    except BaseException:
        session.unregister_all([name])
        raise
    if isinstance(result, Result) and result.stream is not None:
        done = result.on_close

        def close() -> None:
            session.unregister_all([name])  # while the cursor is still this result's
            if done is not None:
                done()

        result.on_close = close
    else:
        session.unregister_all([name])
    return result
