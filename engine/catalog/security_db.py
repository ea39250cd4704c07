"""The security database: password hashes, grants and presigned-URL generations.

A DuckDB file of its own (``<data_dir>/security.duckdb``) opened by a separate, locked DuckDB
instance that never runs user SQL. The user-facing instance has no path to it: the file is not
attached there, and with external access off DuckDB refuses to read any file but its own
(issue 11, item 4: reading the main database file's bytes must not yield a password hash).

There is no transaction shared with the main database, so callers order their writes: whatever
grants access goes first on removal (grants before the stage row, see StageCatalog.delete).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from engine.catalog.transactions import transaction_on
from stages.duckdb_sandbox import open_locked

log = logging.getLogger("stageflight")

_DDL = [
    """CREATE TABLE IF NOT EXISTS users (
        name VARCHAR PRIMARY KEY,
        password_hash VARCHAR NOT NULL,
        is_admin BOOLEAN NOT NULL DEFAULT false,
        created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS stage_grants (
        stage VARCHAR NOT NULL,
        grantee VARCHAR NOT NULL,
        privilege VARCHAR NOT NULL,
        PRIMARY KEY (stage, grantee, privilege))""",
    """CREATE TABLE IF NOT EXISTS global_grants (
        grantee VARCHAR NOT NULL,
        privilege VARCHAR NOT NULL,
        PRIMARY KEY (grantee, privilege))""",
    # A presigned URL carries the generations of what its authority rests on (user, stage,
    # grant); DROP USER, password changes, REVOKE and DROP STAGE bump them. Rows are never
    # deleted, so a re-created user or stage never gets back an old generation.
    """CREATE TABLE IF NOT EXISTS url_generations (
        scope VARCHAR PRIMARY KEY,
        generation BIGINT NOT NULL)""",
]

# Tables that older releases kept in the main database's reserved schema, with their columns.
LEGACY_TABLES: dict[str, str] = {
    "users": "name, password_hash, is_admin, created_on",
    "stage_grants": "stage, grantee, privilege",
    "global_grants": "grantee, privilege",
}


class SecurityDatabase:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = open_locked(str(path), {"threads": 1})
        for ddl in _DDL:
            self._con.execute(ddl)
        self._cur = self._con.cursor()
        self._lock = threading.RLock()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            yield self._cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.cursor() as cur, transaction_on(cur):
            yield cur

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.cursor() as cur:
            return cur.execute(sql, list(params)).fetchall()

    # -- presigned-URL generations ---------------------------------------------------------
    @staticmethod
    def bump(cur: duckdb.DuckDBPyConnection, scope: str) -> None:
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

    def close(self) -> None:
        with self._lock:
            self._cur.close()
            self._con.close()


def move_legacy_rows(main: duckdb.DuckDBPyConnection, schema: str, security: SecurityDatabase) -> bool:
    """Move users and grants of an older data dir from ``schema`` of the main database here.

    Copy first, then drop the old tables: a crash in between leaves both copies, and the next
    start copies again (rows already here are kept) and drops. Returns True when anything moved.
    """
    present = {
        row[0]
        for row in main.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ?",
            [schema],
        ).fetchall()
    }
    legacy = [t for t in LEGACY_TABLES if t in present]
    if not legacy:
        return False
    with security.transaction() as cur:
        for table in legacy:
            columns = LEGACY_TABLES[table]
            rows = main.execute(f"SELECT {columns} FROM {schema}.{table}").fetchall()
            placeholders = ", ".join("?" for _ in columns.split(","))
            for row in rows:
                cur.execute(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})", list(row))
            log.info("moved %d row(s) of %s.%s into the security database", len(rows), schema, table)
    main.execute("BEGIN TRANSACTION")
    for table in legacy:
        main.execute(f"DROP TABLE {schema}.{table}")
    main.execute("COMMIT")
    # Rewrites the file without the dropped tables' blocks and empties the WAL that held them.
    main.execute("CHECKPOINT")
    return True
