"""The security database: password hashes, roles, grants, owners, presigned-URL generations, and
the named stages and file formats those grants and URLs are about.

A DuckDB file of its own (``<data_dir>/security.duckdb``) opened by a separate, locked DuckDB
instance that never runs user SQL. The user-facing instance has no path to it: the file is not
attached there, and with external access off DuckDB refuses to read any file but its own
(issue 11, item 4: reading the main database file's bytes must not yield a password hash).

A stage's row, its grants and its URL generation live in one store, so CREATE and DROP STAGE
change all three in one transaction (StageCatalog). In lake mode the same tables are in
PostgreSQL (engine.catalog.security_pg), where their PRIMARY KEYs keep names unique across nodes.
Older releases kept stages and file formats in the main database (or the lake): see
move_legacy_rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from engine.catalog.security_store import CatalogCounters, DuplicateRow, SecurityStore
from engine.catalog.transactions import transaction_on
from stages.duckdb_sandbox import open_locked

log = logging.getLogger("stageflight")

# The dialect both stores accept (engine.catalog.security_pg runs it too).
DDL = [
    """CREATE TABLE IF NOT EXISTS users (
        name VARCHAR PRIMARY KEY,
        password_hash VARCHAR NOT NULL,
        default_role VARCHAR,
        created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    # A data dir from before roles has users without default_role (and with is_admin: see
    # migrate_privileges).
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS default_role VARCHAR",
    """CREATE TABLE IF NOT EXISTS roles (
        name VARCHAR PRIMARY KEY,
        comment VARCHAR,
        created_by VARCHAR,
        created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    # user -> role and role -> role (the hierarchy); `public` is every user's without a row.
    """CREATE TABLE IF NOT EXISTS role_grants (
        role VARCHAR NOT NULL,
        grantee_kind VARCHAR NOT NULL,
        grantee VARCHAR NOT NULL,
        granted_by VARCHAR,
        PRIMARY KEY (role, grantee_kind, grantee))""",
    # object_kind: global (object_id '*'), schema (its name, lower case), table (its uuid), stage.
    """CREATE TABLE IF NOT EXISTS object_grants (
        object_kind VARCHAR NOT NULL,
        object_id VARCHAR NOT NULL,
        privilege VARCHAR NOT NULL,
        grantee_kind VARCHAR NOT NULL,
        grantee VARCHAR NOT NULL,
        granted_by VARCHAR,
        PRIMARY KEY (object_kind, object_id, privilege, grantee_kind, grantee))""",
    # Transferred ownership (GRANT OWNERSHIP); without a row, the creator the main database
    # records owns the object (root for objects from before owners were recorded).
    """CREATE TABLE IF NOT EXISTS owners (
        object_kind VARCHAR NOT NULL,
        object_id VARCHAR NOT NULL,
        owner_kind VARCHAR NOT NULL,
        owner VARCHAR NOT NULL,
        since TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (object_kind, object_id))""",
    # Bumped in every transaction that changes access: caches of effective privileges key on it.
    """CREATE TABLE IF NOT EXISTS catalog_version (
        id BIGINT PRIMARY KEY,
        version BIGINT NOT NULL)""",
    "INSERT INTO catalog_version VALUES (1, 0) ON CONFLICT DO NOTHING",
    # A presigned URL carries the generations of what its authority rests on (user, stage,
    # grant); DROP USER, password changes, REVOKE and DROP STAGE bump them. Rows are never
    # deleted, so a re-created user or stage never gets back an old generation.
    """CREATE TABLE IF NOT EXISTS url_generations (
        scope VARCHAR PRIMARY KEY,
        generation BIGINT NOT NULL)""",
    # Named stages (engine.catalog.stages): an external stage's connection is sealed with the
    # server key (engine.catalog.secrets_box), bound to the stage's name.
    """CREATE TABLE IF NOT EXISTS stages (
        name VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        url VARCHAR,
        file_format VARCHAR NOT NULL DEFAULT '{}',
        connection VARCHAR NOT NULL DEFAULT '{}',
        comment VARCHAR,
        creator VARCHAR,
        created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    # Named file formats (engine.catalog.file_formats).
    """CREATE TABLE IF NOT EXISTS file_formats (
        name VARCHAR PRIMARY KEY,
        options VARCHAR NOT NULL,
        creator VARCHAR,
        created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
]

ACCOUNT_ADMIN = "account_admin"
PUBLIC_ROLE = "public"
BUILTIN_ROLES = (ACCOUNT_ADMIN, PUBLIC_ROLE)
DEFAULT_SCHEMA = "main"

# Tables that older releases kept in the main database's reserved schema (stages and file
# formats also in the lake's), with their columns.
STAGE_COLUMNS = "name, kind, url, file_format, connection, comment, creator, created_on"
FILE_FORMAT_COLUMNS = "name, options, creator, created_on"
LEGACY_TABLES: dict[str, str] = {
    "users": "name, password_hash, is_admin, created_on",
    "stage_grants": "stage, grantee, privilege",
    "global_grants": "grantee, privilege",
    "stages": STAGE_COLUMNS,
    "file_formats": FILE_FORMAT_COLUMNS,
}


class SecurityDatabase(CatalogCounters):
    shared = False  # one server process: tokens stay node-local

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = open_locked(str(path), {"threads": 1})
        for ddl in DDL:
            self._con.execute(ddl)
        self._cur = self._con.cursor()
        self._lock = threading.RLock()
        migrate_privileges(self)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            yield self._cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            with self.cursor() as cur, transaction_on(cur):
                yield cur
        except duckdb.ConstraintException as exc:
            if "duplicate key" not in str(exc).lower():
                raise
            raise DuplicateRow(str(exc)) from exc

    # rows, bump, generations, bump_version, version: CatalogCounters
    def checkpoint(self) -> None:
        """Write the WAL into the file now (after sealing plaintext credentials: they leave it)."""
        with self.cursor() as cur:
            try:
                cur.execute("CHECKPOINT")
            except duckdb.Error as exc:
                log.warning("checkpoint of the security database postponed: %s", exc)

    def shared_secret(self, name: str, make: str) -> str:
        raise NotImplementedError("one server process: nothing is shared with other nodes")

    def close(self) -> None:
        with self._lock:
            self._cur.close()
            self._con.close()


def move_legacy_rows(
    main: duckdb.DuckDBPyConnection, schema: str, security: SecurityStore, *, checkpoint: bool = True
) -> bool:
    """Move users, grants, stages and file formats of an older data dir (or lake) from ``schema``
    of the main database (``main``'s current database) here.

    Copy first, then drop the old tables: a crash in between leaves both copies, and the next
    start copies again (rows already here are kept) and drops. In lake mode the caller holds the
    nodes' DDL lock, so one node moves and the others find nothing. ``checkpoint``: rewrite the
    main database file without the dropped tables (not for the lake). Returns True when anything
    moved.
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
            for row in rows:
                _insert_legacy(cur, table, row)
            log.info("moved %d row(s) of %s.%s into the security database", len(rows), schema, table)
        security.bump_version(cur)
    main.execute("BEGIN TRANSACTION")
    for table in legacy:
        main.execute(f"DROP TABLE {schema}.{table}")
    main.execute("COMMIT")
    if checkpoint:
        # Rewrites the file without the dropped tables' blocks and empties the WAL that held them.
        main.execute("CHECKPOINT")
    return True


def _insert_legacy(cur: duckdb.DuckDBPyConnection, table: str, row: tuple[Any, ...]) -> None:
    """One row of an old table, in the form it has here now (rows already here are kept)."""
    if table == "users":
        name, password_hash, is_admin, created_on = row
        cur.execute(
            "INSERT INTO users (name, password_hash, created_on) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [name, password_hash, created_on],
        )
        if is_admin:
            cur.execute(_GRANT_ROLE, [ACCOUNT_ADMIN, name])
    elif table == "stage_grants":
        cur.execute(_GRANT_ON, ["stage", row[0], row[2], row[1]])
    elif table == "global_grants":
        cur.execute(_GRANT_ON, ["global", "*", row[1], row[0]])
    else:  # stages, file_formats: the same columns here
        here = cur.execute(f"SELECT creator, created_on FROM {table} WHERE name = ?", [row[0]]).fetchall()
        if not here:
            marks = ", ".join("?" for _ in row)
            cur.execute(f"INSERT INTO {table} ({LEGACY_TABLES[table]}) VALUES ({marks})", list(row))
        elif tuple(here[0]) != (row[-2], row[-1]):
            # Not this row, copied by an interrupted start: another node's of the same name (nodes
            # sharing one --catalog, each with its own data dir). The one already here is kept.
            log.warning("%s %s of the old main database not moved: one of that name exists", table, row[0])


_GRANT_ROLE = "INSERT INTO role_grants VALUES (?, 'user', ?, 'root') ON CONFLICT DO NOTHING"
_GRANT_ON = "INSERT INTO object_grants VALUES (?, ?, ?, 'user', ?, 'root') ON CONFLICT DO NOTHING"


def _columns(cur: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = cur.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def seed_builtins(cur: Any) -> None:
    """The built-in roles, and (once: a later REVOKE stays) public's USAGE and CREATE on ``main``.

    Both stores run it inside a transaction; the SQL is the dialect both accept.
    """
    seeded = cur.execute("SELECT count(*) FROM roles").fetchall()[0][0] > 0
    for role in BUILTIN_ROLES:
        cur.execute(
            "INSERT INTO roles (name, comment, created_by) VALUES (?, 'built-in', 'root') "
            "ON CONFLICT DO NOTHING",
            [role],
        )
    if not seeded:
        for privilege in ("USAGE", "CREATE"):
            cur.execute(
                "INSERT INTO object_grants VALUES ('schema', ?, ?, 'role', ?, 'root') ON CONFLICT DO NOTHING",
                [DEFAULT_SCHEMA, privilege, PUBLIC_ROLE],
            )


def migrate_privileges(security: SecurityDatabase) -> None:
    """Bring a security database from before roles to the privilege tables, at every start.

    stage_grants -> object_grants('stage'), global_grants -> object_grants('global', '*'),
    users.is_admin -> membership of account_admin; the built-in roles and public's USAGE and
    CREATE on ``main`` are seeded once. Copy first, then drop, each step in its own transaction
    after the copy: a crash in between leaves both, and the next start copies again (rows already
    here are kept) and drops. Idempotent.
    """
    with security.transaction() as cur:
        present = {
            r[0]
            for r in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        }
        seed_builtins(cur)
        if "stage_grants" in present:
            for stage, grantee, privilege in cur.execute(
                "SELECT stage, grantee, privilege FROM stage_grants"
            ).fetchall():
                cur.execute(_GRANT_ON, ["stage", stage, privilege, grantee])
        if "global_grants" in present:
            for grantee, privilege in cur.execute("SELECT grantee, privilege FROM global_grants").fetchall():
                cur.execute(_GRANT_ON, ["global", "*", privilege, grantee])
        had_admin_flag = "is_admin" in _columns(cur, "users")
        if had_admin_flag:
            for (name,) in cur.execute("SELECT name FROM users WHERE is_admin").fetchall():
                cur.execute(_GRANT_ROLE, [ACCOUNT_ADMIN, name])
        security.bump_version(cur)
    # The copies are committed: the old forms go.
    with security.cursor() as cur:
        for table in ("stage_grants", "global_grants"):
            if table in present:
                cur.execute(f"DROP TABLE {table}")
                log.info("moved %s into object_grants", table)
        if had_admin_flag:
            cur.execute("ALTER TABLE users DROP COLUMN is_admin")
            log.info("moved users.is_admin into the account_admin role")
