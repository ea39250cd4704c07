"""Locks every node sharing a PostgreSQL catalog takes: session-level advisory locks.

A lock lives on the connection that took it, so a node that dies lets go with its connection.
Each held lock needs a connection of its own; connections are kept for the next lock instead of
being opened per lock (a scram login costs several milliseconds, a COPY takes one lock).
A connection goes back to the pool only after its lock was released; any doubt closes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.catalog.pg_connect import connect_catalog, pg_reason
from engine.catalog.security_store import CatalogUnavailable
from engine.config import CatalogUrl
from engine.errors import ConcurrentChange

# How long a node waits for another one's lake initialisation or load into the same table.
LOCK_WAIT_SECONDS = 300
# Idle connections kept: a node rarely holds more locks at once than it runs COPYs.
KEEP_IDLE = 4
# How the connections show in pg_stat_activity (with the node's process id).
APPLICATION_NAME = "stageflight-locks"


class AdvisoryLocks:
    def __init__(self, catalog: CatalogUrl, keep_idle: int = KEEP_IDLE) -> None:
        self._catalog = catalog
        self._keep_idle = keep_idle
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    def _key(self, name: str) -> str:
        return f"stageflight:{self._catalog.schema}:{name}"

    def _connect(self) -> Any:
        import psycopg  # the lake extra

        conn = connect_catalog(self._catalog, f"{APPLICATION_NAME}/{os.getpid()}")
        try:
            conn.execute(f"SET lock_timeout = '{LOCK_WAIT_SECONDS}s'")
        except psycopg.Error as exc:
            conn.close()
            raise CatalogUnavailable(
                f"Cannot reach the catalog {self._catalog.describe()}: {pg_reason(exc)}"
            ) from None
        return conn

    def _take(self) -> tuple[Any, bool]:
        """A connection, and whether it came from the pool (it may have died since)."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        return self._connect(), False

    def _give_back(self, conn: Any) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._keep_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _lock_on(self, conn: Any, name: str, waiting: str) -> None:
        import psycopg

        try:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [self._key(name)])
        except psycopg.errors.LockNotAvailable:
            raise ConcurrentChange(
                f"{waiting}: another node held it for {LOCK_WAIT_SECONDS} s; retry"
            ) from None

    @contextmanager
    def hold(self, name: str, waiting: str) -> Iterator[None]:
        """Hold the lock ``name`` while the block runs; ``waiting`` says, in the error, what could not
        be done when the lock does not come in time."""
        conn = self._locked(name, waiting)
        try:
            yield
        finally:
            self._release(conn, name)

    def _locked(self, name: str, waiting: str) -> Any:
        """A connection holding the lock: a kept one, or a fresh one when the kept one died (a
        PostgreSQL restart) or none is kept."""
        import psycopg

        conn, pooled = self._take()
        for last in (not pooled, True):
            try:
                self._lock_on(conn, name, waiting)
                return conn
            except psycopg.OperationalError:
                conn.close()
                if last:
                    raise CatalogUnavailable(f"Cannot reach the catalog {self._catalog.describe()}") from None
            except BaseException:
                conn.close()
                raise
            conn = self._connect()
        raise AssertionError("unreachable")

    def _release(self, conn: Any, name: str) -> None:
        import psycopg

        try:
            row = conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [self._key(name)]).fetchone()
            released = bool(row and row[0])
        except psycopg.Error:
            released = False
        if released:
            self._give_back(conn)
        else:
            conn.close()  # ends the session, and any lock with it

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
