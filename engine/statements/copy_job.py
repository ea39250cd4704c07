"""What one COPY INTO <table> works from, settled once before any file is read.

The job is built under the session's lock, on its cursor: the stage, the file format, the target
table's columns and defaults, the load-history key and the files still to load. The loaders in
:mod:`engine.statements.copy_into_table` only read it.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from sqlglot import exp

from engine.catalog.load_history import on_cursor, same_file
from engine.catalog.stages import StagePrivilege
from engine.errors import StatementRejected, translated_errors
from engine.names import quote_ident, reject_reserved
from engine.plans import RunContext
from engine.sql.copy import CopyIntoTable
from engine.sql.table_refs import TableNeed, extract
from engine.stage_access import ResolvedStage
from engine.statements.access import require_needs
from engine.statements.copy_report import Candidate
from engine.statements.table_identity import history_key_for
from stages.conversion import JSON_FIELD_METADATA
from stages.on_error import OnError, parse_on_error
from stages.paths import join_key, relative_name

# Column defaults that give a new value per row cannot be evaluated once for a whole COPY.
_PER_ROW_DEFAULT = re.compile(r"\b(nextval|random|uuid|gen_random_uuid|uuidv4|uuidv7)\s*\(", re.I)


@dataclass
class CopyJob:
    load: CopyIntoTable
    transform: exp.Select | None
    stage: ResolvedStage
    options: dict[str, str]
    target: pa.Schema  # the columns to fill, in the order the INSERT names them
    table_sql: str  # the target as the INSERT names it (quoted parts)
    history_key: str
    defaults: dict[str, pa.Scalar]  # what FIELD_DEFAULT fills in, by column name
    on_error: OnError
    candidates: list[Candidate]
    # The file keys the load history has entries for (None: not read, as with FORCE).
    recorded: frozenset[str] | None
    # Row counts read from Parquet footers while choosing the native path, reused for the output.
    footer_rows: dict[str, int] = field(default_factory=dict)

    @property
    def column_list(self) -> str:
        return ", ".join(quote_ident(f.name) for f in self.target)


def build_copy_job(
    session: RunContext,
    load: CopyIntoTable,
    transform: exp.Select | None,
    cur: duckdb.DuckDBPyConnection,
    locks: ExitStack,
) -> CopyJob:
    """Resolve everything a COPY needs; ``cur`` is the session's cursor, already held.

    The target's load lock is taken into ``locks`` (engine.catalog.database.Database.load_lock),
    then the COPY's transaction begins there (unless the client has one open): from choosing the
    files to the commit, one transaction. It begins only once the lock is held, so a lake
    snapshot it reads includes whatever load into the table committed before."""
    catalog, schema, table = _split_table(load.table)
    reject_reserved(catalog, schema, table)
    on_error = parse_on_error(load.on_error)
    # INSERT on the target (and whatever a transform reads besides its stage) before anything of
    # the table or the stage is looked at; READ on the stage is checked as it resolves.
    needs = [TableNeed(_lower(catalog), _lower(schema), table.lower(), "INSERT")]
    if transform is not None:
        needs.extend(extract(transform).needs)
    require_needs(session, needs)
    stage = session.resolve_stage(load.source, StagePrivilege.READ)
    table_sql = ".".join(quote_ident(p) for p in load.table)
    history_key = history_key_for(session, catalog, schema, table)
    locks.enter_context(session.engine.db.load_lock(history_key, owner=session))
    locks.enter_context(session.statement_transaction(cur))
    target, defaults = _target(cur, load, table_sql, catalog, schema, table)
    if transform is not None and len(transform.expressions) != len(target):
        raise StatementRejected(
            f"Number of columns in select list ({len(transform.expressions)}) does not match that of "
            f"the corresponding table ({len(target)})"
        )
    options = session.engine.stages.file_format(load.file_format, stage)
    if "COLUMN_MATCH_MODE" in load.given and options.get("TYPE", "PARQUET").upper() in ("CSV", "TSV", "TEXT"):
        raise StatementRejected("COLUMN_MATCH_MODE applies to PARQUET and NDJSON files only, not to CSV/TSV")
    candidates, recorded = _select_files(session, cur, load, stage, history_key)
    return CopyJob(
        load=load,
        transform=transform,
        stage=stage,
        options=options,
        target=target,
        table_sql=table_sql,
        history_key=history_key,
        defaults=defaults,
        on_error=on_error,
        candidates=candidates,
        recorded=recorded,
    )


def _lower(name: str | None) -> str | None:
    return name.lower() if name is not None else None


def _split_table(parts: list[str]) -> tuple[str | None, str | None, str]:
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, None, parts[0]


def _target(
    cur: duckdb.DuckDBPyConnection,
    load: CopyIntoTable,
    table_sql: str,
    catalog: str | None,
    schema_name: str | None,
    table: str,
) -> tuple[pa.Schema, dict[str, pa.Scalar]]:
    """The columns to fill (all, or the COPY's column list) and the table's column defaults."""
    with translated_errors():
        relation = cur.sql(f"SELECT * FROM {table_sql} LIMIT 0")
        schema = relation.to_arrow_table().schema
        json_columns = {i for i, t in enumerate(relation.types) if str(t) == "JSON"}
        types = dict(zip(schema.names, map(str, relation.types), strict=True))
        defaults = _column_defaults(cur, types, catalog, schema_name, table)
    schema = pa.schema(
        [f.with_metadata(JSON_FIELD_METADATA) if i in json_columns else f for i, f in enumerate(schema)]
    )
    if load.columns is None:
        return schema, defaults
    by_name = {f.name.lower(): f for f in schema}
    fields = []
    for column in load.columns:
        if column.lower() not in by_name:
            raise StatementRejected(f"Table {'.'.join(load.table)} does not have a column with name {column}")
        fields.append(by_name[column.lower()])
    return pa.schema(fields), defaults


def _column_defaults(
    cur: duckdb.DuckDBPyConnection,
    types: dict[str, str],
    catalog: str | None,
    schema: str | None,
    table: str,
) -> dict[str, pa.Scalar]:
    """Each column's DEFAULT, evaluated once for the COPY (what FIELD_DEFAULT fills in).

    Defaults that differ per row (nextval, random, uuid) are left out: those fields load as NULL.
    """
    rows = cur.execute(
        "SELECT column_name, column_default FROM duckdb_columns() "
        "WHERE column_default IS NOT NULL AND database_name = coalesce(?, current_database()) "
        "AND lower(schema_name) = lower(coalesce(?, current_schema())) AND lower(table_name) = lower(?)",
        [catalog, schema, table],
    ).fetchall()
    defaults: dict[str, pa.Scalar] = {}
    for name, expression in rows:
        # A lake reports DEFAULT NULL for every column: that fills in what a missing field gets anyway.
        if name not in types or expression.strip().upper() == "NULL" or _PER_ROW_DEFAULT.search(expression):
            continue
        value = cur.sql(f"SELECT CAST(({expression}) AS {types[name]}) AS v").to_arrow_table()
        defaults[name] = value.column(0)[0]
    return defaults


def _select_files(
    session: RunContext,
    cur: duckdb.DuckDBPyConnection,
    load: CopyIntoTable,
    stage: ResolvedStage,
    history_key: str,
) -> tuple[list[Candidate], frozenset[str] | None]:
    """FILES or PATTERN, minus what the load history says is loaded, cut to MAX_FILES / SIZE_LIMIT;
    and the file keys the history has entries for (None with FORCE: not read)."""
    if load.files is not None:
        location = stage.location_key
        if stage.location.path and not stage.location.path.endswith("/"):
            location += "/"
        candidates = []
        for name in load.files:
            key = join_key(location, name.lstrip("/"))
            candidates.append(Candidate(relative_name(stage.root_key, key), stage.backend.stat(key)))
    else:
        candidates = [Candidate(n, f) for n, f in session.engine.stages.list_files(stage, load.pattern)]
    recorded = None
    if not load.force:
        loaded, recorded = session.engine.load_history.loaded(on_cursor(cur), history_key)
        candidates = [c for c in candidates if not same_file(loaded.get(c.file.key), c.file)]
    if load.max_files is not None:
        candidates = candidates[: load.max_files]
    if load.size_limit is not None:
        total, kept = 0, list[Candidate]()
        for c in candidates:
            if kept and total + c.file.size > load.size_limit:
                break
            kept.append(c)
            total += c.file.size
        candidates = kept
    return candidates, recorded
