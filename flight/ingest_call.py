"""``CommandStatementIngest`` (adbc_ingest) read into the engine's ingest arguments."""

from __future__ import annotations

from typing import Any

from engine import IfExists, IfMissing, IngestTarget
from flight import commands as cmd

_INGEST_MISSING = {
    cmd.INGEST_NOT_EXIST_CREATE: IfMissing.CREATE,
    cmd.INGEST_NOT_EXIST_FAIL: IfMissing.FAIL,
    0: IfMissing.FAIL,
}
_INGEST_EXISTS = {
    cmd.INGEST_EXISTS_FAIL: IfExists.FAIL,
    cmd.INGEST_EXISTS_APPEND: IfExists.APPEND,
    cmd.INGEST_EXISTS_REPLACE: IfExists.REPLACE,
    0: IfExists.FAIL,
}


def ingest_arguments(message: Any) -> tuple[IngestTarget, IfMissing, IfExists]:
    """The target table and what to do when it is missing or exists (unknown values: FAIL)."""
    options = message.table_definition_options
    target = IngestTarget(
        table=message.table,
        schema=message.schema if message.HasField("schema") else None,
        catalog=message.catalog if message.HasField("catalog") else None,
        temporary=message.temporary,
    )
    missing = _INGEST_MISSING.get(options.if_not_exist, IfMissing.FAIL)
    return target, missing, _INGEST_EXISTS.get(options.if_exists, IfExists.FAIL)
