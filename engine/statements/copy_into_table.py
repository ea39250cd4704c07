"""Running COPY INTO: staged files into a table exactly once (load history), tables out to stages."""

from __future__ import annotations

import logging
import re
from typing import Any

import pyarrow as pa
from sqlglot import exp

from engine.catalog.load_history import LoadHistory, on_cursor, same_file
from engine.catalog.stages import StagePrivilege
from engine.errors import EngineError, StatementRejected
from engine.names import quote_ident, reject_reserved
from engine.plans import Params, Plan, RunContext
from engine.results import Result
from engine.sql import guard
from engine.sql.copy import CopyIntoTable, parse_transform
from engine.sql.dialect import stage_refs
from engine.stage_access import ResolvedStage
from engine.statements.copy_report import (
    LOAD_SCHEMA,
    VALIDATION_ERRORS_SCHEMA,
    Candidate,
    file_row,
    load_error,
)
from engine.statements.query import positional_columns
from engine.statements.table_identity import history_key_for
from stages.batching import read_ahead
from stages.conversion import JSON_FIELD_METADATA
from stages.fast_parquet import ParquetLayout, arrow_stream, inspect_parquet
from stages.paths import join_key, relative_name
from stages.scan import scan_files
from stages.storage.base import StagedFile

log = logging.getLogger("stageflight")

# Small files are inserted together, up to this many files or bytes per INSERT.
BATCH_FILES = 64
BATCH_BYTES = 64 << 20
# Batches the fast Parquet path decodes ahead of DuckDB's scan (each up to batch_rows rows).
READ_AHEAD_BATCHES = 2

# Column defaults that give a new value per row cannot be evaluated once for a whole COPY.
_PER_ROW_DEFAULT = re.compile(r"\b(nextval|random|uuid|gen_random_uuid|uuidv4|uuidv7)\s*\(", re.I)


def _split_table(parts: list[str]) -> tuple[str | None, str | None, str]:
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, None, parts[0]


# -- load ----------------------------------------------------------------------------------
def plan_copy_into_table(load: CopyIntoTable) -> Plan:
    schema = (
        VALIDATION_ERRORS_SCHEMA
        if load.validation_mode == "RETURN_ERRORS"
        else (None if load.validation_mode else LOAD_SCHEMA)
    )

    def run(session: RunContext, params: Params) -> Result:
        return Result.of_table(CopyIntoTableRun(session, load).run())

    return Plan(is_query=True, run=run, schema=schema)


