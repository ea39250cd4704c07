"""The security store in PostgreSQL, shared by every server started with the same ``--catalog``.

The same tables as ``security.duckdb`` (engine.catalog.security_db's DDL: users, grants, stages,
file formats ...), in one schema of a PostgreSQL database reached through psycopg, with real
PRIMARY KEY constraints: two nodes creating the same user or stage at once get one row, and the
loser a DuplicateRow. Callers' SQL is the dialect both
stores accept, with ``?`` placeholders; here they become psycopg's ``%s`` (our own constant SQL only).

Every write transaction takes one transaction-level advisory lock first, so the check-then-write
steps callers do inside a transaction (a role's existence, a grant cycle) see what the last writer
on any node committed, as they do under the DuckDB store's process lock. Reads run outside it.

The password is never in the URL (refused there) and so never in a log or an error: libpq reads it
from PGPASSWORD or a pgpass file. A lost connection (PostgreSQL restarted) is opened again at the
next use; a statement outside a transaction is then retried once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql

from engine.catalog.login_failures import DDL as LOGIN_FAILURES_DDL
from engine.catalog.pg_connect import CONNECT_TIMEOUT_SECONDS, connect_catalog, pg_reason
from engine.catalog.security_db import DDL, seed_builtins
from engine.catalog.security_store import CatalogCounters, CatalogUnavailable, DuplicateRow
from engine.config import CatalogUrl

log = logging.getLogger("stageflight")

# pg_advisory_xact_lock keys (any bigint; spelled "sf" + purpose, to be recognisable in pg_locks).
DDL_LOCK = 0x7366_0001
WRITE_LOCK = 0x7366_0002
# A node that holds the write lock and stops answering must not stall every other node for long.
SESSION_SETTINGS = {"lock_timeout": "30s", "idle_in_transaction_session_timeout": "60s"}
# Server-wide secrets every node must share (the bearer-token and presign keys), and the login
# throttle's records (engine.catalog.login_failures).
_EXTRA_DDL = [
    """CREATE TABLE IF NOT EXISTS server_secrets (
        name VARCHAR PRIMARY KEY,
        secret VARCHAR NOT NULL,
        created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    LOGIN_FAILURES_DDL,
]


_PLACEHOLDERS: dict[str, str] = {}


def to_pg(sql: str) -> str:
    """Our ``?`` SQL in psycopg's paramstyle (no ``?`` or ``%`` of ours sits inside a literal)."""
    converted = _PLACEHOLDERS.get(sql)
    if converted is None:
        converted = _PLACEHOLDERS[sql] = sql.replace("%", "%%").replace("?", "%s")
    return converted


class PgCursor:
    """What callers use of a DuckDB cursor, over the store's one psycopg connection."""

    def __init__(self, store: PostgresSecurityDatabase) -> None:
        self._store = store
        self._rows: list[Any] = []

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
        self._rows = self._store._execute(to_pg(sql), list(parameters or ()))
        return self

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None


