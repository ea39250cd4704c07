"""Named stages and stage privileges, both in the security store: the ``stages`` table and the
``object_grants`` rows of kind ``stage`` (to users or roles). In lake mode that store is the
PostgreSQL catalog every node shares, and the table's PRIMARY KEY keeps a name to one stage.

The user stage ``@~`` is never stored: it is built in memory for the calling user. An external
stage's CONNECTION is stored sealed with the server key (engine.catalog.secrets_box).

CREATE and DROP STAGE change the stage row, its grants and its URL generation in one security
transaction: URLs issued for the old stage end and its grants go (unless the same owner replaces
it) as the row appears, changes or goes, so no grant outlives its stage into a re-created one of
the same name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.catalog.authorizer import Authorizer
from engine.catalog.database import Database
from engine.catalog.presign_binding import grant_scope, stage_scope
from engine.catalog.privileges import GLOBAL, STAGE, USER, Principal, PrivilegeStore
from engine.catalog.secrets_box import CannotDecrypt, SecretBox
from engine.catalog.security_db import STAGE_COLUMNS
from engine.catalog.security_store import DuplicateRow
from engine.errors import ObjectAlreadyExists, PermissionDenied
from engine.external import UnreadableCredentials
from stages.errors import StageNotFound
from stages.model import Stage, StageKind

log = logging.getLogger("stageflight")

_COLUMNS = STAGE_COLUMNS


class StagePrivilege(StrEnum):
    READ = "READ"
    WRITE = "WRITE"


def _connection_context(name: str) -> str:
    # Authenticated with the ciphertext: a sealed CONNECTION copied to another stage's row fails.
    return f"stage-connection/{name}"


def _seal_connection(box: SecretBox, name: str, connection: Mapping[str, str]) -> str:
    if not connection:
        return "{}"
    return box.seal(json.dumps(dict(connection)), _connection_context(name))


class StageCatalog:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._security = db.security
        self._box = db.secret_box
        self.privileges = PrivilegeStore(db.security)
        self.authorizer = Authorizer(self.privileges)
        self._seal_plaintext_connections()

    def _seal_plaintext_connections(self) -> None:
        """Older data dirs stored CONNECTION as plain JSON: seal those rows once, at start-up."""
        with self._security.transaction() as cur:
            rows = cur.execute(
                "SELECT name, connection FROM stages "
                "WHERE connection <> '{}' AND NOT starts_with(connection, 'enc:')"
            ).fetchall()
            for name, connection in rows:
                cur.execute(
                    "UPDATE stages SET connection = ? WHERE name = ?",
                    [_seal_connection(self._box, name, json.loads(connection)), name],
                )
        if rows:
            log.info("sealed the credentials of %d external stage(s) with the server key", len(rows))
            self._security.checkpoint()  # the plaintext leaves the WAL now, not at some later write

    def _row_to_stage(self, row: tuple[Any, ...]) -> Stage:
        name, kind, url, file_format, connection, comment, creator, created_on = row
        unreadable = False
        if SecretBox.is_sealed(connection):
            try:
                connection = self._box.open(connection, _connection_context(name))
            except CannotDecrypt:
                log.error("cannot decrypt the credentials of stage %s: wrong or replaced server key", name)
                connection, unreadable = "{}", True
        stage = Stage(
            name=name,
            kind=StageKind(kind),
            url=url,
            file_format=json.loads(file_format),
            connection=json.loads(connection),
            comment=comment,
            creator=creator,
            created_on=created_on,
        )
        if unreadable:
            # The stage stays visible (SHOW, DESC, DROP work); any use of its credentials raises.
            object.__setattr__(stage, "connection", UnreadableCredentials(name))
        return stage

    def get(self, name: str) -> Stage:
        stage = self.find(name)
        if stage is None:
            raise StageNotFound(f"Stage does not exist: @{name}")
        return stage

    def find(self, name: str) -> Stage | None:
        rows = self._security.rows(f"SELECT {_COLUMNS} FROM stages WHERE name = ?", [name])
        return self._row_to_stage(rows[0]) if rows else None

    def exists(self, name: str) -> bool:
        return bool(self._security.rows("SELECT 1 FROM stages WHERE name = ?", [name]))

    def list(self, like: str | None = None) -> list[Stage]:
        sql = f"SELECT {_COLUMNS} FROM stages"
        params: list[Any] = []
        if like is not None:
            sql += " WHERE name LIKE ?"
            params.append(like)
        # Sorted here: PostgreSQL's collation may order names otherwise than DuckDB.
        rows = sorted(self._security.rows(sql, params), key=lambda r: str(r[0]))
        return [self._row_to_stage(r) for r in rows]

    def create(self, stage: Stage, *, replace: bool = False) -> None:
        """Insert (or, with ``replace``, overwrite) the stage row. A racing CREATE of the name,
        on this node or another, finds the row (or meets the primary key) and is refused."""
        name = stage.name
        connection = _seal_connection(self._box, name, stage.connection)
        security = self._security
        try:
            with security.transaction() as cur:
                old = cur.execute("SELECT creator FROM stages WHERE name = ?", [name]).fetchall()
                if old and not replace:
                    raise ObjectAlreadyExists(f"Stage already exists: @{name}")
                # URLs issued for the old stage end, and its grants go unless the same owner
                # replaces it: grants were the old owner's to give, none carry over to root's
                # replacement. For a new name this clears grants left by a racing GRANT.
                self._retire(cur, name, keep_grants=bool(old) and old[0][0] == stage.creator)
                if old:
                    cur.execute("DELETE FROM stages WHERE name = ?", [name])
                cur.execute(
                    f"INSERT INTO stages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        name,
                        str(stage.kind),
                        stage.url,
                        json.dumps(dict(stage.file_format)),
                        connection,
                        stage.comment,
                        stage.creator,
                        stage.created_on or datetime.now().astimezone(),
                    ],
                )
        except DuplicateRow:
            raise ObjectAlreadyExists(f"Stage already exists: @{name}") from None

    def update(
        self,
        name: str,
        *,
        file_format: Mapping[str, str] | None = None,
        comment: str | None = None,
        unset_comment: bool = False,
    ) -> None:
        with self._security.transaction() as cur:
            if file_format is not None:
                cur.execute(
                    "UPDATE stages SET file_format = ? WHERE name = ?", [json.dumps(dict(file_format)), name]
                )
            if comment is not None or unset_comment:
                cur.execute("UPDATE stages SET comment = ? WHERE name = ?", [comment, name])

    def delete(self, name: str) -> None:
        """The row, its grants and its presigned URLs go together."""
        with self._security.transaction() as cur:
            self._retire(cur, name)
            cur.execute("DELETE FROM stages WHERE name = ?", [name])

    def _retire(self, cur: Any, name: str, *, keep_grants: bool = False) -> None:
        """End the presigned URLs issued for ``name`` and (unless kept) delete its grants."""
        self._security.bump(cur, stage_scope(name))
        if not keep_grants:
            self.privileges.forget_object(cur, STAGE, name)

    # -- privileges ------------------------------------------------------------------
    def grant(
        self,
        stage: str,
        grantee: Principal | str,
        privileges: Sequence[StagePrivilege],
        granted_by: str = "root",
    ) -> None:
        who = _principal(grantee)
        self.privileges.grant(STAGE, stage, [str(p) for p in privileges], who, granted_by)

    def revoke(self, stage: str, grantee: Principal | str, privileges: Sequence[StagePrivilege]) -> None:
        who = _principal(grantee)
        # URLs the grantee got through this grant end with it: for a role, those of every user
        # holding the role.
        users = [who] if who.kind == USER else self.privileges.members(who.name)
        security = self._db.security
        with security.transaction() as cur:
            for privilege in privileges:
                for user in users:
                    security.bump(cur, grant_scope(stage, user.name, str(privilege)))
            self.privileges.revoke(STAGE, stage, [str(p) for p in privileges], who, cur)

    def end_urls_of(self, users: Sequence[Principal]) -> None:
        """Roles left ``users`` (REVOKE ROLE, DROP ROLE): their URLs for named stages resting on
        a grant end (re-presigning is cheap; a URL resting on a grant still held is issued again)."""
        names = [u.name for u in users if u.kind == USER]
        if not names:
            return
        stages = [s.name for s in self.list()]
        security = self._db.security
        with security.transaction() as cur:
            for stage in stages:
                for user in names:
                    for privilege in StagePrivilege:
                        security.bump(cur, grant_scope(stage, user, str(privilege)))

    def has_privilege(self, stage: Stage, user: str, privilege: StagePrivilege) -> bool:
        principals = self.authorizer.principals(user)
        return self.authorizer.allows_stage(principals, stage.name, str(privilege), stage.creator)

    def require(self, stage: Stage, user: str, is_admin: bool, privilege: StagePrivilege) -> None:
        if is_admin or self.has_privilege(stage, user, privilege):
            return
        raise PermissionDenied(
            f"Permission denied: privilege {privilege.value} is required on stage @{stage.name} "
            f"for user {user}"
        )

    def grant_global(self, grantee: Principal | str, privilege: str, granted_by: str = "root") -> None:
        self.privileges.grant(GLOBAL, "*", [privilege], _principal(grantee), granted_by)

    def revoke_global(self, grantee: Principal | str, privilege: str) -> None:
        self.privileges.revoke(GLOBAL, "*", [privilege], _principal(grantee))

    def has_global(self, grantee: str, privilege: str) -> bool:
        """Whether user ``grantee`` holds a global privilege, directly or through a role."""
        return self.authorizer.allows_global(self.authorizer.principals(grantee), privilege)

    def forget_user(self, user: str) -> None:
        """Grants of a dropped user (DROP USER already removed them with the user; kept for callers)."""
        with self._db.security.transaction() as cur:
            self.privileges.forget_user(cur, user)


def _principal(grantee: Principal | str) -> Principal:
    return grantee if isinstance(grantee, Principal) else Principal(USER, grantee)
