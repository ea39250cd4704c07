"""The query log seen from SQL: SHOW PROCESSLIST and KILL QUERY (as Databend), QUERY_HISTORY().

An admin (root) sees and may kill every statement; any other user only their own. The log itself
is :mod:`engine.catalog.query_log`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from engine.catalog.query_log import QueryEntry
from engine.errors import StatementRejected
from engine.plans import Plan, RunContext, static_query, static_update
from engine.sql.tokens import TokenCursor, TokenType

PROCESSLIST_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("user", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("started_on", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("time_seconds", pa.float64(), nullable=False),
    ]
)

QUERY_HISTORY_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.int64(), nullable=False),
        pa.field("query_text", pa.string(), nullable=False),
        pa.field("user_name", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),  # running, finished, failed, cancelled
        pa.field("start_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("end_time", pa.timestamp("us", tz="UTC")),
        pa.field("duration_seconds", pa.float64(), nullable=False),
        pa.field("rows_produced", pa.int64()),
        pa.field("error_message", pa.string()),
    ]
)
DEFAULT_RESULT_LIMIT = 100  # QUERY_HISTORY's RESULT_LIMIT default (as Snowflake)


def plan_process_statement(sql: str) -> Plan | None:
    cur = TokenCursor(sql)
    if cur.accept("SHOW", "PROCESSLIST"):
        cur.finish()
        return static_query(PROCESSLIST_SCHEMA, _processlist)
    if cur.accept("KILL"):
        return _kill(cur)
    return None


def _processlist(session: RunContext) -> pa.Table:
    running = session.engine.query_log.running(session.user, session.is_admin)
    rows = [
        {
            "id": e.id,
            "type": "Query",
            "user": e.user,
            "state": e.state,
            "query": e.text,
            "started_on": e.started_on,
            "time_seconds": e.seconds,
        }
        for e in running
    ]
    return pa.Table.from_pylist(rows, schema=PROCESSLIST_SCHEMA)


def _kill(cur: TokenCursor) -> Plan:
    """``KILL [QUERY] <id>`` (Databend's KILL CONNECTION is not supported: sessions end by closing)."""
    if cur.accept("CONNECTION"):
        raise StatementRejected("KILL CONNECTION is not supported: use KILL QUERY <id>")
    cur.accept("QUERY")
    token = cur.accept_type(TokenType.STRING)
    text = token.text.strip("'") if token is not None else None
    query_id = int(text) if text is not None and text.strip().isdigit() else None
    if query_id is None:
        if token is not None:
            raise StatementRejected(f"KILL QUERY needs a query id (a number), not '{text}'")
        query_id = cur.number("a query id (SHOW PROCESSLIST lists them)")
    cur.finish()

    def action(session: RunContext) -> int:
        session.engine.query_log.kill(query_id, session.user, session.is_admin)
        return 0

    return static_update(action)


def query_history_table(session: RunContext, values: Mapping[str, Any]) -> pa.Table:
    """``QUERY_HISTORY([RESULT_LIMIT => n])``: the caller's recent statements (everyone's for root)."""
    unknown = sorted(set(values) - {"RESULT_LIMIT"})
    if unknown:
        raise StatementRejected(f"Unknown QUERY_HISTORY argument {unknown[0]}: use RESULT_LIMIT")
    limit = values.get("RESULT_LIMIT", DEFAULT_RESULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise StatementRejected(f"QUERY_HISTORY's RESULT_LIMIT must be a positive number, not {limit!r}")
    entries = session.engine.query_log.recent(session.user, session.is_admin)[:limit]
    return pa.Table.from_pylist([_history_row(e) for e in entries], schema=QUERY_HISTORY_SCHEMA)


def _history_row(e: QueryEntry) -> dict[str, Any]:
    return {
        "query_id": e.id,
        "query_text": e.text,
        "user_name": e.user,
        "state": e.state,
        "start_time": e.started_on,
        "end_time": e.ended_on,
        "duration_seconds": e.seconds,
        "rows_produced": e.rows,
        "error_message": e.error,
    }