class PostgresSecurityDatabase(CatalogCounters):
    shared = True  # several server processes: tokens verify on every node
    path = None  # no file: see ``url``

    def __init__(self, url: str, *, connect_timeout: int = CONNECT_TIMEOUT_SECONDS) -> None:
        self.url = CatalogUrl.parse(url)
        self._timeout = connect_timeout
        self._lock = threading.RLock()
        self._con: psycopg.Connection[Any] | None = None
        self._in_tx = False
        try:
            self._create_schema()
        except psycopg.Error as exc:  # e.g. no right to create the schema: say so, do not leak
            self.close()
            raise CatalogUnavailable(
                f"Cannot set up the catalog {self.url.describe()}: {pg_reason(exc)}"
            ) from None
        except BaseException:
            self.close()
            raise

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        con: psycopg.Connection[Any] = connect_catalog(self.url, "stageflight", self._timeout)
        con.execute(pg_sql.SQL("SET search_path TO {}").format(pg_sql.Identifier(self.url.schema)))
        for name, value in SESSION_SETTINGS.items():
            con.execute("SELECT set_config(%s, %s, false)", [name, value])
        return con

    def _connection(self) -> psycopg.Connection[Any]:
        if self._con is None or self._con.closed or self._con.broken:
            if self._con is not None:
                log.warning("the catalog connection was lost; connecting again")
                self._con.close()
            self._con = None
            self._con = self._connect()
        return self._con

    def _execute(self, sql: str, params: list[Any]) -> list[Any]:
        """Run one statement; outside a transaction, once more on a fresh connection if it broke."""
        for attempt in (1, 2):
            con = self._connection()
            try:
                with con.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description is not None else []
            except pg_errors.UniqueViolation as exc:
                raise DuplicateRow(pg_reason(exc)) from None
            except pg_errors.LockNotAvailable:
                raise CatalogUnavailable("The catalog is busy (another node holds its lock): retry") from None
            except psycopg.OperationalError as exc:
                if self._in_tx or attempt == 2 or not con.broken:
                    raise CatalogUnavailable(f"The catalog connection failed: {pg_reason(exc)}") from None
        raise AssertionError("unreachable")

    def _create_schema(self) -> None:
        """The schema and tables, once: two nodes starting at the same moment take turns."""
        with self.transaction(lock=DDL_LOCK) as cur:
            # An operator may have made the schema for a role without CREATE on the database.
            if not cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = ?", [self.url.schema]).fetchall():
                cur.execute(
                    pg_sql.SQL("CREATE SCHEMA {}").format(pg_sql.Identifier(self.url.schema)).as_string()
                )
            for ddl in [*DDL, *_EXTRA_DDL]:
                cur.execute(ddl)
            seed_builtins(cur)

    # -- the interface the engine uses (engine.catalog.security_store.SecurityStore) --------
    @contextmanager
    def cursor(self) -> Iterator[PgCursor]:
        with self._lock:
            yield PgCursor(self)

    @contextmanager
    def transaction(self, lock: int = WRITE_LOCK) -> Iterator[PgCursor]:
        """One PostgreSQL transaction, serialised with every other node's by an advisory lock."""
        with self._lock:
            if self._in_tx:
                raise RuntimeError("security transactions do not nest")
            self._begin(lock)
            self._in_tx = True
            cur = PgCursor(self)
            try:
                yield cur
            except BaseException:
                self._in_tx = False
                self._rollback()
                raise
            self._in_tx = False
            self._commit()

    def _begin(self, lock: int) -> None:
        for attempt in (1, 2):
            con = self._connection()
            try:
                con.execute("BEGIN")
                con.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
                return
            except pg_errors.LockNotAvailable:
                self._rollback()
                raise CatalogUnavailable("The catalog is busy (another node holds its lock): retry") from None
            except psycopg.OperationalError as exc:
                if attempt == 2 or not con.broken:
                    raise CatalogUnavailable(f"The catalog connection failed: {pg_reason(exc)}") from None

    def _rollback(self) -> None:
        con = self._con
        if con is None or con.broken or con.closed:
            return
        try:
            con.execute("ROLLBACK")
        except psycopg.Error:
            log.warning("ROLLBACK on the catalog failed; the connection is dropped")
            con.close()

    def _commit(self) -> None:
        con = self._connection()
        try:
            con.execute("COMMIT")
        except pg_errors.UniqueViolation as exc:
            raise DuplicateRow(pg_reason(exc)) from None
        except psycopg.OperationalError as exc:
            raise CatalogUnavailable(f"The catalog connection failed at COMMIT: {pg_reason(exc)}") from None

    def shared_secret(self, name: str, make: str) -> str:
        """The secret ``name`` all nodes share; the first node to ask stores ``make``."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO server_secrets (name, secret) VALUES (?, ?) ON CONFLICT DO NOTHING", [name, make]
            )
            return str(
                cur.execute("SELECT secret FROM server_secrets WHERE name = ?", [name]).fetchall()[0][0]
            )

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL writes its WAL out itself."""

    def ping(self) -> float:
        """Seconds for one round trip (for /health); raises CatalogUnavailable."""
        start = time.monotonic()
        self.rows("SELECT 1")
        return time.monotonic() - start

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
