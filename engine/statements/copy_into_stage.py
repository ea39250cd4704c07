"""Running COPY INTO @stage: a table or query out to staged files, written by the server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from engine.catalog.stages import StagePrivilege
from engine.errors import StatementRejected, translated_errors
from engine.names import quote_ident, reject_reserved
from engine.plans import Params, Plan, RunContext
from engine.results import Result
from engine.sql import guard
from engine.sql.copy import CopyIntoStage
from engine.sql.table_refs import TableNeed, extract
from engine.statements.access import require_needs
from engine.statements.visibility import with_visibility

UNLOAD_SCHEMA = pa.schema(
    [
        pa.field("rows_unloaded", pa.uint64(), nullable=False),
        pa.field("input_bytes", pa.uint64(), nullable=False),
        pa.field("output_bytes", pa.uint64(), nullable=False),
    ]
)
UNLOAD_DETAILED_SCHEMA = pa.schema(
    [
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("file_size", pa.uint64(), nullable=False),
        pa.field("row_count", pa.uint64(), nullable=False),
    ]
)


def plan_copy_into_stage(unload: CopyIntoStage) -> Plan:
    schema = UNLOAD_DETAILED_SCHEMA if unload.detailed_output else UNLOAD_SCHEMA
    sql, ordered, needs = _source_sql(unload)  # checked for the caller at every execution

    def run(session: RunContext, params: Params) -> Result:
        require_needs(session, needs)
        return Result.of_table(_run_copy_into_stage(session, unload, sql, ordered))

    return Plan(is_query=True, run=run, schema=schema)


def _source_sql(unload: CopyIntoStage) -> tuple[str, bool, tuple[TableNeed, ...]]:
    """The query to unload, whether it orders its rows (then one file is written at a time), and
    what it reads (SELECT on the table, or on every table the query names)."""
    if unload.source_table is not None:
        reject_reserved(*unload.source_table)
        query = "SELECT * FROM " + ".".join(quote_ident(p) for p in unload.source_table)
    else:
        query = unload.source_query or ""
    # A table name goes through the same allowlist as a query (system views, reserved names).
    trees = guard.validate(query)
    if len(trees) != 1 or not guard.is_query(trees[0]):
        raise StatementRejected("COPY INTO @stage FROM (...) needs exactly one query")
    return guard.regenerate(trees[0]), bool(trees[0].args.get("order")), extract(trees[0]).needs


def _run_copy_into_stage(session: RunContext, unload: CopyIntoStage, sql: str, ordered: bool) -> pa.Table:
    from stages.unload_columns import unload_select
    from stages.unload_formats import unload_format
    from stages.writers import unload as write_files

    resolved = session.resolve_stage(unload.target, StagePrivilege.WRITE)
    options = session.engine.stages.file_format(unload.file_format, resolved)
    kind = unload_format(options).kind  # checked before the query runs
    writers = 1 if ordered else session.engine.config.threads or os.cpu_count() or 1
    counted = {"rows": 0, "bytes": 0}

    def write(text: str) -> list[Any]:
        with translated_errors():
            relation = cur.sql(text)
            # Types the format's writer cannot take are recast by DuckDB (stages.unload_columns).
            select = unload_select(
                kind, [(n, t.id) for n, t in zip(relation.columns, relation.types, strict=True)]
            )
            if select is not None:
                relation = relation.project(select)
            source = relation.to_arrow_reader(session.engine.config.batch_rows)

        def counting() -> Iterator[pa.RecordBatch]:
            for batch in source:
                counted["rows"] += batch.num_rows
                counted["bytes"] += batch.nbytes
                yield batch

        reader = pa.RecordBatchReader.from_batches(source.schema, counting())
        with translated_errors():
            return write_files(
                reader,
                resolved.backend,
                resolved.root_key,
                resolved.location.path,
                options,
                query_id=uuid.uuid4().hex,
                single=unload.single,
                max_file_size=unload.max_file_size,
                overwrite=unload.overwrite,
                use_raw_path=unload.use_raw_path,
                include_query_id=unload.include_query_id,
                writers=writers,
            )

    with session.exclusive() as cur:
        # A query over catalog views reads the caller's visibility until the last file is written.
        files = with_visibility(session, sql, write)
    if unload.detailed_output:
        return pa.Table.from_pylist(
            [{"file_name": f.name, "file_size": f.size, "row_count": f.rows} for f in files],
            schema=UNLOAD_DETAILED_SCHEMA,
        )
    return pa.Table.from_pylist(
        [
            {
                "rows_unloaded": counted["rows"],
                "input_bytes": counted["bytes"],
                "output_bytes": sum(f.size for f in files),
            }
        ],
        schema=UNLOAD_SCHEMA,
    )
