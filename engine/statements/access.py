"""Checking a statement's table needs for the calling session, each time it runs.

Plans carry needs (names and privileges, from :mod:`engine.sql.table_refs`), never decisions:
the same plan serves every user, and a REVOKE takes effect at the next execution of a prepared
statement. Names are resolved here as DuckDB resolves them for this session (search path,
temporary objects first), so the object checked is the object the statement will use.

Rules (docs/design/catalog-home.md §4):

* root and ``account_admin`` may do everything; an object's owner may do everything with it;
* a session's own temporary tables and views are its own;
* CREATE needs USAGE and CREATE on the schema (``public`` has both on ``main``); CREATE OR
  REPLACE of an existing object needs its ownership as well; CREATE SCHEMA needs the global
  CREATE; DROP SCHEMA needs the schema's ownership;
* a name that resolves to nothing is left to DuckDB, whose error says it does not exist.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from engine.catalog.authorizer import Authorizer
from engine.catalog.privileges import Principal
from engine.catalog.table_owners import find_table, identity_of
from engine.errors import EngineError, PermissionDenied
from engine.plans import RunContext
from engine.results import Result
from engine.sql.table_refs import TableNeed
from engine.statements.grantees import session_principals


@dataclass(frozen=True)
class Resolved:
    """What a relation name means in the session: a table or view with its identity, or a temporary one."""

    schema: str
    name: str
    table_id: str | None
    owner: Principal
    temporary: bool = False


def require_needs(session: RunContext, needs: Iterable[TableNeed]) -> None:
    """Raise PermissionDenied (naming the privilege and object) unless every need is allowed."""
    needs = list(needs)
    if not needs:
        return
    authz = session.engine.authorizer
    principals = session_principals(session)
    if authz.is_admin(principals):
        return
    for need in needs:
        _require(session, authz, principals, need)


def checked_in_one_snapshot(
    session: RunContext, needs: Sequence[TableNeed], run: Callable[[], Result]
) -> Result:
    """Check ``needs`` and run the statement in one transaction (an autocommit statement gets its
    own), so the check and the statement see the same tables: a table another session creates,
    drops or replaces in between cannot slip in under a checked name.

    A streamed result keeps its transaction (a read) until the stream is closed.
    """
    if not needs or session.in_transaction:
        require_needs(session, needs)
        return run()
    if session.engine.authorizer.is_admin(session_principals(session)):
        return run()  # nothing is checked, so there is nothing to keep consistent
    session.begin()
    try:
        require_needs(session, needs)
        result = run()
    except BaseException:
        with contextlib.suppress(EngineError):
            session.rollback()
        raise
    if result.stream is None:
        session.commit()
        return result
    done = result.on_close

    def close() -> None:
        if done is not None:
            done()  # gives the cursor back first: the commit needs it
        session.commit()

    result.on_close = close
    return result


def require_table_privilege(session: RunContext, schema: str | None, name: str, privilege: str) -> None:
    """One privilege on one table or view, for COPY, unload, ingest and table stages."""
    require_needs(session, [TableNeed(None, schema and schema.lower(), name.lower(), privilege)])


def may_use(session: RunContext, schema: str, name: str, privilege: str) -> bool:
    try:
        require_table_privilege(session, schema, name, privilege)
    except PermissionDenied:
        return False
    return True


def resolve(session: RunContext, schema: str | None, name: str) -> Resolved | None:
    """The table or view ``[schema.]name`` means for the session, or None when there is none."""
    authz = session.engine.authorizer
    info = find_table(session.run_internal, schema, name)  # temporary tables first, as DuckDB
    if info is not None and info.temporary:
        return Resolved(info.schema, info.table, None, Principal("user", session.user), temporary=True)
    if info is not None:
        identity = identity_of(session.run_internal, info.schema, info.table)
        owner = authz.table_owner(identity.table_id, identity.owner)
        return Resolved(identity.schema, identity.table, identity.table_id, owner)
    return _resolve_view(session, authz, schema, name)


def _resolve_view(session: RunContext, authz: Authorizer, schema: str | None, name: str) -> Resolved | None:
    rows = session.run_internal(
        "SELECT v.temporary, v.schema_name, v.view_name, "
        "list_position(current_schemas(false), v.schema_name) AS rank "
        "FROM duckdb_views() v WHERE NOT v.internal AND lower(v.view_name) = lower(?) "
        "AND (v.temporary OR v.database_name = current_database()) "
        "AND (? IS NULL OR lower(v.schema_name) = lower(?)) "
        "ORDER BY v.temporary DESC, rank NULLS LAST, v.schema_name = 'main' DESC LIMIT 1",
        [name, schema, schema],
    )
    if not rows:
        return None
    temporary, view_schema, view_name, _ = rows[0]
    if temporary:
        return Resolved(str(view_schema), str(view_name), None, Principal("user", session.user), True)
    identity = identity_of(session.run_internal, str(view_schema), str(view_name))
    owner = authz.table_owner(identity.table_id, identity.owner)
    return Resolved(identity.schema, identity.table, identity.table_id, owner)


def _require(
    session: RunContext, authz: Authorizer, principals: frozenset[Principal], need: TableNeed
) -> None:
    if need.catalog == "temp" or need.kind in ("sequence", "index"):
        return  # the session's own temporary objects; sequences and indexes have no privileges
    if need.kind == "schema":
        _require_schema(authz, principals, need)
        return
    if need.privilege == "CREATE":
        schema = need.schema or session.current_schema()
        authz.require_schema_create(principals, schema)
        return
    found = resolve(session, need.schema, need.name)
    if found is None or found.temporary:
        return  # nothing by that name (DuckDB says so), or the session's own temporary object
    privilege = "OWNERSHIP" if need.privilege == "REPLACE" else need.privilege
    if privilege == "OWNERSHIP":
        if found.owner not in principals:
            raise PermissionDenied(f"Permission denied: OWNERSHIP on {found.schema}.{found.name}")
        return
    authz.require_table(
        principals, found.schema, found.table_id or found.name, privilege, found.owner, table_name=found.name
    )


def _require_schema(authz: Authorizer, principals: frozenset[Principal], need: TableNeed) -> None:
    if need.privilege == "CREATE":
        if not authz.allows_global(principals, "CREATE"):
            raise PermissionDenied(f"Permission denied: CREATE SCHEMA {need.name} needs the global CREATE")
        return
    if authz.schema_owner(need.name) not in principals:
        raise PermissionDenied(f"Permission denied: {need.privilege} on schema {need.name} (not its owner)")
