"""Who may do what: a session's principals and their effective privileges, decided in pure logic.

Rules (docs/design/catalog-home.md §4, after Databend's RBAC):

- principals of a session: the user, the current role (``SET ROLE``), every other role granted
  to the user (secondary roles ALL, Databend's default), each closed over the role hierarchy,
  plus ``public``;
- ``account_admin`` among them allows everything (root holds it);
- the owner of an object has every privilege on it;
- a grant on a schema (``db.*``) covers all its tables, current and future; a global grant
  (``*.*``) covers all tables of all schemas.

Effective privileges are cached per principal set and ``catalog_version``: any GRANT, REVOKE or
role change bumps the version, so the next check reads the grants again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from engine.catalog.privileges import (
    ADMIN_ROLE,
    GLOBAL,
    PUBLIC,
    ROLE,
    ROOT,
    SCHEMA,
    STAGE,
    TABLE,
    USER,
    Principal,
    PrivilegeStore,
)
from engine.errors import PermissionDenied

Effective = Mapping[tuple[str, str], frozenset[str]]
Row = TypeVar("Row")
_CACHE_LIMIT = 1024


def owner_principal(owner: Principal | str | None) -> Principal:
    """An owner as recorded: a Principal, a user name, or None (created before owners: root)."""
    if owner is None:
        return ROOT
    if isinstance(owner, Principal):
        return owner
    return Principal(USER, owner)


class Authorizer:
    def __init__(self, store: PrivilegeStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version = -1
        self._edges: dict[str, list[str]] = {}  # grantee key -> roles granted to it
        self._effective: dict[frozenset[Principal], Effective] = {}

    # -- principals --------------------------------------------------------------------
    def _refresh(self) -> int:
        version = self.store.version()
        with self._lock:
            if version != self._version:
                held: dict[str, list[str]] = {}
                for role, kind, grantee in self.store.edges():
                    held.setdefault(f"{kind}:{grantee}", []).append(role)
                self._edges, self._effective, self._version = held, {}, version
        return version

    def _closure(self, start: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(start)
        while todo:
            role = todo.pop()
            if role in seen:
                continue
            seen.add(role)
            todo.extend(self._edges.get(f"{ROLE}:{role}", []))
        return seen

    def granted_roles(self, user: str) -> frozenset[str]:
        """Every role ``user`` holds (directly or through the hierarchy), ``public`` included."""
        self._refresh()
        return frozenset(self._closure(self._edges.get(f"{USER}:{user}", [])) | {PUBLIC.name})

    def role_closure(self, role: str) -> frozenset[str]:
        """``role`` and every role granted to it, through the hierarchy."""
        self._refresh()
        return frozenset(self._closure([role]))

    def principals(
        self, user: str, current_role: str | None = None, secondary_all: bool = True
    ) -> frozenset[Principal]:
        self._refresh()
        direct = self._edges.get(f"{USER}:{user}", [])
        start: set[str] = {PUBLIC.name}
        # A current role revoked since SET ROLE chose it just stops counting.
        if current_role is not None and current_role in self._closure(direct) | {PUBLIC.name}:
            start.add(current_role)
        if secondary_all or current_role is None:
            start.update(direct)
        roles = self._closure(start)
        return frozenset({Principal(USER, user)} | {Principal(ROLE, r) for r in roles})

    @staticmethod
    def is_admin(principals: Iterable[Principal]) -> bool:
        found = set(principals)
        return ADMIN_ROLE in found or ROOT in found

    # -- effective privileges ------------------------------------------------------------
    def effective(self, principals: Iterable[Principal]) -> Effective:
        """(object_kind, object_id) -> privileges granted to any of ``principals``."""
        key = frozenset(principals)
        self._refresh()
        with self._lock:
            cached = self._effective.get(key)
        if cached is not None:
            return cached
        out: dict[tuple[str, str], set[str]] = {}
        for kind, object_id, privilege, _, _ in self.store.grants_to(key):
            out.setdefault((kind, object_id), set()).add(privilege)
        frozen = {k: frozenset(v) for k, v in out.items()}
        with self._lock:
            if len(self._effective) >= _CACHE_LIMIT:
                self._effective.clear()
            self._effective[key] = frozen
        return frozen

    def allows_table(
        self,
        principals: frozenset[Principal],
        schema: str,
        table_id: str,
        privilege: str,
        owner: Principal | str | None,
    ) -> bool:
        if self.is_admin(principals) or owner_principal(owner) in principals:
            return True
        grants = self.effective(principals)
        return any(
            privilege in grants.get(key, frozenset())
            for key in ((TABLE, table_id), (SCHEMA, schema.lower()), (GLOBAL, "*"))
        )

    def require_table(
        self,
        principals: frozenset[Principal],
        schema: str,
        table: str,
        privilege: str,
        owner: Principal | str | None,
        *,
        table_name: str | None = None,
    ) -> None:
        """Raise PermissionDenied unless ``principals`` may use ``privilege`` on the table.

        ``table`` is the table's uuid (or, for a table without one, its name); ``table_name`` is
        the name to show in the message when ``table`` is a uuid.
        """
        if not self.allows_table(principals, schema, table, privilege, owner):
            raise PermissionDenied(f"Permission denied: {privilege} on {schema}.{table_name or table}")

    def table_owner(self, table_id: str | None, recorded: str | None) -> Principal:
        """A table's owner: a transferred ownership (GRANT OWNERSHIP) if any, else the recorded
        creator (engine.catalog.table_owners.table_identity; None: root)."""
        transferred = self.store.owner(TABLE, table_id) if table_id else None
        return transferred or owner_principal(recorded)

    def schema_owner(self, schema: str) -> Principal:
        return self.store.owner(SCHEMA, schema.lower()) or ROOT

    def allows_schema(self, principals: frozenset[Principal], schema: str, privilege: str) -> bool:
        if self.is_admin(principals) or self.schema_owner(schema) in principals:
            return True
        grants = self.effective(principals)
        return privilege in grants.get((SCHEMA, schema.lower()), frozenset()) or privilege in grants.get(
            (GLOBAL, "*"), frozenset()
        )

    def require_schema_create(self, principals: frozenset[Principal], schema: str) -> None:
        """Creating a table or view in ``schema`` needs USAGE and CREATE there, or its ownership."""
        for privilege in ("USAGE", "CREATE"):
            if not self.allows_schema(principals, schema, privilege):
                raise PermissionDenied(f"Permission denied: {privilege} on schema {schema}")

    def allows_global(self, principals: frozenset[Principal], privilege: str) -> bool:
        return self.is_admin(principals) or privilege in self.effective(principals).get(
            (GLOBAL, "*"), frozenset()
        )

    def allows_stage(
        self, principals: frozenset[Principal], stage: str, privilege: str, owner: Principal | str | None
    ) -> bool:
        if self.is_admin(principals) or owner_principal(owner) in principals:
            return True
        return privilege in self.effective(principals).get((STAGE, stage), frozenset())

    def visible_tables(
        self,
        principals: frozenset[Principal],
        rows: Iterable[Row],
        key: Any = None,
    ) -> list[Row]:
        """The rows naming a table the principals may use in any way (for metadata answers).

        ``key(row)`` gives (schema, table_id, owner); by default a row is that tuple itself (or
        starts with it).
        """
        get = key or (lambda row: (row[0], row[1], row[2]))
        if self.is_admin(principals):
            return list(rows)
        grants = self.effective(principals)
        wide = grants.get((GLOBAL, "*"), frozenset())
        out = []
        for row in rows:
            schema, table_id, owner = get(row)
            if (
                owner_principal(owner) in principals
                or _any_table_privilege(wide)
                or _any_table_privilege(grants.get((SCHEMA, str(schema).lower()), frozenset()))
                or _any_table_privilege(grants.get((TABLE, str(table_id)), frozenset()))
            ):
                out.append(row)
        return out

    # -- who may grant ----------------------------------------------------------------------
    def require_grantor(
        self, principals: frozenset[Principal], owner: Principal | str | None, what: str
    ) -> None:
        """GRANT and REVOKE on an object: by its owner or account_admin (Databend also lets holders
        of GRANT grant; we do not have that privilege)."""
        if self.is_admin(principals) or owner_principal(owner) in principals:
            return
        raise PermissionDenied(
            f"Permission denied: only the owner of {what} or account_admin may grant on it"
        )

    def require_admin(self, principals: frozenset[Principal], what: str) -> None:
        if not self.is_admin(principals):
            raise PermissionDenied(f"Permission denied: {what} requires the account_admin role")


_TABLE_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP"})


def _any_table_privilege(privileges: frozenset[str]) -> bool:
    return not privileges.isdisjoint(_TABLE_PRIVILEGES)
