"""Load history: which staged files a table has loaded, so COPY loads each file once.

One history per table, keyed by schema and name (DuckDB names are case-insensitive). The key is
the table's name, so every statement that changes which table a name means maintains it (see
:mod:`engine.statements.table_identity`): a dropped, truncated or replaced table's history goes
with it, a renamed table's history moves to the new name.

Every query runs through a :data:`RunSQL` the caller passes, so the history changes in the
caller's transaction: a COPY's rows and its history rows commit (or vanish) together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from engine.names import CATALOG_SCHEMA
from stages.storage.base import StagedFile

HISTORY_TABLE = f"{CATALOG_SCHEMA}.load_history"
# Columns added after the first release (COPY_HISTORY reports them): run at every start, idempotent.
# Entries recorded before have NULL counts and user.
MIGRATION = [
    f"ALTER TABLE {HISTORY_TABLE} ADD COLUMN IF NOT EXISTS row_count BIGINT",
    f"ALTER TABLE {HISTORY_TABLE} ADD COLUMN IF NOT EXISTS error_count BIGINT",
    f"ALTER TABLE {HISTORY_TABLE} ADD COLUMN IF NOT EXISTS first_error VARCHAR",
    f"ALTER TABLE {HISTORY_TABLE} ADD COLUMN IF NOT EXISTS user_name VARCHAR",
]
# What a load reports besides the file: rows loaded, errors seen, the first error, who ran the COPY.
LoadOutcome = tuple[int | None, int | None, str | None, str | None]

# Runs one server-built statement and returns its rows: a session's run_internal (inside the
# user's transaction) or a wrapper around a cursor (see on_cursor).
RunSQL = Callable[[str, list[Any]], list[tuple[Any, ...]]]
# (etag, size, last_modified) as recorded when the file was loaded.
Recorded = tuple[Any, ...]


def on_cursor(cur: duckdb.DuckDBPyConnection) -> RunSQL:
    """A RunSQL on ``cur`` (in whatever transaction it has open)."""

    def run(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return cur.execute(sql, params).fetchall()

    return run


def same_file(recorded: Recorded | None, file: StagedFile) -> bool:
    """Whether a history entry describes ``file`` as it is now (then COPY skips it)."""
    if recorded is None:
        return False
    etag, size, last_modified = recorded
    if etag and file.etag:
        return bool(etag == file.etag)
    return bool(size == file.size and last_modified == file.last_modified)


class LoadHistory:
    """The ``load_history`` table. Entries older than the retention no longer count as loaded."""

    def __init__(self, retention_days: int) -> None:
        self._retention = timedelta(days=retention_days)

    @staticmethod
    def key(schema: str, table: str) -> str:
        return f"{schema}.{table}".lower()

    def loaded(self, run: RunSQL, table_key: str) -> tuple[dict[str, Recorded], frozenset[str]]:
        """The files the table has loaded within the retention (file key -> (etag, size,
        last_modified)), and the keys of every file it has an entry for, expired ones too: a
        COPY replaces only those entries (in the lake even a DELETE that matches nothing scans)."""
        cutoff = datetime.now(UTC) - self._retention
        rows = run(
            f"SELECT file_key, etag, size, last_modified, loaded_at >= ? FROM {HISTORY_TABLE} "
            "WHERE table_name = ?",
            [cutoff, table_key],
        )
        return {r[0]: tuple(r[1:4]) for r in rows if r[4]}, frozenset(r[0] for r in rows)

    @staticmethod
    def record(
        run: RunSQL, table_key: str, file: StagedFile, outcome: LoadOutcome = (None, None, None, None)
    ) -> None:
        """``outcome``: (rows loaded, errors seen, first error, user) as COPY_HISTORY shows them."""
        LoadHistory.record_many(run, table_key, [(file, outcome)])

    @staticmethod
    def record_many(
        run: RunSQL,
        table_key: str,
        loads: Sequence[tuple[StagedFile, LoadOutcome]],
        recorded: Collection[str] | None = None,
    ) -> None:
        """Several files' entries in at most two statements, whatever their number (in the lake
        every statement costs catalog round trips, and a DELETE a delete file). ``recorded``: the
        file keys known to have an entry (from :meth:`loaded` in this transaction, under the load
        lock); only those are deleted first. None: not known, every key is."""
        if not loads:
            return
        keys = list(dict.fromkeys(file.key for file, _ in loads))
        if recorded is not None:
            keys = [k for k in keys if k in recorded]
        if keys:
            marks = ", ".join("?" for _ in keys)
            run(
                f"DELETE FROM {HISTORY_TABLE} WHERE table_name = ? AND file_key IN ({marks})",
                [table_key, *keys],
            )
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?)" for _ in loads)
        params: list[Any] = []
        for file, outcome in loads:
            params += [table_key, file.key, file.etag, file.size, file.last_modified, *outcome]
        run(
            f"INSERT INTO {HISTORY_TABLE} (table_name, file_key, etag, size, last_modified, "
            f"row_count, error_count, first_error, user_name) VALUES {values}",
            params,
        )

    @staticmethod
    def entries(
        run: RunSQL, table_key: str | None, start: datetime | None, end: datetime | None
    ) -> list[tuple[Any, ...]]:
        """(table key, file key, loaded_at, rows, errors, first error, user), newest first."""
        where, params = ["TRUE"], []
        filters = (("table_name = ?", table_key), ("loaded_at >= ?", start), ("loaded_at < ?", end))
        for clause, value in filters:
            if value is not None:
                where.append(clause)
                params.append(value)
        return run(
            "SELECT table_name, file_key, loaded_at, row_count, error_count, first_error, user_name "
            f"FROM {HISTORY_TABLE} WHERE {' AND '.join(where)} ORDER BY loaded_at DESC, file_key",
            params,
        )

    @staticmethod
    def clear(run: RunSQL, table_keys: Sequence[str]) -> None:
        """The tables start afresh (dropped, replaced, truncated, created over a stale name)."""
        if table_keys:
            marks = ", ".join("?" for _ in table_keys)
            run(f"DELETE FROM {HISTORY_TABLE} WHERE table_name IN ({marks})", list(table_keys))

    @staticmethod
    def move(run: RunSQL, old_key: str, new_key: str) -> None:
        """The history of a renamed table follows it (what the new name had is stale: it had no table)."""
        if old_key == new_key:
            return
        run(f"DELETE FROM {HISTORY_TABLE} WHERE table_name = ?", [new_key])
        run(f"UPDATE {HISTORY_TABLE} SET table_name = ? WHERE table_name = ?", [new_key, old_key])

    @staticmethod
    def follow_moved_files(
        run: RunSQL, table_key: str, moved: Sequence[tuple[StagedFile, StagedFile]]
    ) -> None:
        """Files moved to a new key (a renamed table's stage) stay loaded if they were loaded as they were.

        A moved file is a new object (new etag, mtime), so its entry is rewritten to the copy's metadata.
        """
        for old, new in moved:
            row = run(
                f"SELECT etag, size, last_modified, loaded_at, row_count, error_count, first_error, "
                f"user_name FROM {HISTORY_TABLE} "
                "WHERE table_name = ? AND file_key = ?",
                [table_key, old.key],
            )
            if not row:
                continue
            run(f"DELETE FROM {HISTORY_TABLE} WHERE table_name = ? AND file_key = ?", [table_key, old.key])
            if same_file(tuple(row[0][:3]), old):
                run(
                    f"DELETE FROM {HISTORY_TABLE} WHERE table_name = ? AND file_key = ?",
                    [table_key, new.key],
                )
                run(
                    f"INSERT INTO {HISTORY_TABLE} (table_name, file_key, etag, size, last_modified, "
                    "loaded_at, row_count, error_count, first_error, user_name) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [table_key, new.key, new.etag, new.size, new.last_modified, *row[0][3:]],
                )
