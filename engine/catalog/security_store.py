"""What the rest of the engine uses of a security store, whichever holds the rows.

Two implementations: ``SecurityDatabase`` (a locked DuckDB file, one node) and
``PostgresSecurityDatabase`` (a PostgreSQL schema shared by several nodes). Callers write one SQL
dialect for both: ``?`` placeholders and what DuckDB and PostgreSQL both accept (``INSERT ... ON
CONFLICT DO NOTHING``, not ``INSERT OR IGNORE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from engine.errors import EngineError, ObjectAlreadyExists


class DuplicateRow(ObjectAlreadyExists):
    """A write met a PRIMARY KEY or UNIQUE constraint: another transaction (maybe on another node)
    made the row first. Callers that know the object say which ("User already exists: bob")."""


class CatalogUnavailable(EngineError):
    """The shared catalog cannot be used: PostgreSQL unreachable, busy past the lock timeout, the
    connection broken inside a transaction, or psycopg missing. The message never has a password."""


class SecurityCursor(Protocol):
    """The part of a DB-API cursor the security code uses."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class CatalogCounters:
    """What both security stores share, written once in SQL DuckDB and PostgreSQL both run: reading
    rows, presigned-URL generations per scope, the catalog version (cached privileges key on it)."""

    def cursor(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.cursor() as cur:
            return list(cur.execute(sql, list(params)).fetchall())

    @staticmethod
    def bump(cur: Any, scope: str) -> None:
        """Invalidate every URL bound to ``scope`` (inside the caller's transaction)."""
        cur.execute(
            "INSERT INTO url_generations VALUES (?, 1) "
            "ON CONFLICT (scope) DO UPDATE SET generation = url_generations.generation + 1",
            [scope],
        )

    def generations(self, scopes: Iterable[str]) -> dict[str, int]:
        """Current generation of each scope (0 for one never bumped)."""
        wanted = list(dict.fromkeys(scopes))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        sql = f"SELECT scope, generation FROM url_generations WHERE scope IN ({marks})"
        found = dict(self.rows(sql, wanted))
        return {scope: int(found.get(scope, 0)) for scope in wanted}

    @staticmethod
    def bump_version(cur: Any) -> None:
        """Access changed (inside the caller's transaction): cached privileges are stale."""
        cur.execute("UPDATE catalog_version SET version = version + 1 WHERE id = 1")

    def version(self) -> int:
        return int(self.rows("SELECT version FROM catalog_version WHERE id = 1")[0][0])


class SecurityStore(Protocol):
    # Whether several server processes share this store (tokens then verify on every node).
    shared: bool

    def cursor(self) -> AbstractContextManager[Any]: ...

    def transaction(self) -> AbstractContextManager[Any]: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @staticmethod
    def bump(cur: Any, scope: str) -> None: ...

    def generations(self, scopes: Iterable[str]) -> dict[str, int]: ...

    @staticmethod
    def bump_version(cur: Any) -> None: ...

    def version(self) -> int: ...

    def shared_secret(self, name: str, make: str) -> str: ...

    def checkpoint(self) -> None: ...

    def close(self) -> None: ...
