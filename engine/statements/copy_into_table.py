"""COPY INTO a table: staged files in, exactly once (the load history commits with the rows)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

import pyarrow as pa
from sqlglot import exp

from engine.catalog.load_history import LoadHistory, on_cursor
from engine.errors import EngineError, QueryCancelled, translated_errors
from engine.plans import Params, Plan, RunContext
from engine.results import Result
from engine.sql import guard
from engine.sql.copy import CopyIntoTable, parse_transform
from engine.sql.dialect import stage_refs
from engine.statements.copy_job import CopyJob, build_copy_job
from engine.statements.copy_report import (
    LOAD_SCHEMA,
    READ_ERRORS,
    VALIDATION_ERRORS_SCHEMA,
    Candidate,
    file_row,
    load_error_text,
)
from engine.statements.query import positional_columns
from engine.statements.visibility import with_visibility
from stages.batching import read_ahead
from stages.fast_parquet import ParquetLayout, arrow_stream, inspect_parquet
from stages.on_error import FileStats, OnError, parse_on_error
from stages.scan import scan_files
from stages.storage.base import StagedFile

# Small files are inserted together, up to this many files or bytes per INSERT.
BATCH_FILES = 64
BATCH_BYTES = 64 << 20
# Batches the fast Parquet path decodes ahead of DuckDB's scan (each up to batch_rows rows).
READ_AHEAD_BATCHES = 2


# -- load ----------------------------------------------------------------------------------
def plan_copy_into_table(load: CopyIntoTable) -> Plan:
    schema = (
        VALIDATION_ERRORS_SCHEMA
        if load.validation_mode == "RETURN_ERRORS"
        else (None if load.validation_mode else LOAD_SCHEMA)
    )
    # Parsed and checked once, when the statement is planned (a prepared COPY reuses it).
    transform = parse_transform(load.transform_sql) if load.transform_sql is not None else None

    def run(session: RunContext, params: Params) -> Result:
        # The one hold of the session for the whole COPY; the target's load lock and then the
        # COPY's transaction (see build_copy_job) are in ``locks``: the commit, then the lock.
        with session.exclusive() as cur:
            with ExitStack() as locks:
                job = build_copy_job(session, load, transform.copy() if transform else None, cur, locks)
                copy_run = CopyIntoTableRun(session, job, cur)
                table = copy_run.run()
                if session.in_transaction:  # the rows commit later: so must the lock go
                    session.hold_until_transaction_end(locks.pop_all())
            if load.purge and copy_run.loaded:  # the files go only once their rows are committed
                backend, keys = job.stage.backend, [c.file.key for c in copy_run.loaded]
                session.after_commit(lambda: backend.delete(keys))
            result = Result.of_table(table)
            if load.validation_mode is None:
                fmt = job.options.get("TYPE", "PARQUET").upper()
                result.copy_read = (fmt, sum(c.file.size for c in job.candidates))
            return result

    return Plan(is_query=True, run=run, schema=schema, retry_on_conflict=load.validation_mode is None)


class CopyIntoTableRun:
    """Loads a :class:`CopyJob`'s files on the session cursor the caller holds."""

    def __init__(self, session: RunContext, job: CopyJob, cur: Any) -> None:
        self.session = session
        self.job = job
        self.cur = cur
        self.batch_rows = session.engine.config.batch_rows
        # A node held to one thread (--threads 1) decodes on the inserting thread alone: no
        # read-ahead thread and no pyarrow pool beside it (DuckDB 1.5's Arrow scan still pulls
        # the stream on a pyarrow thread).
        self.one_core = session.engine.config.threads == 1
        self.loaded: list[Candidate] = []  # the files whose every row went in (what PURGE removes)

    def run(self) -> pa.Table:
        job = self.job
        mode = job.load.validation_mode
        if mode is not None:
            return self._validate(mode)
        if not job.candidates:
            return LOAD_SCHEMA.empty_table()
        if job.transform is not None:
            rows, self.loaded = self._load_transformed(job.transform)
        else:
            rows, self.loaded = self._load_files()
        table = pa.Table.from_pylist(rows, schema=LOAD_SCHEMA)
        if job.load.return_failed_only:
            table = table.filter(pa.compute.greater(table["Errors_seen"], 0))
        return table

    def _reader(self, c: Candidate, on_error: OnError | None = None) -> tuple[Any, FileStats]:
        from stages.readers import open_file_reader

        job = self.job
        return open_file_reader(
            job.stage.backend,
            c.file.key,
            c.name,
            job.options,
            job.target,
            on_error=on_error or job.on_error,
            column_match=job.load.column_match_mode,
            batch_rows=self.batch_rows,
            defaults=job.defaults,
            use_threads=not self.one_core,
        )

    def _load_files(self) -> tuple[list[dict[str, Any]], list[Candidate]]:
        rows: list[dict[str, Any]] = []
        loaded: list[Candidate] = []
        pending: list[Candidate] = []
        fast_group: list[Candidate] = []
        fast_layout: ParquetLayout | None = None
        for c in self.job.candidates:
            layout = self._fast_layout(c)
            if fast_group and fast_layout is not None:
                if layout is None or layout.shape != fast_layout.shape or len(fast_group) >= BATCH_FILES:
                    self._insert_fast(fast_group, fast_layout, rows, loaded)
                    fast_group = []
            if layout is not None:
                fast_group.append(c)
                fast_layout = layout
                continue
            pending.append(c)
            if len(pending) >= BATCH_FILES or sum(p.file.size for p in pending) >= BATCH_BYTES:
                self._insert_batch(pending, rows, loaded)
                pending = []
        if pending:
            self._insert_batch(pending, rows, loaded)
        if fast_group and fast_layout is not None:
            self._insert_fast(fast_group, fast_layout, rows, loaded)
        return rows, loaded

    def _insert(self, select: str, describe: Callable[[str], str]) -> Any:
        """One INSERT into the target of what ``select`` reads, errors worded by ``describe``."""
        job = self.job
        with translated_errors(describe):
            return self.cur.execute(f"INSERT INTO {job.table_sql} ({job.column_list}) {select}")

    def _insert_batch(
        self, batch: list[Candidate], rows: list[dict[str, Any]], loaded: list[Candidate]
    ) -> None:
        """One INSERT for several files: many small files cost one statement, not one each.

        Each file keeps its own reader (and counts) inside the chained stream.
        """
        opened = [(c, *self._reader(c)) for c in batch]
        name = self.session.register_insert_source(
            self.job.target, (b for _, reader, _ in opened for b in reader)
        )
        try:
            self._insert(f"SELECT * FROM {name}", load_error_text(batch[0] if len(batch) == 1 else None))
        except QueryCancelled:
            raise
        except EngineError as exc:
            for _, _, stats in opened:
                if stats.abort is not None:  # the reader's own words, not DuckDB's re-wrapping
                    raise EngineError(str(stats.abort)) from exc
            raise
        finally:
            self.session.unregister_all([name])
        records = []
        for c, _, stats in opened:
            rows.append(
                file_row(c, stats.rows_loaded, stats.errors_seen, stats.first_error, stats.first_error_line)
            )
            if stats.rows_loaded or not stats.errors_seen:
                records.append((c.file, stats.rows_loaded, stats.errors_seen, stats.first_error))
            if not stats.errors_seen:
                loaded.append(c)
        self._record(records)

    def _fast_layout(self, c: Candidate) -> ParquetLayout | None:
        """How the fast path reads the file, when it can take it (see :mod:`stages.fast_parquet`).

        The common case only: Parquet, ON_ERROR = ABORT, no load options, every column present.
        """
        job = self.job
        plain = set(job.options) <= {"TYPE", "COMPRESSION"}
        if job.options.get("TYPE") != "PARQUET" or not plain or str(job.on_error) not in ("ABORT", "ABORT_1"):
            return None
        native = self.session.engine.stages.native_parquet
        try:
            layout = inspect_parquet(
                job.stage.backend,
                c.file.key,
                job.target.names,
                case_sensitive=job.load.column_match_mode == "CASE_SENSITIVE",
                batch_rows=self.batch_rows,
                duckdb_reader=native is not None and job.stage.backend is native.backend,
            )
        except (pa.ArrowInvalid, OSError):
            return None  # not readable as Parquet: the careful reader says why, naming the file
        if layout is not None:
            job.footer_rows[c.file.key] = layout.rows
        return layout

    def _insert_fast(
        self,
        group: list[Candidate],
        layout: ParquetLayout,
        rows: list[dict[str, Any]],
        loaded: list[Candidate],
    ) -> None:
        """One INSERT over several Parquet files of one layout (DuckDB parallelises the insert)."""
        job = self.job
        keys = [c.file.key for c in group]
        if layout.arrow:
            threads = not self.one_core
            reader = arrow_stream(job.stage.backend, keys, layout, self.batch_rows, use_threads=threads)
        else:
            native = self.session.engine.stages.native_parquet
            assert native is not None
            reader = native.open_many(keys, layout.columns, self.batch_rows)
        batches = reader if self.one_core else read_ahead(reader, READ_AHEAD_BATCHES)
        name = self.session.register_insert_source(reader.schema, batches)
        try:
            self._insert(f"SELECT * FROM {name}", load_error_text(group[0] if len(group) == 1 else None))
        except QueryCancelled:
            raise
        except EngineError as exc:
            # Find the file and row with the careful reader (no database work) for a precise message.
            for c in group:
                precise = self._explain_failure(c)
                if precise is not None:
                    raise precise from exc
            raise
        finally:
            self.session.unregister_all([name])
        # ABORT semantics: every row of every file went in, so the footers give the counts.
        for c in group:
            rows.append(file_row(c, job.footer_rows[c.file.key]))
            loaded.append(c)
        self._record([(c.file, job.footer_rows[c.file.key], 0, None) for c in group])

    def _explain_failure(self, c: Candidate) -> EngineError | None:
        """The careful reader's message for the file if it fails there, else None."""
        try:
            reader, _ = self._reader(c)
            for _ in reader:
                pass
        except READ_ERRORS as precise:
            return EngineError(str(precise))
        return None

    def _load_transformed(self, transform: exp.Select) -> tuple[list[dict[str, Any]], list[Candidate]]:
        """``COPY INTO t FROM (SELECT $1, ... FROM @stage)``: the projection runs in DuckDB per file."""
        job = self.job
        rows: list[dict[str, Any]] = []
        for c in job.candidates:
            reader = scan_files(
                job.stage.backend, [(c.name, c.file.key)], job.options, self.batch_rows, with_metadata=True
            )
            name = self.session.register_insert_source(reader.schema, reader)
            bound = transform.copy()
            for ref in stage_refs(bound):
                ref.replace(exp.to_identifier(name))
            positional_columns(bound)
            try:
                count = with_visibility(
                    self.session, guard.regenerate(bound), partial(self._insert, describe=load_error_text(c))
                )
                loaded_rows = int((count.fetchall() or [(0,)])[0][0])
            finally:
                self.session.unregister_all([name])
            rows.append(file_row(c, loaded_rows))
            self._record([(c.file, loaded_rows, 0, None)])
        return rows, list(job.candidates)

    def _record(self, loads: list[tuple[StagedFile, int, int, str | None]]) -> None:
        """History entries of (file, rows, errors, first error), in the same transaction as the
        rows: a crash leaves neither, a commit leaves both."""
        user = self.session.user
        entries = [(file, (rows, errors, first, user)) for file, rows, errors, first in loads]
        LoadHistory.record_many(on_cursor(self.cur), self.job.history_key, entries, self.job.recorded)

    def _validate(self, mode: str) -> pa.Table:
        job = self.job
        if mode in ("RETURN_ERRORS", "RETURN_ALL_ERRORS"):
            found = []
            for c in job.candidates:
                reader, stats = self._reader(c, parse_on_error("CONTINUE"))
                for _ in reader:
                    pass
                if stats.errors_seen:
                    found.append(
                        {
                            "file": c.name,
                            "line": stats.first_error_line,
                            "error": stats.first_error or "",
                            "errors_seen": stats.errors_seen,
                        }
                    )
            return pa.Table.from_pylist(found, schema=VALIDATION_ERRORS_SCHEMA)
        limit = int(mode.split("_")[1])
        batches: list[pa.RecordBatch] = []
        remaining = limit
        for c in job.candidates:
            reader, _ = self._reader(c)
            for batch in reader:
                batches.append(batch.slice(0, remaining))
                remaining -= min(remaining, batch.num_rows)
                if not remaining:
                    break
            if not remaining:
                break
        return pa.Table.from_batches(batches, schema=job.target)
