"""Named stages and stage privileges, kept in the reserved catalog schema.

The user stage ``@~`` is never stored: it is built in memory for the calling user.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.database import CATALOG_SCHEMA, Database, first_row
from engine.errors import ObjectAlreadyExists, PermissionDenied
from stages.errors import StageNotFound
from stages.model import Stage, StageKind

_GRANT_MATCH = "stage = ? AND grantee = ? AND privilege = ?"
_COLUMNS = "name, kind, url, file_format, connection, comment, creator, created_on"


class StagePrivilege(StrEnum):
    READ = "READ"
    WRITE = "WRITE"


def _row_to_stage(row: tuple[Any, ...]) -> Stage:
    name, kind, url, file_format, connection, comment, creator, created_on = row
    return Stage(
        name=name,
        kind=StageKind(kind),
        url=url,
        file_format=json.loads(file_format),
        connection=json.loads(connection),
        comment=comment,
        creator=creator,
        created_on=created_on,
    )


class StageCatalog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, name: str) -> Stage:
        stage = self.find(name)
        if stage is None:
            raise StageNotFound(f"Stage does not exist: @{name}")
        return stage

    def find(self, name: str) -> Stage | None:
        with self._db.server_cursor() as cur:
            row = first_row(cur, f"SELECT {_COLUMNS} FROM {CATALOG_SCHEMA}.stages WHERE name = ?", [name])
        return None if row is None else _row_to_stage(row)

    def exists(self, name: str) -> bool:
        with self._db.server_cursor() as cur:
            return first_row(cur, f"SELECT 1 FROM {CATALOG_SCHEMA}.stages WHERE name = ?", [name]) is not None

    def list(self, like: str | None = None) -> list[Stage]:
        sql = f"SELECT {_COLUMNS} FROM {CATALOG_SCHEMA}.stages"
        params: list[Any] = []
        if like is not None:
            sql += " WHERE name LIKE ?"
            params.append(like)
        with self._db.server_cursor() as cur:
            rows = cur.execute(sql + " ORDER BY name", params).fetchall()
        return [_row_to_stage(r) for r in rows]

    def create(self, stage: Stage, *, replace: bool = False) -> None:
        with self._db.server_transaction() as cur:
            exists = first_row(cur, f"SELECT 1 FROM {CATALOG_SCHEMA}.stages WHERE name = ?", [stage.name])
            if exists and not replace:
                raise ObjectAlreadyExists(f"Stage already exists: @{stage.name}")
            if exists:
                cur.execute(f"DELETE FROM {CATALOG_SCHEMA}.stages WHERE name = ?", [stage.name])
            cur.execute(
                f"INSERT INTO {CATALOG_SCHEMA}.stages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    stage.name,
                    str(stage.kind),
                    stage.url,
                    json.dumps(dict(stage.file_format)),
                    json.dumps(dict(stage.connection)),
                    stage.comment,
                    stage.creator,
                    stage.created_on or datetime.now().astimezone(),
                ],
            )

    def update(
        self,
        name: str,
        *,
        file_format: Mapping[str, str] | None = None,
        comment: str | None = None,
        unset_comment: bool = False,
    ) -> None:
        with self._db.server_cursor() as cur:
            if file_format is not None:
                cur.execute(
                    f"UPDATE {CATALOG_SCHEMA}.stages SET file_format = ? WHERE name = ?",
                    [json.dumps(dict(file_format)), name],
                )
            if comment is not None or unset_comment:
                cur.execute(f"UPDATE {CATALOG_SCHEMA}.stages SET comment = ? WHERE name = ?", [comment, name])

    def delete(self, name: str) -> None:
        with self._db.server_transaction() as cur:
            cur.execute(f"DELETE FROM {CATALOG_SCHEMA}.stage_grants WHERE stage = ?", [name])
            cur.execute(f"DELETE FROM {CATALOG_SCHEMA}.stages WHERE name = ?", [name])

    # -- privileges ------------------------------------------------------------------
    def grant(self, stage: str, grantee: str, privileges: Sequence[StagePrivilege]) -> None:
        with self._db.server_cursor() as cur:
            for privilege in privileges:
                cur.execute(
                    f"INSERT OR IGNORE INTO {CATALOG_SCHEMA}.stage_grants VALUES (?, ?, ?)",
                    [stage, grantee, str(privilege)],
                )

    def revoke(self, stage: str, grantee: str, privileges: Sequence[StagePrivilege]) -> None:
        with self._db.server_cursor() as cur:
            for privilege in privileges:
                cur.execute(
                    f"DELETE FROM {CATALOG_SCHEMA}.stage_grants WHERE {_GRANT_MATCH}",
                    [stage, grantee, str(privilege)],
                )

    def has_privilege(self, stage: Stage, user: str, privilege: StagePrivilege) -> bool:
        if stage.creator == user:
            return True
        with self._db.server_cursor() as cur:
            row = first_row(
                cur,
                f"SELECT 1 FROM {CATALOG_SCHEMA}.stage_grants WHERE {_GRANT_MATCH}",
                [stage.name, user, str(privilege)],
            )
        return row is not None

    def require(self, stage: Stage, user: str, is_admin: bool, privilege: StagePrivilege) -> None:
        if is_admin or self.has_privilege(stage, user, privilege):
            return
        raise PermissionDenied(
            f"Permission denied: privilege {privilege.value} is required on stage @{stage.name} "
            f"for user {user}"
        )

    def grant_global(self, grantee: str, privilege: str) -> None:
        with self._db.server_cursor() as cur:
            cur.execute(
                f"INSERT OR IGNORE INTO {CATALOG_SCHEMA}.global_grants VALUES (?, ?)", [grantee, privilege]
            )

    def revoke_global(self, grantee: str, privilege: str) -> None:
        with self._db.server_cursor() as cur:
            cur.execute(
                f"DELETE FROM {CATALOG_SCHEMA}.global_grants WHERE grantee = ? AND privilege = ?",
                [grantee, privilege],
            )

    def has_global(self, grantee: str, privilege: str) -> bool:
        with self._db.server_cursor() as cur:
            row = first_row(
                cur,
                f"SELECT 1 FROM {CATALOG_SCHEMA}.global_grants WHERE grantee = ? AND privilege = ?",
                [grantee, privilege],
            )
        return row is not None

    def forget_user(self, user: str) -> None:
        with self._db.server_cursor() as cur:
            cur.execute(f"DELETE FROM {CATALOG_SCHEMA}.stage_grants WHERE grantee = ?", [user])
            cur.execute(f"DELETE FROM {CATALOG_SCHEMA}.global_grants WHERE grantee = ?", [user])
