"""Roles, role memberships, object grants and owners: the rows of the security database.

Each change runs in one security transaction that also bumps ``catalog_version``, so any cache of
effective privileges (engine.catalog.authorizer) sees it at its next look. Nothing here decides
who may change what: the statements check that (owner or account_admin) before calling.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import duckdb

from engine.catalog.security_db import ACCOUNT_ADMIN, BUILTIN_ROLES, PUBLIC_ROLE
from engine.catalog.security_store import DuplicateRow, SecurityStore
from engine.errors import ObjectAlreadyExists, ObjectNotFound, StatementRejected

# The generation that presigned URLs of table stages carry: every loss of a table privilege
# (REVOKE, role changes, ownership transfer, DROP USER) ends them all; a blunt but safe rule.
TABLE_PRIVILEGES_SCOPE = "table-privileges"
USER = "user"
ROLE = "role"
ROOT_USER = "root"

GLOBAL, SCHEMA, TABLE, STAGE = "global", "schema", "table", "stage"
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP")
SCHEMA_PRIVILEGES = ("CREATE", "USAGE")
STAGE_PRIVILEGES = ("READ", "WRITE")
# What a grant on each kind of object may name. Schema (db.*) and global (*.*) grants also carry
# table privileges: they cover every table of the schema (or all), current and future.
ALLOWED: dict[str, tuple[str, ...]] = {
    TABLE: TABLE_PRIVILEGES,
    SCHEMA: SCHEMA_PRIVILEGES + TABLE_PRIVILEGES,
    GLOBAL: ("CREATE", "CREATE STAGE", "USAGE") + TABLE_PRIVILEGES,
    STAGE: STAGE_PRIVILEGES,
}


class Principal(NamedTuple):
    kind: str  # USER or ROLE
    name: str

    def describe(self) -> str:
        return f"role {self.name}" if self.kind == ROLE else f"user '{self.name}'"


ROOT = Principal(USER, ROOT_USER)
ADMIN_ROLE = Principal(ROLE, ACCOUNT_ADMIN)
PUBLIC = Principal(ROLE, PUBLIC_ROLE)


def expand_privileges(kind: str, words: Sequence[str]) -> tuple[str, ...]:
    """The privileges a GRANT names, with ALL expanded now (a later privilege is not included)."""
    allowed = ALLOWED[kind]
    out: list[str] = []
    for word in words:
        upper = word.upper()
        if upper in ("ALL", "ALL PRIVILEGES"):
            out.extend(allowed)
        elif upper in allowed:
            out.append(upper)
        else:
            raise StatementRejected(
                f"Privilege {upper} does not apply to a {kind} grant: use {', '.join(allowed)} or ALL"
            )
    return tuple(dict.fromkeys(out))


class PrivilegeStore:
    def __init__(self, security: SecurityStore) -> None:
        self.security = security

    def version(self) -> int:
        return self.security.version()

    # -- roles -------------------------------------------------------------------------
    def role_exists(self, name: str) -> bool:
        return bool(self.security.rows("SELECT 1 FROM roles WHERE name = ?", [name]))

    def require_role(self, name: str) -> None:
        if not self.role_exists(name):
            raise ObjectNotFound(f"Role does not exist: {name}")

    def roles(self) -> list[tuple[Any, ...]]:
        return self.security.rows("SELECT name, comment, created_by, created_on FROM roles ORDER BY name")

    def create_role(self, name: str, created_by: str, *, if_not_exists: bool = False) -> None:
        try:
            with self.security.transaction() as cur:
                if cur.execute("SELECT 1 FROM roles WHERE name = ?", [name]).fetchall():
                    raise DuplicateRow(name)
                cur.execute("INSERT INTO roles (name, created_by) VALUES (?, ?)", [name, created_by])
                self.security.bump_version(cur)
        except DuplicateRow:  # here, or made at the same moment by another node
            if if_not_exists:
                return
            raise ObjectAlreadyExists(f"Role already exists: {name}") from None

    def drop_role(self, name: str, *, if_exists: bool = False) -> list[Principal]:
        """Drop ``name``: its grants and memberships go, what it owned passes to root.

        Returns the users who held the role (directly or through others) before, whose
        presigned URLs resting on it the caller ends.
        """
        if name in BUILTIN_ROLES:
            raise StatementRejected(f"The built-in role {name} cannot be dropped")
        with self.security.transaction() as cur:
            if not cur.execute("SELECT 1 FROM roles WHERE name = ?", [name]).fetchall():
                if if_exists:
                    return []
                raise ObjectNotFound(f"Role does not exist: {name}")
            members = self._members(cur, name)
            cur.execute(
                "DELETE FROM role_grants WHERE role = ? OR (grantee_kind = 'role' AND grantee = ?)",
                [name, name],
            )
            cur.execute("DELETE FROM object_grants WHERE grantee_kind = 'role' AND grantee = ?", [name])
            cur.execute(
                "UPDATE owners SET owner_kind = 'user', owner = ?, since = now() "
                "WHERE owner_kind = 'role' AND owner = ?",
                [ROOT_USER, name],
            )
            cur.execute("UPDATE users SET default_role = NULL WHERE default_role = ?", [name])
            cur.execute("DELETE FROM roles WHERE name = ?", [name])
            self.security.bump_version(cur)
            self.security.bump(cur, TABLE_PRIVILEGES_SCOPE)  # table-stage URLs rest on these
        return members

    def edges(self) -> list[tuple[str, str, str]]:
        """Every membership: (role, grantee_kind, grantee)."""
        rows = self.security.rows("SELECT role, grantee_kind, grantee FROM role_grants")
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def _members(self, cur: duckdb.DuckDBPyConnection, role: str) -> list[Principal]:
        """Users holding ``role`` directly or through the hierarchy."""
        rows = cur.execute("SELECT role, grantee_kind, grantee FROM role_grants").fetchall()
        holders: dict[str, list[tuple[str, str]]] = {}
        for r, kind, grantee in rows:
            holders.setdefault(r, []).append((kind, grantee))
        seen, todo, users = {role}, [role], set()
        while todo:
            for kind, grantee in holders.get(todo.pop(), []):
                if kind == USER:
                    users.add(grantee)
                elif grantee not in seen:
                    seen.add(grantee)
                    todo.append(grantee)
        return [Principal(USER, u) for u in sorted(users)]

    def members(self, role: str) -> list[Principal]:
        with self.security.cursor() as cur:
            return self._members(cur, role)

    def grant_role(self, role: str, grantee: Principal, granted_by: str) -> None:
        if role == PUBLIC_ROLE:
            raise StatementRejected("Role public is every user's already: it cannot be granted")
        with self.security.transaction() as cur:
            if grantee.kind == ROLE:
                if grantee.name == role or self._reaches(cur, role, grantee.name):
                    raise StatementRejected(
                        f"Cannot grant role {role} to role {grantee.name}: {grantee.name} is already "
                        f"granted to {role} (directly or through other roles), which would make a cycle"
                    )
            cur.execute(
                "INSERT INTO role_grants VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [role, grantee.kind, grantee.name, granted_by],
            )
            self.security.bump_version(cur)

    def _reaches(self, cur: duckdb.DuckDBPyConnection, start: str, target: str) -> bool:
        """Whether role ``start`` holds role ``target``, directly or through other roles."""
        rows = cur.execute("SELECT role, grantee FROM role_grants WHERE grantee_kind = 'role'").fetchall()
        held: dict[str, list[str]] = {}
        for r, grantee in rows:
            held.setdefault(grantee, []).append(r)
        seen, todo = {start}, [start]
        while todo:
            for parent in held.get(todo.pop(), []):
                if parent == target:
                    return True
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return False

    def revoke_role(self, role: str, grantee: Principal) -> list[Principal]:
        """Revoke the membership; returns the users who held the role through ``grantee``."""
        with self.security.transaction() as cur:
            affected = [grantee] if grantee.kind == USER else self._members(cur, grantee.name)
            cur.execute(
                "DELETE FROM role_grants WHERE role = ? AND grantee_kind = ? AND grantee = ?",
                [role, grantee.kind, grantee.name],
            )
            self.security.bump_version(cur)
            self.security.bump(cur, TABLE_PRIVILEGES_SCOPE)  # table-stage URLs rest on these
        return affected

    # -- object grants -------------------------------------------------------------------
    def grant(
        self, kind: str, object_id: str, privileges: Iterable[str], grantee: Principal, granted_by: str
    ) -> None:
        with self.security.transaction() as cur:
            for privilege in privileges:
                cur.execute(
                    "INSERT INTO object_grants VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [kind, object_id, privilege, grantee.kind, grantee.name, granted_by],
                )
            self.security.bump_version(cur)

    def revoke(
        self,
        kind: str,
        object_id: str,
        privileges: Iterable[str],
        grantee: Principal,
        cur: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        if cur is None:
            with self.security.transaction() as own:
                self.revoke(kind, object_id, privileges, grantee, own)
            return
        for privilege in privileges:
            cur.execute(
                "DELETE FROM object_grants WHERE object_kind = ? AND object_id = ? AND privilege = ? "
                "AND grantee_kind = ? AND grantee = ?",
                [kind, object_id, privilege, grantee.kind, grantee.name],
            )
        self.security.bump_version(cur)
        self.security.bump(cur, TABLE_PRIVILEGES_SCOPE)  # table-stage URLs rest on these

    def grants_to(self, principals: Iterable[Principal]) -> list[tuple[str, str, str, str, str]]:
        """(object_kind, object_id, privilege, grantee_kind, grantee) of grants to ``principals``."""
        wanted = sorted(set(principals))
        if not wanted:
            return []
        marks = " OR ".join("(grantee_kind = ? AND grantee = ?)" for _ in wanted)
        params = [part for p in wanted for part in p]
        rows = self.security.rows(
            "SELECT object_kind, object_id, privilege, grantee_kind, grantee FROM object_grants "
            f"WHERE {marks} ORDER BY object_kind, object_id, grantee_kind, grantee, privilege",
            params,
        )
        return [(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def grants_on(self, kind: str, object_id: str) -> list[tuple[str, str, str]]:
        """(privilege, grantee_kind, grantee) of every grant on one object."""
        rows = self.security.rows(
            "SELECT privilege, grantee_kind, grantee FROM object_grants "
            "WHERE object_kind = ? AND object_id = ?",
            [kind, object_id],
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def forget_object(self, cur: duckdb.DuckDBPyConnection, kind: str, object_id: str) -> None:
        """An object went: its grants and owner row go (inside the caller's transaction)."""
        cur.execute("DELETE FROM object_grants WHERE object_kind = ? AND object_id = ?", [kind, object_id])
        cur.execute("DELETE FROM owners WHERE object_kind = ? AND object_id = ?", [kind, object_id])
        self.security.bump_version(cur)
        self.security.bump(cur, TABLE_PRIVILEGES_SCOPE)  # table-stage URLs rest on these

    # -- owners ------------------------------------------------------------------------
    def owner(self, kind: str, object_id: str) -> Principal | None:
        """The owner an ownership transfer recorded, or None (then the creator owns it)."""
        rows = self.security.rows(
            "SELECT owner_kind, owner FROM owners WHERE object_kind = ? AND object_id = ?", [kind, object_id]
        )
        return Principal(str(rows[0][0]), str(rows[0][1])) if rows else None

    def set_owner(self, kind: str, object_id: str, owner: Principal) -> None:
        if owner == PUBLIC:
            raise StatementRejected("Ownership cannot be granted to role public: it is every user's")
        with self.security.transaction() as cur:
            cur.execute(
                "INSERT INTO owners VALUES (?, ?, ?, ?, now()) ON CONFLICT (object_kind, object_id) "
                "DO UPDATE SET owner_kind = excluded.owner_kind, owner = excluded.owner, "
                "since = excluded.since",
                [kind, object_id, owner.kind, owner.name],
            )
            self.security.bump_version(cur)
            self.security.bump(cur, TABLE_PRIVILEGES_SCOPE)  # table-stage URLs rest on these

    def owned_by(self, owner: Principal) -> list[tuple[str, str]]:
        rows = self.security.rows(
            "SELECT object_kind, object_id FROM owners WHERE owner_kind = ? AND owner = ? ORDER BY 1, 2",
            list(owner),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    # -- users -------------------------------------------------------------------------
    def forget_user(self, cur: duckdb.DuckDBPyConnection, user: str) -> None:
        """A dropped (or re-created) user: its grants and memberships go, what it owned passes to
        root (inside the caller's transaction)."""
        cur.execute("DELETE FROM object_grants WHERE grantee_kind = 'user' AND grantee = ?", [user])
        cur.execute("DELETE FROM role_grants WHERE grantee_kind = 'user' AND grantee = ?", [user])
        cur.execute(
            "UPDATE owners SET owner = ?, since = now() WHERE owner_kind = 'user' AND owner = ?",
            [ROOT_USER, user],
        )
        self.security.bump_version(cur)
        self.security.bump(cur, TABLE_PRIVILEGES_SCOPE)  # table-stage URLs rest on these

    def is_member(self, user: str, role: str) -> bool:
        return Principal(USER, user) in self.members(role)


__all__ = ["ACCOUNT_ADMIN", "PUBLIC_ROLE", "BUILTIN_ROLES", "PrivilegeStore", "Principal"]
