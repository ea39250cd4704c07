"""VACUUM LAKE [RETAIN <n> HOURS | DAYS]: root's upkeep of the shared lake (lake mode).

DuckLake keeps every snapshot, so dropped tables and deleted rows stay on storage (and would stay
readable through time travel, which the guard refuses). This expires the snapshots older than the
retention (default 7 days, Databend's data_retention_time_in_days default is 1, Snowflake's 1-90)
and deletes the files no live snapshot needs, and the orphaned files older than the retention. It
runs on the server's own cursor: user SQL never reaches the ducklake_* functions.
"""

from __future__ import annotations

import pyarrow as pa

from engine.catalog.lake import LAKE
from engine.errors import PermissionDenied, StatementRejected
from engine.plans import Plan, RunContext, static_query
from engine.sql.tokens import TokenCursor

DEFAULT_RETAIN_HOURS = 7 * 24
VACUUM_LAKE_SCHEMA = pa.schema(
    [
        pa.field("expired_snapshots", pa.int64(), nullable=False),
        pa.field("removed_files", pa.int64(), nullable=False),
    ]
)


def plan_maintenance_statement(sql: str) -> Plan | None:
    cur = TokenCursor(sql)
    first = cur.peek()
    if first is None or first.text.upper() != "VACUUM":
        return None
    # DuckDB's tokenizer reads VACUUM as a command and the rest as one string: re-read the rest.
    rest = TokenCursor(sql[first.end + 1 :])
    return _vacuum_lake(rest) if rest.accept("LAKE") else None


def _vacuum_lake(cur: TokenCursor) -> Plan:
    hours = DEFAULT_RETAIN_HOURS
    if cur.accept("RETAIN"):
        amount = cur.number("the retention (a number of hours or days)")
        if cur.accept("DAYS"):
            hours = amount * 24
        else:
            cur.expect("HOURS")
            hours = amount
    cur.finish()

    def produce(session: RunContext) -> pa.Table:
        if not session.is_admin:
            raise PermissionDenied("Permission denied: VACUUM LAKE requires the root user")
        db = session.engine.db
        if not db.lake:
            raise StatementRejected("VACUUM LAKE needs lake mode (serve --tables lake)")
        retained = f"INTERVAL {int(hours)} HOUR"
        with db.server_cursor() as server:
            expire = f"CALL ducklake_expire_snapshots('{LAKE}', older_than => now() - {retained})"
            expired = server.execute(expire).fetchall()
            cleanup = f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)"
            removed = server.execute(cleanup).fetchall()
            # Files no snapshot ever referenced (a node killed mid-COPY), past the retention: a
            # younger one may belong to a transaction still running on another node.
            orphans = f"CALL ducklake_delete_orphaned_files('{LAKE}', older_than => now() - {retained})"
            removed += server.execute(orphans).fetchall()
        return pa.table(
            {"expired_snapshots": [len(expired)], "removed_files": [len(removed)]}, schema=VACUUM_LAKE_SCHEMA
        )

    return static_query(VACUUM_LAKE_SCHEMA, produce)
