"""One DuckDB transaction on a cursor, for the catalog databases (main and security)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def transaction_on(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN on ``cur``; COMMIT when the block ends, ROLLBACK when it raises."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")
