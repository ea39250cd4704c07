"""A confined DuckDB instance that reads local Parquet stage files natively (the fast COPY path).

security.md §2(b): a separate DuckDB instance whose only allowed directory is the stage root, with
external access off and its configuration locked. It never sees user SQL: the server calls its
relational API with paths it validated itself, and hands the result over as an Arrow stream.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pyarrow as pa

from stages.duckdb_sandbox import open_locked
from stages.storage.local import LocalBackend


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
