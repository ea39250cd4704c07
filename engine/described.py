"""The schema a query will stream, found without running it, and kept for the next prepare of the
same text.

ADBC prepares every ``cursor.execute`` (CreatePreparedStatement, whose answer must carry the
result's schema), so a client that runs one query again and again would have DuckDB run each of
them twice: a ``LIMIT 0`` describe, then the query. A session keeps the schemas it described,
keyed by the query's text, parameter count and role, and they stay valid until a statement that
may change what a name means runs anywhere in this process (DDL, DML, SET, USE, a transaction's
end, an ingest): every such statement moves the epoch on, before and after it runs, so a describe
racing it is stored under an epoch that is already over. Several nodes on one lake change the
catalog behind each other's back: there nothing is kept (``enabled=False``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

KEPT_PER_SESSION = 64

_epoch = 0
_epoch_lock = threading.Lock()


@contextmanager
def catalog_changing() -> Iterator[None]:
    """Around any statement that may change a table's columns or what a name means."""
    _bump()
    try:
        yield
    finally:
        _bump()


def _bump() -> None:
    global _epoch
    with _epoch_lock:
        _epoch += 1


def _current_epoch() -> int:
    return _epoch


def describe(cursor: duckdb.DuckDBPyConnection, sql: str, param_count: int) -> pa.Schema:
    """The schema the query's run will stream, from a ``LIMIT 0`` run (DuckDB reads nothing).

    The names are the query's own (the LIMIT wraps it in a subquery, which would rename a
    repeated name ``a`` to ``a_1``).
    """
    params = [None] * param_count if param_count else None
    wrapped = f"SELECT * FROM ({sql}) AS _stageflight_q LIMIT 0"
    schema = cursor.sql(wrapped, params=params).to_arrow_table().schema
    if not _maybe_renamed(schema.names):
        return schema
    # DESCRIBE binds without running (a relation's .columns would run nextval()).
    names = [str(row[0]) for row in cursor.execute(f"DESCRIBE {sql}", params).fetchall()]
    return pa.schema([field.with_name(name) for field, name in zip(schema, names, strict=True)])


def _maybe_renamed(names: list[str]) -> bool:
    """A subquery renames a repeated column ``a`` to ``a_1``, ``a_2`` ...: is any name such a one?"""
    seen = set(names)
    return any(name.rpartition("_")[0] in seen and name.rpartition("_")[2].isdigit() for name in names)


class DescribedSchemas:
    """One session's described schemas (a session runs one call at a time, so no lock)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._kept: OrderedDict[tuple[str, int, str], tuple[int, pa.Schema]] = OrderedDict()

    def get(self, sql: str, param_count: int, role: str) -> tuple[int, pa.Schema | None]:
        """The epoch to store a new describe under, and the schema kept for it (None: describe)."""
        epoch = _current_epoch()
        if not self.enabled:
            return epoch, None
        key = (sql, param_count, role)
        kept = self._kept.get(key)
        if kept is None or kept[0] != epoch:
            return epoch, None
        self._kept.move_to_end(key)
        return epoch, kept[1]

    def keep(self, sql: str, param_count: int, role: str, epoch: int, schema: pa.Schema) -> None:
        if not self.enabled:
            return
        self._kept[(sql, param_count, role)] = (epoch, schema)
        self._kept.move_to_end((sql, param_count, role))
        while len(self._kept) > KEPT_PER_SESSION:
            self._kept.popitem(last=False)
