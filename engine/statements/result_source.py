"""A plain single-table SELECT's result carries its table's names (engine/sql/result_columns.py)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from engine.metadata.result_fields import annotated, conformed, table_metadata
from engine.plans import RunContext
from engine.results import Result
from engine.sql.result_columns import SourceTable, resolve, source_table

__all__ = ["schema_with_source", "source_table", "with_source"]


def _named(schema: pa.Schema, source: SourceTable, where: tuple[str, str, str]) -> pa.Schema:
    count = len(schema) if source.columns is None else min(source.columns, len(schema))
    return annotated(schema, [table_metadata(*where)] * count)


def with_source(session: RunContext, source: SourceTable | None, produce: Callable[[], Result]) -> Result:
    """``produce()``, its fields named after ``source`` (resolved first: a stream holds the cursor)."""
    if source is None:
        return produce()
    where = resolve(source, session.run_internal)
    result = produce()
    if where is None or result.is_update:
        return result
    return conformed(result, _named(result.schema, source, where))


def schema_with_source(
    session: RunContext, source: SourceTable | None, schema: pa.Schema | None
) -> pa.Schema | None:
    """A described result schema, its fields named after ``source``."""
    if source is None or schema is None:
        return schema
    where = resolve(source, session.run_internal)
    return schema if where is None else _named(schema, source, where)
