"""User management statements: CREATE/ALTER/DROP USER, SHOW USERS (root only).

User names may be written bare, double-quoted, single-quoted or as ``'name'@'%'`` (Databend's
form): engine.statements.grantees reads them all.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot.tokens import TokenType

from engine.catalog.users import USERS_SCHEMA
from engine.errors import PermissionDenied
from engine.plans import Plan, RunContext, static_query, static_update
from engine.sql.tokens import TokenCursor
from engine.statements.grantees import role_name, user_name


def _require_admin(session: RunContext, what: str) -> None:
    if not session.is_admin:
        raise PermissionDenied(
            f"Permission denied: {what} requires the root user (current user: {session.user})"
        )


def plan_user_statement(sql: str) -> Plan | None:
    """Plan a user-management statement, or None when ``sql`` is not one."""
    cur = TokenCursor(sql)
    if cur.accept("CREATE", "USER"):
        return _create_user(cur)
    if cur.accept("ALTER", "USER"):
        return _alter_user(cur)
    if cur.accept("DROP", "USER"):
        return _drop_user(cur)
    if cur.accept("SHOW", "USERS"):
        cur.finish()
        return _show_users()
    return None


def _password_clause(cur: TokenCursor) -> str:
    cur.expect("IDENTIFIED", "BY")
    password = cur.string("the password as a quoted string")
    if not password:
        from engine.errors import StatementRejected

        raise StatementRejected("Password must not be empty")
    return password


def _create_user(cur: TokenCursor) -> Plan:
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    name = user_name(cur)
    password = _password_clause(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        _require_admin(session, "CREATE USER")
        session.engine.users.create(name, password, if_not_exists=if_not_exists)

    return static_update(action)


def _alter_user(cur: TokenCursor) -> Plan:
    name = user_name(cur)
    if cur.accept("WITH"):
        return _alter_default_role(cur, name)
    password = _password_clause(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        if name != session.user:
            _require_admin(session, "ALTER USER of another user")
        session.engine.users.alter_password(name, password)
        session.engine.on_password_changed(name)

    return static_update(action)


def _alter_default_role(cur: TokenCursor, name: str) -> Plan:
    """``ALTER USER u WITH DEFAULT_ROLE = 'r'`` (Databend): the role new sessions of u start in."""
    cur.expect("DEFAULT_ROLE")
    cur.expect_type(TokenType.EQ, "'=' after DEFAULT_ROLE")
    role = role_name(cur, "the default role's name")
    cur.finish()

    def action(session: RunContext) -> None:
        if name != session.user:
            _require_admin(session, "ALTER USER of another user")
        session.engine.users.set_default_role(name, role)

    return static_update(action)


def _drop_user(cur: TokenCursor) -> Plan:
    if_exists = cur.accept("IF", "EXISTS")
    name = user_name(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        _require_admin(session, "DROP USER")
        session.engine.users.drop(name, if_exists=if_exists)

    return static_update(action)


def _show_users() -> Plan:
    def produce(session: RunContext) -> pa.Table:
        _require_admin(session, "SHOW USERS")
        return session.engine.users.list()

    return static_query(USERS_SCHEMA, produce)
