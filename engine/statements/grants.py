"""Object grants: GRANT/REVOKE <privileges> ON <db.table | db.* | *.* | table>, GRANT OWNERSHIP,
SHOW GRANTS [FOR 'user' | FOR USER u | FOR ROLE r].

Stage grants (``ON STAGE s``, ``CREATE STAGE``) are read in engine.statements.stages; they land
in the same ``object_grants`` table. Who may grant on an object: its owner, or account_admin
(``*.*`` grants: account_admin only). Databend also requires the GRANT privilege; we have none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyarrow as pa
from sqlglot.tokens import TokenType

from engine.catalog.authorizer import owner_principal
from engine.catalog.privileges import GLOBAL, ROLE, SCHEMA, STAGE, TABLE, USER, Principal, expand_privileges
from engine.catalog.table_owners import OWNERS_TABLE, table_names_by_id
from engine.errors import ObjectNotFound, PermissionDenied, StatementRejected
from engine.names import reject_reserved
from engine.plans import Plan, RunContext, static_query, static_update
from engine.sql.tokens import TokenCursor
from engine.statements.access import resolve
from engine.statements.grantees import grantee, require_grantee, role_name, session_principals, user_name

GRANTS_SCHEMA = pa.schema(
    [
        pa.field("privileges", pa.string(), nullable=False),
        pa.field("object_name", pa.string(), nullable=False),
        pa.field("object_id", pa.string()),
        pa.field("grant_to", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("grants", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Target:
    """What ON names, as written: ``*.*``, ``db.*``, ``db.t`` or ``t``."""

    kind: str  # GLOBAL, SCHEMA or TABLE
    schema: str | None = None
    table: str | None = None


@dataclass(frozen=True)
class Resolved:
    kind: str
    object_id: str
    label: str  # how messages and SHOW GRANTS name it
    owner: Principal


def plan_grant_statement(sql: str) -> Plan | None:
    cur = TokenCursor(sql)
    if cur.is_word("GRANT", "REVOKE"):
        return _grant(cur)
    if cur.accept("SHOW", "GRANTS"):
        return _show_grants(cur)
    return None


# -- parsing ----------------------------------------------------------------------------------
def _privilege_words(cur: TokenCursor) -> list[str]:
    words: list[str] = []
    while True:
        word = cur.identifier("a privilege (SELECT, INSERT, ..., ALL or OWNERSHIP)").upper()
        if word == "ALL":
            cur.accept("PRIVILEGES")
        words.append(word)
        if not cur.accept_type(TokenType.COMMA):
            return words


def _target(cur: TokenCursor) -> Target:
    if cur.accept("SCHEMA") or cur.accept("DATABASE"):
        return Target(SCHEMA, schema=cur.identifier("a schema name"))
    cur.accept("TABLE")
    if cur.accept_type(TokenType.STAR):
        cur.expect_type(TokenType.DOT, "'.*' after '*' (write *.* for all schemas)")
        cur.expect_type(TokenType.STAR, "'*' after '*.' (write *.* for all schemas)")
        return Target(GLOBAL)
    first = cur.identifier("a table, db.table, db.* or *.*")
    if not cur.accept_type(TokenType.DOT):
        return Target(TABLE, table=first)
    if cur.accept_type(TokenType.STAR):
        return Target(SCHEMA, schema=first)
    second = cur.identifier("a table name after the schema")
    if cur.peek() is not None and cur.peek().token_type == TokenType.DOT:  # type: ignore[union-attr]
        raise StatementRejected(
            f"Grants name schema.table, not catalog.schema.table: drop {first!r} from {first}.{second}..."
        )
    return Target(TABLE, schema=first, table=second)


def _grant(cur: TokenCursor) -> Plan:
    granting = cur.advance().text.upper() == "GRANT"
    words = _privilege_words(cur)
    cur.expect("ON")
    target = _target(cur)
    cur.expect("TO" if granting else "FROM")
    who = grantee(cur)
    cur.finish()
    if "OWNERSHIP" in words:
        if len(words) > 1:
            raise StatementRejected("OWNERSHIP is granted alone, not with other privileges")
        if not granting:
            raise StatementRejected("REVOKE OWNERSHIP is not supported: GRANT OWNERSHIP to the new owner")
        return _grant_ownership(target, who)
    privileges = expand_privileges(target.kind, words)
    verb = "GRANT" if granting else "REVOKE"

    def action(session: RunContext) -> None:
        obj = resolve_target(session, target)
        principals = session_principals(session)
        authorizer = session.engine.authorizer
        if obj.kind == GLOBAL:
            authorizer.require_admin(principals, f"{verb} on *.*")
        else:
            authorizer.require_grantor(principals, obj.owner, obj.label)
        require_grantee(session, who)
        store = authorizer.store
        if granting:
            store.grant(obj.kind, obj.object_id, privileges, who, session.user)
        else:
            store.revoke(obj.kind, obj.object_id, privileges, who)

    return static_update(action)


def _grant_ownership(target: Target, who: Principal) -> Plan:
    if target.kind == GLOBAL:
        raise StatementRejected("OWNERSHIP is granted on a table or a schema (db.*), not on *.*")

    def action(session: RunContext) -> None:
        obj = resolve_target(session, target)
        authorizer = session.engine.authorizer
        authorizer.require_grantor(session_principals(session), obj.owner, obj.label)
        require_grantee(session, who)
        authorizer.store.set_owner(obj.kind, obj.object_id, who)
        if obj.kind == TABLE and who.kind == USER:
            # The table stage @%t follows the recorded owner.
            session.run_internal(
                f"UPDATE {OWNERS_TABLE} SET owner = ? WHERE table_id = ?", [who.name, obj.object_id]
            )

    return static_update(action)


# -- resolution -------------------------------------------------------------------------------
def resolve_target(session: RunContext, target: Target) -> Resolved:
    authorizer = session.engine.authorizer
    if target.kind == GLOBAL:
        return Resolved(GLOBAL, "*", "*.*", owner_principal(None))
    if target.kind == SCHEMA:
        schema = str(target.schema)
        reject_reserved(schema)
        rows = session.run_internal(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
            "AND lower(schema_name) = lower(?)",
            [schema],
        )
        if not rows:
            raise ObjectNotFound(f"Schema does not exist: {schema}")
        name = str(rows[0][0])
        return Resolved(SCHEMA, name.lower(), f"{name}.*", authorizer.schema_owner(name))
    reject_reserved(target.schema, target.table)
    found = resolve(session, target.schema, str(target.table))  # a table or a view
    named = f"{target.schema}.{target.table}" if target.schema else target.table
    if found is None:
        raise ObjectNotFound(f"Table does not exist: {named}")
    if found.temporary:
        raise StatementRejected(f"Cannot grant on the temporary table {named}: it is the session's own")
    table_id = found.table_id
    if table_id is None:
        # An object from before owners were recorded: root's, and it gets its uuid now.
        table_id = str(uuid.uuid4())
        session.run_internal(
            f"INSERT INTO {OWNERS_TABLE} (table_id, schema_name, table_name, owner) VALUES (?, ?, ?, ?)",
            [table_id, found.schema, found.name, found.owner.name],
        )
    return Resolved(TABLE, table_id, f"{found.schema}.{found.name}", found.owner)


# -- SHOW GRANTS --------------------------------------------------------------------------------
def _show_grants(cur: TokenCursor) -> Plan:
    subject: Principal | None = None
    if cur.accept("FOR"):
        if cur.accept("ROLE"):
            subject = Principal(ROLE, role_name(cur))
        else:
            cur.accept("USER")
            subject = Principal(USER, user_name(cur))
    cur.finish()

    def produce(session: RunContext) -> pa.Table:
        who = subject or Principal(USER, session.user)
        _may_show(session, who)
        return pa.Table.from_pylist(grant_rows(session, who), schema=GRANTS_SCHEMA)

    return static_query(GRANTS_SCHEMA, produce)


def _may_show(session: RunContext, who: Principal) -> None:
    authorizer = session.engine.authorizer
    principals = session_principals(session)
    if who.kind == ROLE:
        if who.name != "public":
            authorizer.store.require_role(who.name)
    elif not session.engine.users.exists(who.name):
        raise ObjectNotFound(f"User does not exist: {who.name}")
    if authorizer.is_admin(principals) or who in principals:
        return
    if who.kind == ROLE and who.name in authorizer.granted_roles(session.user):
        return
    raise PermissionDenied(f"Permission denied: SHOW GRANTS FOR {who.describe()} requires account_admin")


def _holders(session: RunContext, who: Principal) -> list[Principal]:
    """``who`` and every role whose grants it has (a user: its roles and public)."""
    authorizer = session.engine.authorizer
    if who.kind == USER:
        roles = authorizer.granted_roles(who.name)
    else:
        roles = authorizer.role_closure(who.name)
    return [who] + sorted(Principal(ROLE, r) for r in roles if Principal(ROLE, r) != who)


def grant_rows(session: RunContext, who: Principal) -> list[dict[str, object]]:
    store = session.engine.authorizer.store
    holders = _holders(session, who)
    grouped: dict[tuple[str, str, str, str], list[str]] = {}
    for kind, object_id, privilege, grantee_kind, grantee_name in store.grants_to(holders):
        grouped.setdefault((kind, object_id, grantee_kind, grantee_name), []).append(privilege)
    owned = {(kind, object_id, holder) for holder in holders for kind, object_id in store.owned_by(holder)}
    if who.kind == USER:
        owned.update(
            (STAGE, s.name, who) for s in session.engine.stage_catalog.list() if s.creator == who.name
        )
        recorded = session.run_internal(f"SELECT table_id FROM {OWNERS_TABLE} WHERE owner = ?", [who.name])
        for (table_id,) in recorded:
            if store.owner(TABLE, str(table_id)) is None:
                owned.add((TABLE, str(table_id), who))
    table_ids = [oid for kind, oid, *_ in grouped if kind == TABLE] + [
        oid for kind, oid, _ in owned if kind == TABLE
    ]
    names = table_names_by_id(session.run_internal, sorted(set(table_ids)))
    rows = []
    for (kind, object_id, grantee_kind, grantee_name), privileges in sorted(grouped.items()):
        holder = Principal(grantee_kind, grantee_name)
        rows.append(_row(kind, object_id, names, ",".join(sorted(privileges)), holder))
    for kind, object_id, holder in sorted(owned):
        rows.append(_row(kind, object_id, names, "OWNERSHIP", holder))
    return rows


def _row(
    kind: str, object_id: str, names: dict[str, tuple[str, str]], privileges: str, holder: Principal
) -> dict[str, object]:
    if kind == TABLE:
        schema_table = names.get(object_id)
        object_name = f"{schema_table[0]}.{schema_table[1]}" if schema_table else object_id
        on = object_name
    elif kind == SCHEMA:
        object_name, on = object_id, f"{object_id}.*"
    elif kind == STAGE:
        object_name, on = object_id, f"STAGE {object_id}"
    else:
        object_name, on = "*.*", "*.*"
    to = f"ROLE {holder.name}" if holder.kind == ROLE else f"'{holder.name}'"
    return {
        "privileges": privileges,
        "object_name": object_name,
        "object_id": object_id if kind == TABLE else None,
        "grant_to": holder.kind.upper(),
        "name": holder.name,
        "grants": f"GRANT {privileges} ON {on} TO {to}",
    }
