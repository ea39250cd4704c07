"""Role statements: CREATE/DROP ROLE, GRANT/REVOKE ROLE, SHOW ROLES, SET ROLE, SET SECONDARY ROLES.

Creating, dropping, granting and revoking roles needs ``account_admin`` (Databend also lets a
role's owner grant it; we keep the one rule). ``public`` is every user's without a grant.
"""

from __future__ import annotations

import pyarrow as pa

from engine.catalog.privileges import ROLE
from engine.catalog.security_db import PUBLIC_ROLE
from engine.errors import ObjectNotFound, StatementRejected
from engine.plans import Plan, RunContext, static_query, static_update
from engine.sql.tokens import TokenCursor
from engine.statements.grantees import grantee, require_grantee, role_name, session_principals

ROLES_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("inherited_roles", pa.int64(), nullable=False),
        pa.field("inherited_roles_name", pa.string(), nullable=False),
        pa.field("is_current", pa.bool_(), nullable=False),
        pa.field("is_default", pa.bool_(), nullable=False),
    ]
)


def plan_role_statement(sql: str) -> Plan | None:
    cur = TokenCursor(sql)
    if cur.accept("CREATE", "ROLE"):
        return _create_role(cur)
    if cur.accept("DROP", "ROLE"):
        return _drop_role(cur)
    if cur.is_word("GRANT", "REVOKE") and cur.is_word("ROLE", offset=1):
        return _grant_role(cur)
    if cur.accept("SHOW", "ROLES"):
        cur.finish()
        return static_query(ROLES_SCHEMA, _show_roles)
    if cur.accept("SET", "ROLE"):
        return _set_role(cur)
    if cur.accept("SET", "SECONDARY", "ROLES"):
        return _set_secondary(cur)
    return None


def require_role_admin(session: RunContext, what: str) -> None:
    authorizer = session.engine.authorizer
    authorizer.require_admin(session_principals(session), what)


def _create_role(cur: TokenCursor) -> Plan:
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    name = role_name(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        require_role_admin(session, "CREATE ROLE")
        session.engine.authorizer.store.create_role(name, session.user, if_not_exists=if_not_exists)

    return static_update(action)


def _drop_role(cur: TokenCursor) -> Plan:
    if_exists = cur.accept("IF", "EXISTS")
    name = role_name(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        require_role_admin(session, "DROP ROLE")
        engine = session.engine
        # Objects the role owned pass to root; main-database owners are users, never roles.
        holders = engine.authorizer.store.drop_role(name, if_exists=if_exists)
        engine.stage_catalog.end_urls_of(holders)

    return static_update(action)


def _grant_role(cur: TokenCursor) -> Plan:
    granting = cur.advance().text.upper() == "GRANT"
    cur.expect("ROLE")
    role = role_name(cur)
    cur.expect("TO" if granting else "FROM")
    who = grantee(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        require_role_admin(session, f"{'GRANT' if granting else 'REVOKE'} ROLE")
        engine = session.engine
        store = engine.authorizer.store
        if role == PUBLIC_ROLE:
            raise StatementRejected("Role public is every user's: it cannot be granted or revoked")
        store.require_role(role)
        require_grantee(session, who)
        if granting:
            store.grant_role(role, who, session.user)
        else:
            engine.stage_catalog.end_urls_of(store.revoke_role(role, who))

    return static_update(action)


def _show_roles(session: RunContext) -> pa.Table:
    """Roles the caller holds (every role for account_admin), with what each inherits."""
    authorizer = session.engine.authorizer
    principals = session_principals(session)
    held = sorted(authorizer.granted_roles(session.user))
    names = [r[0] for r in authorizer.store.roles()] if authorizer.is_admin(principals) else held
    edges = authorizer.store.edges()
    default = session.engine.users.default_role(session.user)
    rows = []
    for name in names:
        inherited = sorted(r for r, kind, g in edges if kind == ROLE and g == name)
        rows.append(
            {
                "name": name,
                "inherited_roles": len(inherited),
                "inherited_roles_name": ", ".join(inherited),
                "is_current": name == (session.current_role or PUBLIC_ROLE),
                "is_default": name == (default or PUBLIC_ROLE),
            }
        )
    return pa.Table.from_pylist(rows, schema=ROLES_SCHEMA)


def _set_role(cur: TokenCursor) -> Plan:
    role = role_name(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        authorizer = session.engine.authorizer
        if role != PUBLIC_ROLE and not authorizer.store.role_exists(role):
            raise ObjectNotFound(f"Role does not exist: {role}")
        if role not in authorizer.granted_roles(session.user):
            raise StatementRejected(f"Role {role} is not granted to user '{session.user}': SET ROLE refused")
        session.current_role = role

    return static_update(action)


def _set_secondary(cur: TokenCursor) -> Plan:
    if cur.accept("ALL"):
        secondary_all = True
    elif cur.accept("NONE"):
        secondary_all = False
    else:
        got = cur.peek()
        found = got.text if got else "end of statement"
        raise StatementRejected(f"Expected ALL or NONE after SET SECONDARY ROLES but found {found!r}")
    cur.finish()

    def action(session: RunContext) -> None:
        session.secondary_roles_all = secondary_all

    return static_update(action)
