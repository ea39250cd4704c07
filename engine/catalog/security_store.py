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

    def close(self) -> None: ...
