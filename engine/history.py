"""Load history: one history per table, keyed by schema and name (DuckDB names are case-insensitive).

The key is the table's name, so every statement that changes which table a name means must
maintain it (see :mod:`engine.table_identity`): a dropped or replaced table's history goes with it,
a renamed table's history moves to the new name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from engine.database import CATALOG_SCHEMA
from stages.storage.base import StagedFile

HISTORY_TABLE = f"{CATALOG_SCHEMA}.load_history"

# Runs one server-built statement and returns its rows: a session's run_internal (inside the
# user's transaction) or a wrapper around a catalog cursor.
RunSQL = Callable[[str, list[Any]], list[tuple[Any, ...]]]


def history_table_key(schema: str, table: str) -> str:
    return f"{schema}.{table}".lower()


def clear_history(run: RunSQL, table_keys: Sequence[str]) -> None:
    if table_keys:
        marks = ", ".join("?" for _ in table_keys)
        run(f"DELETE FROM {HISTORY_TABLE} WHERE table_name IN ({marks})", list(table_keys))


def move_history(run: RunSQL, old_key: str, new_key: str) -> None:
    """The history of a renamed table follows it (what the new name had is stale: it had no table)."""
    if old_key == new_key:
        return
    run(f"DELETE FROM {HISTORY_TABLE} WHERE table_name = ?", [new_key])
    run(f"UPDATE {HISTORY_TABLE} SET table_name = ? WHERE table_name = ?", [new_key, old_key])


def recorded_matches(recorded: Sequence[Any], file: StagedFile) -> bool:
    """Whether a history entry (etag, size, last_modified) describes ``file`` (as COPY decides)."""
    etag, size, last_modified = recorded
    if etag and file.etag:
        return bool(etag == file.etag)
    return bool(size == file.size and last_modified == file.last_modified)


def follow_moved_files(run: RunSQL, table_key: str, moved: Sequence[tuple[StagedFile, StagedFile]]) -> None:
    """Files moved to a new key (a renamed table's stage) stay loaded if they were loaded as they were.

    A moved file is a new object (new etag, mtime), so its entry is rewritten to the copy's metadata.
    """
    for old, new in moved:
        row = run(
            f"SELECT etag, size, last_modified, loaded_at FROM {HISTORY_TABLE} "
            "WHERE table_name = ? AND file_key = ?",
            [table_key, old.key],
        )
        if not row:
            continue
        run(f"DELETE FROM {HISTORY_TABLE} WHERE table_name = ? AND file_key = ?", [table_key, old.key])
        if recorded_matches(row[0][:3], old):
            run(
                f"DELETE FROM {HISTORY_TABLE} WHERE table_name = ? AND file_key = ?", [table_key, new.key]
            )
            run(
                f"INSERT INTO {HISTORY_TABLE} (table_name, file_key, etag, size, last_modified, loaded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [table_key, new.key, new.etag, new.size, new.last_modified, row[0][3]],
            )
