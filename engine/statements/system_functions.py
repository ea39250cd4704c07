"""Table functions the engine answers from its own records: COPY_HISTORY and QUERY_HISTORY.

``SELECT * FROM COPY_HISTORY(TABLE_NAME => 'main.t', START_TIME => '2026-12-01 00:00:00')`` lists
the files COPY loaded (as Snowflake's INFORMATION_SCHEMA.COPY_HISTORY), from the load history the
COPY itself keeps (:mod:`engine.catalog.load_history`): only loads into tables the caller may
SELECT. ``QUERY_HISTORY()`` is in :mod:`engine.statements.processes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlglot import exp

from engine.catalog.load_history import LoadHistory
from engine.errors import EngineError, StatementRejected
from engine.plans import RunContext
from engine.statements.access import may_use
from engine.statements.processes import query_history_table
from engine.statements.table_identity import history_key_for

SYSTEM_TABLE_FUNCTIONS = ("COPY_HISTORY", "QUERY_HISTORY")

COPY_HISTORY_SCHEMA = pa.schema(
    [
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("table_name", pa.string(), nullable=False),  # schema.table
        pa.field("last_load_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("row_count", pa.int64()),
        pa.field("error_count", pa.int64()),
        pa.field("first_error_message", pa.string()),
        pa.field("status", pa.string(), nullable=False),  # Loaded | Partially loaded
        pa.field("user_name", pa.string()),
    ]
)


def system_table(session: RunContext, name: str, args: Mapping[str, exp.Expression]) -> pa.Table | None:
    """The answer of ``FROM name(...)`` when it is one of ours, else None (a stage function)."""
    function = name.upper()
    if function not in SYSTEM_TABLE_FUNCTIONS:
        return None
    values = {key: _literal(function, key, value) for key, value in args.items()}
    if function == "QUERY_HISTORY":
        return query_history_table(session, values)
    return copy_history_table(session, values)


def _literal(function: str, key: str, node: exp.Expression) -> str | int:
    if isinstance(node, exp.Literal):
        return str(node.this) if node.is_string else int(node.this) if node.this.isdigit() else str(node.this)
    raise StatementRejected(f"{function} argument {key} must be a literal ('text' or a number)")


def _time(key: str, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise StatementRejected(
            f"COPY_HISTORY {key} must be a timestamp like '2026-12-01 00:00:00', not {value!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # naive: UTC


def copy_history_table(session: RunContext, values: Mapping[str, Any]) -> pa.Table:
    """``COPY_HISTORY([TABLE_NAME => '[schema.]t'], [START_TIME => ...], [END_TIME => ...])``."""
    unknown = sorted(set(values) - {"TABLE_NAME", "START_TIME", "END_TIME"})
    if unknown:
        raise StatementRejected(
            f"Unknown COPY_HISTORY argument {unknown[0]}: use TABLE_NAME, START_TIME or END_TIME"
        )
    table_key = None
    if "TABLE_NAME" in values:
        parts = str(values["TABLE_NAME"]).split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise StatementRejected(
                f"COPY_HISTORY TABLE_NAME must be 'table' or 'schema.table', not {values['TABLE_NAME']!r}"
            )
        schema, table = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        table_key = history_key_for(session, None, schema, table)
    start, end = _time("START_TIME", values.get("START_TIME")), _time("END_TIME", values.get("END_TIME"))
    rows = []
    allowed: dict[str, bool] = {}
    for key, file_key, loaded_at, count, errors, first_error, user in LoadHistory.entries(
        session.run_internal, table_key, start, end
    ):
        if key not in allowed:
            allowed[key] = _may_see(session, key)
        if not allowed[key]:
            continue
        rows.append(
            {
                "file_name": file_key,
                "table_name": key,
                "last_load_time": loaded_at,
                "row_count": count,
                "error_count": errors,
                "first_error_message": first_error,
                "status": "Partially loaded" if errors else "Loaded",
                "user_name": user,
            }
        )
    return pa.Table.from_pylist(rows, schema=COPY_HISTORY_SCHEMA)


def _may_see(session: RunContext, table_key: str) -> bool:
    """Whether the caller may SELECT the table a history key names (root sees every table)."""
    if session.is_admin:
        return True
    schema, _, table = table_key.partition(".")
    try:
        return may_use(session, schema, table, "SELECT")
    except EngineError:  # the table is gone: its history is nobody's to read
        return False
