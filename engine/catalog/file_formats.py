"""Named file formats: the account-wide ``file_formats`` table.

A format is an account-wide object, as in Databend: every user may use it (``FORMAT_NAME = 'f'``)
and SHOW it, but only its owner (creator) or root may replace or drop it, since a change decides
how the owner's COPY jobs parse their files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import duckdb
import pyarrow as pa

from engine.catalog.database import Database, first_row
from engine.errors import ObjectAlreadyExists, ObjectNotFound, PermissionDenied
from engine.names import CATALOG_SCHEMA
from stages.formats import FORMAT_TYPES

SHOW_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("format_options", pa.string(), nullable=False),
    ]
)


class FileFormats:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, name: str) -> dict[str, str]:
        with self._db.server_cursor() as cur:
            row = first_row(
                cur, f"SELECT options FROM {CATALOG_SCHEMA}.file_formats WHERE name = ?", [name.lower()]
            )
        if row is None:
            raise ObjectNotFound(f"File format does not exist: {name}")
        return dict(json.loads(row[0]))

    def create(
        self,
        name: str,
        options: Mapping[str, str],
        creator: str,
        is_admin: bool,
        *,
        replace: bool,
        if_not_exists: bool,
    ) -> None:
        unique = self._db.node_lock(f"file_format:{name}", f"CREATE FILE FORMAT {name} waited too long")
        with unique, self._db.server_transaction() as cur:
            owner = _owner(cur, name)
            if owner is not None and if_not_exists:
                return
            if owner is not None and not replace:
                raise ObjectAlreadyExists(f"File format already exists: {name}")
            if owner is not None:
                _require_owner(name, owner, creator, is_admin, "replace")
            cur.execute(f"DELETE FROM {CATALOG_SCHEMA}.file_formats WHERE name = ?", [name])
            cur.execute(
                f"INSERT INTO {CATALOG_SCHEMA}.file_formats (name, options, creator) VALUES (?, ?, ?)",
                [name, json.dumps(dict(options)), creator],
            )

    def drop(self, name: str, user: str, is_admin: bool, *, if_exists: bool) -> None:
        with self._db.server_transaction() as cur:
            owner = _owner(cur, name)
            if owner is None:
                if if_exists:
                    return
                raise ObjectNotFound(f"File format does not exist: {name}")
            _require_owner(name, owner, user, is_admin, "drop")
            cur.execute(f"DELETE FROM {CATALOG_SCHEMA}.file_formats WHERE name = ?", [name])

    def list(self) -> pa.Table:
        with self._db.server_cursor() as cur:
            rows = cur.execute(
                f"SELECT name, options FROM {CATALOG_SCHEMA}.file_formats ORDER BY name"
            ).fetchall()
        rendered = [{"name": n, "format_options": render_options(json.loads(o))} for n, o in rows]
        return pa.Table.from_pylist(rendered, schema=SHOW_SCHEMA)

    def resolve(self, options: Mapping[str, str]) -> dict[str, str]:
        """Replace ``FORMAT_NAME = 'f'`` by the named format's options."""
        if "FORMAT_NAME" in options:
            return self.get(options["FORMAT_NAME"])
        return dict(options)


def _owner(cur: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """The creator of an existing format ('' if unknown: then only root may change it); None if absent."""
    row = first_row(cur, f"SELECT creator FROM {CATALOG_SCHEMA}.file_formats WHERE name = ?", [name])
    return None if row is None else str(row[0] or "")


def _require_owner(name: str, owner: str, user: str, is_admin: bool, action: str) -> None:
    if not (is_admin or owner == user):
        raise PermissionDenied(
            f"Permission denied: only the owner of file format {name} or root may {action} it"
        )


def render_options(options: Mapping[str, str]) -> str:
    return " ".join(f"{k.lower()} = {_render_value(v)}" for k, v in options.items())


def _render_value(value: str) -> str:
    if value.startswith("(") and value.endswith(")"):
        return value  # a list such as NULL_IF, kept as the statement wrote it
    if value.upper() in FORMAT_TYPES or value.lstrip("-").isdigit() or value.upper() in ("TRUE", "FALSE"):
        return value
    return "'" + value.replace("'", "''") + "'"