class CopyIntoTableRun:
    def __init__(self, session: RunContext, load: CopyIntoTable) -> None:
        from stages.on_error import parse_on_error

        self.session = session
        self.load = load
        self.on_error = parse_on_error(load.on_error)
        catalog, schema, table = _split_table(load.table)
        reject_reserved(catalog, schema, table)
        self.catalog, self.schema_name, self.table = catalog, schema, table
        self.sql_name = ".".join(quote_ident(p) for p in load.table)
        # Row counts read from Parquet footers while choosing the native path, reused for the output.
        self._footer_rows: dict[str, int] = {}
        self._defaults: dict[str, pa.Scalar] = {}

    def run(self) -> pa.Table:
        session = self.session
        transform = parse_transform(self.load.transform_sql) if self.load.transform_sql is not None else None
        resolved = session.resolve_stage(self.load.source, StagePrivilege.READ)
        target = self._target_schema()
        if transform is not None and len(transform.expressions) != len(target):
            raise StatementRejected(
                f"Number of columns in select list ({len(transform.expressions)}) does not match that of "
                f"the corresponding table ({len(target)})"
            )
        options = session.engine.stages.file_format(self.load.file_format, resolved)
        history_key = history_key_for(session, self.catalog, self.schema_name, self.table)
        candidates = self._select_files(resolved, history_key)
        mode = self.load.validation_mode
        if mode is not None:
            return self._validate(resolved, candidates, options, target, mode)
        if not candidates:
            return LOAD_SCHEMA.empty_table()
        if transform is not None:
            rows, loaded = self._load_transformed(
                transform, resolved, candidates, options, target, history_key
            )
        else:
            rows, loaded = self._load_files(resolved, candidates, options, target, history_key)
        if self.load.purge:
            session.after_commit(lambda: resolved.backend.delete([c.file.key for c in loaded]))
        table = pa.Table.from_pylist(rows, schema=LOAD_SCHEMA)
        if self.load.return_failed_only:
            table = table.filter(pa.compute.greater(table["Errors_seen"], 0))
        return table

    def _target_schema(self) -> pa.Schema:
        with self.session.exclusive() as cur:
            try:
                relation = cur.sql(f"SELECT * FROM {self.sql_name} LIMIT 0")
                schema = relation.to_arrow_table().schema
                json_columns = {i for i, t in enumerate(relation.types) if str(t) == "JSON"}
                types = dict(zip(schema.names, map(str, relation.types), strict=True))
                self._defaults = self._column_defaults(cur, types)
            except Exception as exc:
                raise EngineError(str(exc)) from None
        schema = pa.schema(
            [f.with_metadata(JSON_FIELD_METADATA) if i in json_columns else f for i, f in enumerate(schema)]
        )
        if self.load.columns is None:
            return schema
        by_name = {f.name.lower(): f for f in schema}
        fields = []
        for column in self.load.columns:
            if column.lower() not in by_name:
                raise StatementRejected(
                    f"Table {'.'.join(self.load.table)} does not have a column with name {column}"
                )
            fields.append(by_name[column.lower()])
        return pa.schema(fields)

    def _column_defaults(self, cur: Any, types: dict[str, str]) -> dict[str, pa.Scalar]:
        """Each column's DEFAULT, evaluated once for the COPY (what FIELD_DEFAULT fills in).

        Defaults that differ per row (nextval, random, uuid) are left out: those fields load as NULL.
        """
        rows = cur.execute(
            "SELECT column_name, column_default FROM duckdb_columns() "
            "WHERE column_default IS NOT NULL AND database_name = coalesce(?, current_database()) "
            "AND lower(schema_name) = lower(coalesce(?, current_schema())) AND lower(table_name) = lower(?)",
            [self.catalog, self.schema_name, self.table],
        ).fetchall()
        defaults: dict[str, pa.Scalar] = {}
        for name, expression in rows:
            if name not in types or _PER_ROW_DEFAULT.search(expression):
                continue
            value = cur.sql(f"SELECT CAST(({expression}) AS {types[name]}) AS v").to_arrow_table()
            defaults[name] = value.column(0)[0]
        return defaults

    def _select_files(self, resolved: ResolvedStage, history_key: str) -> list[Candidate]:
        stages = self.session.engine.stages
        if self.load.files is not None:
            candidates = []
            for name in self.load.files:
                key = join_key(
                    resolved.location_key
                    if resolved.location.path.endswith("/") or not resolved.location.path
                    else resolved.location_key + "/",
                    name.lstrip("/"),
                )
                file = resolved.backend.stat(key)
                candidates.append(Candidate(relative_name(resolved.root_key, key), file))
        else:
            candidates = [Candidate(n, f) for n, f in stages.list_files(resolved, self.load.pattern)]
        if not self.load.force:
            loaded = self._loaded_files(history_key)
            candidates = [c for c in candidates if not same_file(loaded.get(c.file.key), c.file)]
        if self.load.max_files is not None:
            candidates = candidates[: self.load.max_files]
        if self.load.size_limit is not None:
            total, kept = 0, list[Candidate]()
            for c in candidates:
                if kept and total + c.file.size > self.load.size_limit:
                    break
                kept.append(c)
                total += c.file.size
            candidates = kept
        return candidates

    def _loaded_files(self, history_key: str) -> dict[str, tuple[Any, ...]]:
        with self.session.exclusive() as cur:
            return self.session.engine.load_history.loaded(on_cursor(cur), history_key)

    def _reader(
        self, resolved: ResolvedStage, c: Candidate, options: dict[str, str], target: pa.Schema
    ) -> Any:
        from stages.readers import open_file_reader

        return open_file_reader(
            resolved.backend,
            c.file.key,
            c.name,
            options,
            target,
            on_error=self.on_error,
            column_match=self.load.column_match_mode,
            batch_rows=self.session.engine.config.batch_rows,
            defaults=self._defaults,
        )

    def _load_files(
        self,
        resolved: ResolvedStage,
        candidates: list[Candidate],
        options: dict[str, str],
        target: pa.Schema,
        history_key: str,
    ) -> tuple[list[dict[str, Any]], list[Candidate]]:
        session = self.session
        rows: list[dict[str, Any]] = []
        loaded: list[Candidate] = []
        with session.exclusive() as cur, session.statement_transaction(cur):
            pending: list[Candidate] = []
            fast_group: list[Candidate] = []
            fast_layout: ParquetLayout | None = None
            for c in candidates:
                layout = self._fast_layout(resolved, c, options, target)
                if fast_group and fast_layout is not None:
                    if layout is None or layout.shape != fast_layout.shape or len(fast_group) >= BATCH_FILES:
                        self._insert_fast(
                            cur, resolved, fast_group, fast_layout, options, target, history_key, rows, loaded
                        )
                        fast_group = []
                if layout is not None:
                    fast_group.append(c)
                    fast_layout = layout
                    continue
                pending.append(c)
                if len(pending) >= BATCH_FILES or sum(p.file.size for p in pending) >= BATCH_BYTES:
                    self._insert_batch(cur, resolved, pending, options, target, history_key, rows, loaded)
                    pending = []
            if pending:
                self._insert_batch(cur, resolved, pending, options, target, history_key, rows, loaded)
            if fast_group and fast_layout is not None:
                self._insert_fast(
                    cur, resolved, fast_group, fast_layout, options, target, history_key, rows, loaded
                )
        return rows, loaded

    def _insert_batch(
        self,
        cur: Any,
        resolved: ResolvedStage,
        batch: list[Candidate],
        options: dict[str, str],
        target: pa.Schema,
        history_key: str,
        rows: list[dict[str, Any]],
        loaded: list[Candidate],
    ) -> None:
        """One INSERT for several files: many small files cost one statement, not one each.

        Each file keeps its own reader (and counts) inside the chained stream.
        """
        opened = [(c, *self._reader(resolved, c, options, target)) for c in batch]
        name = self.session.register_insert_source(target, (b for _, reader, _ in opened for b in reader))
        columns = ", ".join(quote_ident(f.name) for f in target)
        try:
            cur.execute(f"INSERT INTO {self.sql_name} ({columns}) SELECT * FROM {name}")
        except Exception as exc:
            for _, _, stats in opened:
                if stats.abort is not None:  # the reader's own words, not DuckDB's re-wrapping
                    raise EngineError(str(stats.abort)) from None
            raise load_error(exc, batch[0] if len(batch) == 1 else None) from None
        finally:
            self.session.unregister_all([name])
        for c, _, stats in opened:
            rows.append(
                file_row(c, stats.rows_loaded, stats.errors_seen, stats.first_error, stats.first_error_line)
            )
            if stats.rows_loaded or not stats.errors_seen:
                self._record(cur, history_key, c.file)
            if not stats.errors_seen:
                loaded.append(c)

    def _fast_layout(
        self, resolved: ResolvedStage, c: Candidate, options: dict[str, str], target: pa.Schema
    ) -> ParquetLayout | None:
        """How the fast path reads the file, when it can take it (see :mod:`stages.fast_parquet`).

        The common case only: Parquet, ON_ERROR = ABORT, no load options, every column present.
        """
        plain = set(options) <= {"TYPE", "COMPRESSION"}
        if options.get("TYPE") != "PARQUET" or not plain or str(self.on_error) not in ("ABORT", "ABORT_1"):
            return None
        native = self.session.engine.stages.native_parquet
        try:
            layout = inspect_parquet(
                resolved.backend,
                c.file.key,
                target.names,
                case_sensitive=self.load.column_match_mode == "CASE_SENSITIVE",
                batch_rows=self.session.engine.config.batch_rows,
                duckdb_reader=native is not None and resolved.backend is native.backend,
            )
        except (pa.ArrowInvalid, OSError):
            return None  # not readable as Parquet: the careful reader says why, naming the file
        if layout is not None:
            self._footer_rows[c.file.key] = layout.rows
        return layout

    def _insert_fast(
        self,
        cur: Any,
        resolved: ResolvedStage,
        group: list[Candidate],
        layout: ParquetLayout,
        options: dict[str, str],
        target: pa.Schema,
        history_key: str,
        rows: list[dict[str, Any]],
        loaded: list[Candidate],
    ) -> None:
        """One INSERT over several Parquet files of one layout (DuckDB parallelises the insert)."""
        keys = [c.file.key for c in group]
        batch_rows = self.session.engine.config.batch_rows
        if layout.arrow:
            reader = arrow_stream(resolved.backend, keys, layout, batch_rows)
        else:
            native = self.session.engine.stages.native_parquet
            assert native is not None
            reader = native.open_many(keys, layout.columns, batch_rows)
        columns = ", ".join(quote_ident(f.name) for f in target)
        name = self.session.register_insert_source(reader.schema, read_ahead(reader, READ_AHEAD_BATCHES))
        try:
            cur.execute(f"INSERT INTO {self.sql_name} ({columns}) SELECT * FROM {name}")
        except Exception as exc:
            # Find the file and row with the careful reader (no database work) for a precise message.
            for c in group:
                precise = self._explain_failure(resolved, c, options, target, exc)
                if precise is not None:
                    raise precise from None
            raise load_error(exc, group[0] if len(group) == 1 else None) from None
        finally:
            self.session.unregister_all([name])
        # ABORT semantics: every row of every file went in, so the footers give the counts.
        for c in group:
            rows.append(file_row(c, self._footer_rows[c.file.key]))
            self._record(cur, history_key, c.file)
            loaded.append(c)

    def _explain_failure(
        self,
        resolved: ResolvedStage,
        c: Candidate,
        options: dict[str, str],
        target: pa.Schema,
        exc: Exception,
    ) -> EngineError | None:
        """The careful reader's message for the file if it fails there, else None."""
        try:
            reader, _ = self._reader(resolved, c, options, target)
            for _ in reader:
                pass
        except Exception as precise:
            return EngineError(str(precise))
        return None

    def _load_transformed(
        self,
        transform: exp.Select,
        resolved: ResolvedStage,
        candidates: list[Candidate],
        options: dict[str, str],
        target: pa.Schema,
        history_key: str,
    ) -> tuple[list[dict[str, Any]], list[Candidate]]:
        """``COPY INTO t FROM (SELECT $1, ... FROM @stage)``: the projection runs in DuckDB per file."""
        session = self.session
        columns = ", ".join(quote_ident(f.name) for f in target)
        rows: list[dict[str, Any]] = []
        with session.exclusive() as cur, session.statement_transaction(cur):
            for c in candidates:
                reader = scan_files(
                    resolved.backend,
                    [(c.name, c.file.key)],
                    options,
                    session.engine.config.batch_rows,
                    with_metadata=True,
                )
                name = session.register_insert_source(reader.schema, reader)
                bound = transform.copy()
                for ref in stage_refs(bound):
                    ref.replace(exp.to_identifier(name))
                positional_columns(bound)
                try:
                    count = cur.execute(f"INSERT INTO {self.sql_name} ({columns}) {guard.regenerate(bound)}")
                    loaded_rows = int((count.fetchall() or [(0,)])[0][0])
                except Exception as exc:
                    raise load_error(exc, c) from None
                finally:
                    session.unregister_all([name])
                rows.append(file_row(c, loaded_rows))
                self._record(cur, history_key, c.file)
        return rows, list(candidates)

    @staticmethod
    def _record(cur: Any, history_key: str, file: StagedFile) -> None:
        # Same transaction as the rows: a crash leaves neither, a commit leaves both.
        LoadHistory.record(on_cursor(cur), history_key, file)

    def _validate(
        self,
        resolved: ResolvedStage,
        candidates: list[Candidate],
        options: dict[str, str],
        target: pa.Schema,
        mode: str,
    ) -> pa.Table:
        from stages.on_error import parse_on_error

        if mode in ("RETURN_ERRORS", "RETURN_ALL_ERRORS"):
            self.on_error = parse_on_error("CONTINUE")
            found = []
            for c in candidates:
                reader, stats = self._reader(resolved, c, options, target)
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
        for c in candidates:
            reader, _ = self._reader(resolved, c, options, target)
            for batch in reader:
                batches.append(batch.slice(0, remaining))
                remaining -= min(remaining, batch.num_rows)
                if not remaining:
                    break
            if not remaining:
                break
        return pa.Table.from_batches(batches, schema=target)
