"""Named file formats: the account-wide ``file_formats`` table of the security store (in lake
mode the PostgreSQL catalog every node shares, whose PRIMARY KEY keeps a name to one format).

A format is an account-wide object, as in Databend: every user may use it (``FORMAT_NAME = 'f'``)
and SHOW it, but only its owner (creator) or root may replace or drop it, since a change decides
how the owner's COPY jobs parse their files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from engine.catalog.database import Database
from engine.catalog.security_store import DuplicateRow
from engine.errors import ObjectAlreadyExists, ObjectNotFound, PermissionDenied
from stages.formats import FORMAT_TYPES

SHOW_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("format_options", pa.string(), nullable=False),
    ]
)


class FileFormats:
    def __init__(self, db: Database) -> None:
        self._security = db.security

    def get(self, name: str) -> dict[str, str]:
        rows = self._security.rows("SELECT options FROM file_formats WHERE name = ?", [name.lower()])
        if not rows:
            raise ObjectNotFound(f"File format does not exist: {name}")
        return dict(json.loads(rows[0][0]))

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
        """A racing CREATE of the name, on this node or another, finds the row (or meets the
        primary key) and is refused, or with IF NOT EXISTS does nothing."""
        try:
            with self._security.transaction() as cur:
                owner = _owner(cur, name)
                if owner is not None and if_not_exists:
                    return
                if owner is not None and not replace:
                    raise ObjectAlreadyExists(f"File format already exists: {name}")
                if owner is not None:
                    _require_owner(name, owner, creator, is_admin, "replace")
                    cur.execute("DELETE FROM file_formats WHERE name = ?", [name])
                cur.execute(
                    "INSERT INTO file_formats (name, options, creator) VALUES (?, ?, ?)",
                    [name, json.dumps(dict(options)), creator],
                )
        except DuplicateRow:
            if if_not_exists:
                return
            raise ObjectAlreadyExists(f"File format already exists: {name}") from None

    def drop(self, name: str, user: str, is_admin: bool, *, if_exists: bool) -> None:
        with self._security.transaction() as cur:
            owner = _owner(cur, name)
            if owner is None:
                if if_exists:
                    return
                raise ObjectNotFound(f"File format does not exist: {name}")
            _require_owner(name, owner, user, is_admin, "drop")
            cur.execute("DELETE FROM file_formats WHERE name = ?", [name])

    def list(self) -> pa.Table:
        # Sorted here: PostgreSQL's collation may order names otherwise than DuckDB.
        rows = sorted(self._security.rows("SELECT name, options FROM file_formats"), key=lambda r: str(r[0]))
        rendered = [{"name": n, "format_options": render_options(json.loads(o))} for n, o in rows]
        return pa.Table.from_pylist(rendered, schema=SHOW_SCHEMA)

    def resolve(self, options: Mapping[str, str]) -> dict[str, str]:
        """Replace ``FORMAT_NAME = 'f'`` by the named format's options."""
        if "FORMAT_NAME" in options:
            return self.get(options["FORMAT_NAME"])
        return dict(options)


def _owner(cur: Any, name: str) -> str | None:
    """The creator of an existing format ('' if unknown: then only root may change it); None if absent."""
    rows = cur.execute("SELECT creator FROM file_formats WHERE name = ?", [name]).fetchall()
    return str(rows[0][0] or "") if rows else None


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
