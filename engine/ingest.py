"""Bulk ingest (Flight SQL CommandStatementIngest): Arrow data into a table, four ADBC modes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

from engine.conflicts import retried_on_conflict
from engine.described import catalog_changing
from engine.errors import ObjectAlreadyExists, ObjectNotFound
from engine.names import qualified, quote_ident, reject_reserved
from engine.session import Session
from engine.sql.table_refs import TableNeed
from engine.statements.access import require_needs
from engine.statements.table_identity import track_table_changes


class IfMissing(Enum):
    CREATE = "create"
    FAIL = "fail"


class IfExists(Enum):
    FAIL = "fail"
    APPEND = "append"
    REPLACE = "replace"


@dataclass(frozen=True)
class IngestTarget:
    table: str
    schema: str | None = None
    catalog: str | None = None
    temporary: bool = False

    def sql_name(self) -> str:
        if self.temporary:
            return qualified("temp", self.schema or "main", self.table)
        return qualified(self.catalog, self.schema, self.table)


def _exists(session: Session, target: IngestTarget) -> bool:
    catalog = "temp" if target.temporary else target.catalog
    rows = session.run_internal(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
        "AND schema_name = coalesce(?, current_schema()) AND database_name = coalesce(?, current_database())",
        [target.table, target.schema or ("main" if target.temporary else None), catalog],
    )
    return bool(rows[0][0])


def _require_privileges(session: Session, target: IngestTarget, exists: bool, if_exists: IfExists) -> None:
    """Append needs INSERT on the table; create needs CREATE in the schema; replace needs the
    table's ownership as well (as CREATE OR REPLACE TABLE). A temporary table is the session's own."""
    if target.temporary:
        return
    catalog = target.catalog.lower() if target.catalog else None
    # The table _exists found: the non-temporary one of that name in that schema.
    schema = (target.schema or session.current_schema()).lower()

    def need(privilege: str) -> TableNeed:
        return TableNeed(catalog, schema, target.table.lower(), privilege)

    if exists and if_exists is IfExists.APPEND:
        require_needs(session, [need("INSERT")])
    elif exists:
        require_needs(session, [need("REPLACE"), need("CREATE")])
    else:
        require_needs(session, [need("CREATE")])


def ingest(
    session: Session,
    target: IngestTarget,
    data: pa.RecordBatchReader,
    if_missing: IfMissing,
    if_exists: IfExists,
) -> int:
    with catalog_changing():  # a new or replaced table: what a query on that name gives changes
        return _ingest(session, target, data, if_missing, if_exists)


def _ingest(
    session: Session,
    target: IngestTarget,
    data: pa.RecordBatchReader,
    if_missing: IfMissing,
    if_exists: IfExists,
) -> int:
    reject_reserved(target.catalog, target.schema, target.table)
    name = target.sql_name()
    exists = _exists(session, target)
    if exists and if_exists is IfExists.FAIL:
        raise ObjectAlreadyExists(f"Table already exists: {target.table}")
    if not exists and if_missing is IfMissing.FAIL:
        raise ObjectNotFound(f"Table does not exist: {target.table}")
    _require_privileges(session, target, exists, if_exists)
    # Clients send whatever batch sizes they have.
    source = session.register_insert_source(data.schema, data)
    try:
        if _retryable(session, target):
            # The client's stream can be read once: kept in a local temporary table, the lake write
            # that lost a race to another node's change can run again (and no lake transaction is
            # open while a slow client sends).
            staged = f"temp.main.{quote_ident('_stageflight_ingest_' + uuid.uuid4().hex)}"
            session.run_internal(f"CREATE TEMP TABLE {staged} AS SELECT * FROM {source}")
            try:
                return retried_on_conflict(lambda: _write(session, target, name, staged, exists, if_exists))
            finally:
                session.run_internal(f"DROP TABLE IF EXISTS {staged}")
        return _write(session, target, name, source, exists, if_exists)
    finally:
        session.unregister_all([source])


def _retryable(session: Session, target: IngestTarget) -> bool:
    """Ingest into a lake table outside the client's transaction: another node may change the table."""
    return session.engine.db.lake and not target.temporary and not session.in_transaction


def _write(
    session: Session, target: IngestTarget, name: str, source: str, exists: bool, if_exists: IfExists
) -> int:
    if not exists or if_exists is IfExists.REPLACE:
        temp = "TEMP " if target.temporary else ""
        replace = "OR REPLACE " if exists else ""

        def create() -> int:
            session.run_internal(f"CREATE {replace}{temp}TABLE {name} AS SELECT * FROM {source}")
            return int(session.run_internal(f"SELECT count(*) FROM {name}")[0][0])

        # A new table: owned by this user, no load history, an empty table stage.
        return track_table_changes(session, create)
    result = session.run_internal(f"INSERT INTO {name} BY NAME SELECT * FROM {source}")
    return int(result[0][0]) if result else -1
