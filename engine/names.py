"""Safe identifiers for SQL the server builds itself."""

from __future__ import annotations

from engine.errors import StatementRejected

# The reserved schema of the server's catalog tables (users, stages, load history ...).
CATALOG_SCHEMA = "__stageflight"
# __ducklake: DuckLake's metadata catalog (__ducklake_metadata_<lake>) in lake mode.
RESERVED_PREFIXES = (CATALOG_SCHEMA, "__stage_", "__ducklake")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def reject_reserved(*names: str | None) -> None:
    for name in names:
        if name and name.lower().startswith(RESERVED_PREFIXES):
            raise StatementRejected(f"Name {name} is reserved for the server")


def qualified(catalog: str | None, schema: str | None, table: str) -> str:
    reject_reserved(catalog, schema, table)
    return ".".join(quote_ident(p) for p in (catalog, schema, table) if p)
