"""A confined DuckDB instance that reads local Parquet stage files natively (the fast COPY path).

security.md §2(b): a separate DuckDB instance whose only allowed directory is the stage root, with
external access off and its configuration locked. It never sees user SQL: the server calls its
relational API with paths it validated itself, and hands the result over as an Arrow stream.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

from stages.storage.local import LocalBackend

Setting = str | bool | int | float | list[str]

# security.md §1.2: no extension loading or installing, no persistent or unredacted secrets,
# no Python replacement scans.
_LOCKED_SETTINGS: dict[str, Setting] = {
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "allow_unredacted_secrets": False,
    "python_enable_replacements": False,
}


def open_locked(
    database: str, settings: Mapping[str, Setting] | None = None, allowed_directory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB instance with external access off and its configuration locked.

    ``allowed_directory`` is the only host directory SQL on it may reach (DuckDB adds its own
    database, WAL and temp files); it can only be set before access is switched off.
    """
    con = duckdb.connect(database, config={**_LOCKED_SETTINGS, **(settings or {})})
    if allowed_directory is not None:
        con.execute(f"SET allowed_directories = ['{allowed_directory.replace(chr(39), chr(39) * 2)}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


class NativeParquetReader:
    def __init__(self, backend: LocalBackend, threads: int | None = None) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._con = open_locked(
            ":memory:", {"threads": threads} if threads else None, backend.root.rstrip("/") + "/"
        )

    def open_many(self, keys: Sequence[str], columns: Sequence[str], batch_rows: int) -> pa.RecordBatchReader:
        """Stream ``columns`` (file column names, in target order) of validated stage files."""
        # filesystem_and_path validates each key and refuses symlinks.
        paths = [self.backend.filesystem_and_path(key)[1] for key in keys]
        projection = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
        with self._lock:
            cursor = self._con.cursor()
        return cursor.read_parquet(paths).project(projection).to_arrow_reader(batch_rows)
