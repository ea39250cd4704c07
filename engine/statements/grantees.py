"""User and role names as Databend writes them, for every statement that takes one.

``alice``, ``"alice"``, ``'alice'`` and ``'alice'@'%'`` (the host part must be ``'%'``: this
server has no per-host users) name the user alice; ``ROLE r`` / ``ROLE 'r'`` name a role.
"""

from __future__ import annotations

from sqlglot.tokens import TokenType

from engine.catalog.privileges import ROLE, USER, Principal
from engine.catalog.users import check_user_name
from engine.errors import ObjectNotFound, StatementRejected
from engine.plans import RunContext
from engine.sql.tokens import TokenCursor


def _name(cur: TokenCursor, what: str) -> str:
    tok = cur.peek()
    if tok is not None and tok.token_type == TokenType.STRING:
        cur.advance()
        return tok.text
    return cur.identifier(what)


def user_name(cur: TokenCursor, what: str = "a user name") -> str:
    """``alice``, ``'alice'`` or ``'alice'@'%'``, checked against the user-name rule."""
    name = check_user_name(_name(cur, what))
    at = cur.peek()
    if at is not None and at.text == "@" and at.token_type != TokenType.STRING:
        cur.advance()
        host = cur.peek()
        if host is None:
            raise StatementRejected(f"Expected a host after '{name}'@ (only '%' is supported)")
        cur.advance()
        if host.text != "%":
            raise StatementRejected(
                f"User '{name}'@'{host.text}': only the host '%' is supported (users are not per host)"
            )
    return name


def role_name(cur: TokenCursor, what: str = "a role name") -> str:
    # Role names follow the user-name rule (letters, digits and '_'), as they are shown and quoted alike.
    name = _name(cur, what)
    try:
        check_user_name(name)
    except StatementRejected:
        raise StatementRejected(
            f"Invalid role name {name!r}: use letters, digits and '_' (not starting with a digit), at most 64"
        ) from None
    return name


def grantee(cur: TokenCursor) -> Principal:
    """After TO / FROM: ``ROLE r``, ``USER u`` or a bare or quoted user name."""
    if cur.accept("ROLE"):
        return Principal(ROLE, role_name(cur))
    cur.accept("USER")
    return Principal(USER, user_name(cur))


def session_principals(session: RunContext) -> frozenset[Principal]:
    """The caller's principals: user, current role, secondary roles (if ALL), public."""
    return session.engine.authorizer.principals(
        session.user, session.current_role, session.secondary_roles_all
    )


def require_grantee(session: RunContext, who: Principal) -> None:
    if who.kind == ROLE:
        session.engine.authorizer.store.require_role(who.name)
    elif not session.engine.users.exists(who.name):
        raise ObjectNotFound(f"User does not exist: {who.name}")
