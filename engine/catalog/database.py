"""The user-facing DuckDB instance: opened, given its catalog schema, then locked before any user connects.

Password hashes, grants, named stages and file formats live apart, in the security store
(engine.catalog.security_db), and external stages' credentials are sealed with a key kept outside
both files (engine.catalog.secrets_box).
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb

from engine.catalog.advisory_locks import AdvisoryLocks
from engine.catalog.lake import attach_lake, lake_data_path, lake_ddl, use_lake
from engine.catalog.load_history import MIGRATION as LOAD_HISTORY_MIGRATION
from engine.catalog.secrets_box import SecretBox
from engine.catalog.security_db import SecurityDatabase, move_legacy_rows
from engine.catalog.security_store import CatalogUnavailable, SecurityStore
from engine.catalog.transactions import transaction_on
from engine.config import CatalogUrl, EngineConfig
from engine.names import CATALOG_SCHEMA
from stages.duckdb_sandbox import Setting, open_locked

# DuckDB's own checkpoint_threshold default. DuckDB checkpoints by itself only at a write's commit
# that finds no other transaction open; a session reading a large result postpones that until the
# next write. We also try after every statement (see Database.checkpoint_if_due).
CHECKPOINT_WAL_BYTES = 16 << 20

log = logging.getLogger("stageflight")

# Named stages and file formats are in the security store (engine.catalog.security_db's DDL);
# older releases kept them here, and move_legacy_rows moves them at start-up.
_CATALOG_DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {CATALOG_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {CATALOG_SCHEMA}.load_history (
        table_name VARCHAR NOT NULL,
        file_key VARCHAR NOT NULL,
        etag VARCHAR,
        size BIGINT NOT NULL,
        last_modified TIMESTAMPTZ NOT NULL,
        loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (table_name, file_key))""",
    # Who created each table (owns its table stage @%t); engine.statements.table_identity keeps it.
    f"""CREATE TABLE IF NOT EXISTS {CATALOG_SCHEMA}.table_owners (
        table_id VARCHAR PRIMARY KEY,
        schema_name VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        owner VARCHAR NOT NULL,
        created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
]


def first_row(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    """The first row of a query, reading the result to its end.

    ``fetchone()`` leaves the result open, and with it a transaction that keeps DuckDB from
    checkpointing after any later catalog change, on every connection, until this cursor runs its
    next statement (the WAL then grew without bound).
    """
    rows = cur.execute(sql, list(params)).fetchall()
    return rows[0] if rows else None


def _settings(config: EngineConfig) -> dict[str, Setting]:
    settings: dict[str, Setting] = {"temp_directory": str(config.temp_dir)}
    if config.threads:
        settings["threads"] = config.threads
    if config.memory_limit:
        settings["memory_limit"] = config.memory_limit
    return settings


def open_security_store(config: EngineConfig) -> SecurityStore:
    """``security.duckdb`` in the data dir, or the PostgreSQL catalog ``--catalog`` names."""
    if config.catalog_url is None:
        return SecurityDatabase(config.security_database_path)
    try:
        from engine.catalog.security_pg import PostgresSecurityDatabase  # psycopg: the lake extra only
    except ImportError as exc:
        raise CatalogUnavailable(
            f"--catalog needs psycopg ({exc}): pip install 'stageflight[lake]'"
        ) from None

    return PostgresSecurityDatabase(config.catalog_url)


class Database:
    """Owns the DuckDB instances. Sessions get their own cursors; server work uses ``server_cursor``.

    ``security`` is the separate store for hashes, grants, stages and file formats; ``secret_box``
    seals credentials.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.temp_dir.mkdir(parents=True, exist_ok=True)
        # Locked before anything else runs: no SQL on any cursor can reach host files or change
        # settings. The catalog DDL only touches the database itself.
        self.lake = config.lake_tables
        # EngineConfig refuses lake tables without a catalog URL (and checked the URL).
        self._catalog = CatalogUrl.parse(config.catalog_url) if config.catalog_url is not None else None
        self._locks = AdvisoryLocks(self._catalog) if self._catalog is not None else None
        # Node locks this process holds (name -> owner, depth): an owner may take its own again.
        self._held: dict[str, tuple[object, int]] = {}
        self._held_lock = threading.Lock()
        if self.lake:
            self._con = self._open_lake()
        else:
            self._con = open_locked(str(config.database_path), _settings(config))
        self.security: SecurityStore = open_security_store(config)
        # Nodes starting together on a new lake would collide on these (a DuckLake conflict), and
        # on an old lake both would move its stages and file formats and drop the old tables.
        with self.node_lock("catalog-ddl", "Creating the catalog schema in the lake waited too long"):
            for ddl in [*_CATALOG_DDL, *LOAD_HISTORY_MIGRATION]:
                self._con.execute(lake_ddl(ddl) if self.lake else ddl)
            move_legacy_rows(self._con, CATALOG_SCHEMA, self.security, checkpoint=not self.lake)
        self.secret_box = self._secret_box()
        self._cursor_lock = threading.Lock()
        self._server = self.cursor()
        self._server_lock = threading.RLock()
        # Its own connection, so a checkpoint never holds up catalog work on the server cursor.
        self._checkpoint = self.cursor()
        self._checkpoint_lock = threading.Lock()
        self.wal_path = config.database_path.with_name(config.database_path.name + ".wal")
        self._holds = 0
        self._holds_lock = threading.Lock()

    def _secret_box(self) -> SecretBox:
        """The key sealing external stages' credentials: the server key file, or in lake mode
        (unless --server-key-file names one) a key kept in the PostgreSQL catalog, so a stage
        made on one node opens on every node. User SQL reaches neither (no file, no postgres_*)."""
        if not self.lake or self.config.server_key_file is not None:
            return SecretBox.load_or_create(self.config.server_key_path)
        fresh = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        return SecretBox(base64.b64decode(self.security.shared_secret("stage_credentials_key", fresh)))

    def _open_lake(self) -> duckdb.DuckDBPyConnection:
        """An in-memory instance with the lake attached (and used) before it is locked."""
        config = self.config
        catalog, locks = self._catalog, self._locks
        assert catalog is not None and locks is not None
        data_path = lake_data_path(config.stage_root)
        # The lake's Parquet files are all DuckDB may reach; stage files go through pyarrow.
        return open_locked(
            ":memory:",
            _settings(config),
            allowed_directory=data_path,
            before_lock=lambda con: attach_lake(
                con, catalog, data_path, config.data_dir / "extensions", locks, config.storage_options
            ),
        )

    @contextmanager
    def load_lock(self, target: str, owner: object) -> Iterator[None]:
        """Held by a COPY from choosing its files to its commit: in the lake, two nodes loading the
        same table would otherwise both load a file neither saw in the history (DuckLake has no
        UNIQUE). One lock per target table, never one for all; ``owner`` (the session) may take it
        again while it holds it (two COPYs into one table in one transaction). On one node the
        history's primary key already refuses a second load of a file."""
        with self.node_lock(f"load:{target}", f"COPY INTO {target} waited too long", owner):
            yield

    @contextmanager
    def node_lock(self, name: str, waiting: str, owner: object = None) -> Iterator[None]:
        """In lake mode, a lock every node sharing the catalog takes for ``name`` (a PostgreSQL
        advisory lock): what a PRIMARY KEY keeps unique on one node (a loaded file) DuckLake
        cannot, and the catalog schema's creation. On one node: nothing to take."""
        if not self.lake:
            yield
            return
        with self._held_lock:
            held = self._held.get(name)
            again = held is not None and owner is not None and held[0] is owner
            if held is not None and again:
                self._held[name] = (owner, held[1] + 1)
        if again:
            try:
                yield
            finally:
                with self._held_lock:
                    self._held[name] = (owner, self._held[name][1] - 1)
            return
        assert self._locks is not None
        with self._locks.hold(name, waiting):
            with self._held_lock:
                self._held[name] = (owner, 1)
            try:
                yield
            finally:
                with self._held_lock:
                    del self._held[name]

    def lake_layout(self) -> dict[str, str]:
        """Where a lake node keeps what (for ``stageflight init-lake``); empty on one node."""
        if not self.lake or self._catalog is None:
            return {}
        return {
            "catalog": self._catalog.describe(),
            "catalog tables": f"schema {self._catalog.schema}",
            "lake metadata": f"schema {self._catalog.schema}_lake",
            "lake data": lake_data_path(self.config.stage_root),
        }

    def health(self) -> dict[str, str]:
        """Each store's state for /health: ``ok`` or why not (the password is in no message)."""

        def probe(check: Callable[[], object]) -> str:
            try:
                check()
                return "ok"
            except Exception as exc:  # a health probe reports any failure, it never raises
                return f"unavailable: {type(exc).__name__}: {str(exc)[:200]}"

        def tables() -> None:
            cur = self.cursor()  # a fresh cursor: in the lake this reads its metadata in PostgreSQL
            try:
                cur.execute(f"SELECT 1 FROM {CATALOG_SCHEMA}.table_owners LIMIT 1").fetchall()
            finally:
                cur.close()

        return {"catalog": probe(self.security.version), "lake" if self.lake else "database": probe(tables)}

    def note_cursor_hold(self) -> int:
        """Counts every hold of any session's cursor: an unchanged count means nothing ran since."""
        with self._holds_lock:
            self._holds += 1
            return self._holds

    @property
    def cursor_holds(self) -> int:
        return self._holds

    def threads(self) -> int:
        """DuckDB's worker threads (``--threads``, or the CPUs the process may run on)."""
        with self.server_cursor() as cur:
            row = first_row(cur, "SELECT current_setting('threads')")
        return int(row[0]) if row else 0

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the instance (per session: own temp tables, transaction, registrations)."""
        # The parent connection object is not safe to share between threads.
        with self._cursor_lock:
            cur = self._con.cursor()
        return use_lake(cur) if self.lake else cur

    @contextmanager
    def server_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The server's own cursor for catalog work; never runs user SQL."""
        with self._server_lock:
            yield self._server

    @contextmanager
    def server_transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.server_cursor() as cur, transaction_on(cur):
            yield cur

    def checkpoint_if_due(self) -> bool:
        """Checkpoint once the WAL outgrows DuckDB's threshold; True when a checkpoint ran.

        Sessions call it after each statement outside a transaction and after each commit (a stat()
        when nothing is due). While a transaction older than the changes is still open, DuckDB
        refuses at once, and a later call tries again.
        """
        try:
            if self.wal_path.stat().st_size < CHECKPOINT_WAL_BYTES:
                return False
        except FileNotFoundError:
            return False
        if not self._checkpoint_lock.acquire(blocking=False):
            return False  # another thread is checkpointing right now
        try:
            self._checkpoint.execute("CHECKPOINT")
            return True
        except duckdb.Error as exc:
            log.debug("checkpoint postponed: %s", exc)
            return False
        finally:
            self._checkpoint_lock.release()

    def close(self) -> None:
        with self._server_lock, self._checkpoint_lock:
            self._checkpoint.close()
            self._server.close()
            self._con.close()
        self.security.close()
        if self._locks is not None:
            self._locks.close()
