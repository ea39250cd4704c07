"""What follows a table (not its name) across DDL: its owner row, load history and table stage.

The load history and the table-stage files belong to the table itself: a dropped or replaced
table takes them along, a renamed one keeps them.

Which tables a statement dropped, created or renamed is read from DuckDB, not from the statement
text: the tables (with DuckDB's ``table_oid``) are listed before and after it, in one transaction.
An oid stays with a table through ``ALTER TABLE ... RENAME`` and is new for ``CREATE OR REPLACE``,
so ``DROP SCHEMA ... CASCADE``, search-path resolution of bare names and quoting need no parsing.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from engine.catalog.database import CATALOG_SCHEMA
from engine.catalog.load_history import LoadHistory, RunSQL, on_cursor
from engine.catalog.presign_binding import stage_scope
from engine.catalog.table_owners import OWNERS_TABLE, find_table
from engine.errors import EngineError, StatementRejected
from engine.plans import RunContext
from stages.errors import StorageError
from stages.model import Stage, table_stage
from stages.paths import STAGE_NAME_RE
from stages.storage.base import StagedFile, StorageBackend

log = logging.getLogger("stageflight")

_SAME_NAME = "lower(schema_name) = lower(?) AND lower(table_name) = lower(?)"

T = TypeVar("T")
Name = tuple[str, str]  # (schema, table) as DuckDB spells them


def history_key_for(session: RunContext, catalog: str | None, schema: str | None, table: str) -> str:
    """The load-history key of the table a COPY names (the table DuckDB loads into)."""
    info = find_table(session.run_internal, schema, table, owner=False) if catalog is None else None
    if info is None or info.temporary:
        return LoadHistory.key(schema or session.current_schema(), table)
    return LoadHistory.key(info.schema, info.table)


# -- following DDL ---------------------------------------------------------------------------
def track_table_changes(session: RunContext, run: Callable[[], T]) -> T:
    """Run a statement that may drop, create or rename tables, and keep owners, history and
    table-stage files with the tables.

    Catalog rows change in the statement's transaction (one of our own when the client has none);
    stage files are deleted or moved only after that transaction commits.
    """
    own = not session.in_transaction
    if own:
        session.begin()
    try:
        before = _tables(session)
        result = run()
        _follow(session, before, _tables(session))
    except BaseException:
        if own:
            try:
                session.rollback()
            except EngineError:  # noqa: S110 - DuckDB already ended the failed transaction
                pass
        raise
    if own:
        session.commit()
    return result


def check_rename(session: RunContext, schema: str | None, table: str, new_name: str) -> None:
    """Refuse a rename that would strand the table-stage files (the new name cannot name a stage)."""
    if STAGE_NAME_RE.match(new_name):
        return
    info = find_table(session.run_internal, schema, table)
    stage = _stage_of((info.schema, info.table)) if info is not None and not info.temporary else None
    if stage is not None and next(iter(session.engine.stages.storage.list_files(stage.prefix)), None):
        raise StatementRejected(
            f"Cannot rename {stage.schema}.{stage.table} to {new_name!r}: its table stage {stage.ref} has "
            f"files and {new_name!r} cannot name a table stage; REMOVE them or pick a plain name"
        )


def _tables(session: RunContext) -> dict[int, Name]:
    # Views too: they have owners and privileges like tables (their oids share one space).
    rows = session.run_internal(
        "SELECT table_oid, schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary AND schema_name <> ? "
        "UNION ALL SELECT view_oid, schema_name, view_name FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT temporary AND NOT internal",
        [CATALOG_SCHEMA],
    )
    return {int(oid): (str(schema), str(table)) for oid, schema, table in rows}


def _key(name: Name) -> str:
    return LoadHistory.key(*name)


def _follow(session: RunContext, before: dict[int, Name], after: dict[int, Name]) -> None:
    dropped = [name for oid, name in before.items() if oid not in after]
    created = [name for oid, name in after.items() if oid not in before]
    renamed = [(before[oid], after[oid]) for oid in before.keys() & after.keys() if before[oid] != after[oid]]
    if not (dropped or created or renamed):
        return
    run: RunSQL = session.run_internal
    # A created table is new even if its name had history, an owner or files (left by a table
    # that went some way we did not see): it starts with none of them.
    gone = dropped + created
    LoadHistory.clear(run, [_key(n) for n in gone])
    for schema, table in gone:
        run(f"DELETE FROM {OWNERS_TABLE} WHERE {_SAME_NAME}", [schema, table])
    for old, new in renamed:
        LoadHistory.move(run, _key(old), _key(new))
        run(f"DELETE FROM {OWNERS_TABLE} WHERE {_SAME_NAME}", list(new))
        run(f"UPDATE {OWNERS_TABLE} SET schema_name = ?, table_name = ? WHERE {_SAME_NAME}", [*new, *old])
    for schema, table in created:
        run(
            f"INSERT INTO {OWNERS_TABLE} (table_id, schema_name, table_name, owner) VALUES (?, ?, ?, ?)",
            [str(uuid.uuid4()), schema, table, session.user],
        )
    # Files are deleted only after commit, and only those there now: the stages of tables that
    # went, leftovers under a created or renamed-to name (no table had it). A file uploaded later
    # in the transaction (to a table it created) stays.
    engine = session.engine
    doomed: list[StagedFile] = []
    for name in sorted(set(gone) | {new for _, new in renamed}):
        stage = _stage_of(name)
        if stage is not None:
            doomed.extend(engine.stages.storage.list_files(stage.prefix))
    if doomed:
        session.after_commit(functools.partial(_delete_unchanged, engine.stages.storage, doomed))
    # Presigned URLs of a table stage die with the table (as a named stage's do with DROP STAGE):
    # an old upload URL must not plant a file in the stage of a new table of the same name.
    ended = [stage.name for name in [*gone, *(old for old, _ in renamed)] if (stage := _stage_of(name))]
    if ended:
        session.after_commit(functools.partial(_end_urls, engine, ended))
    for old, new in renamed:
        session.after_commit(functools.partial(_move_stage, engine, old, new))


def _end_urls(engine: Any, stage_names: list[str]) -> None:
    with engine.db.security.transaction() as cur:
        for name in stage_names:
            engine.db.security.bump(cur, stage_scope(name))


def _delete_unchanged(storage: StorageBackend, files: list[StagedFile]) -> None:
    keys = []
    for file in files:
        try:
            now = storage.stat(file.key)
        except StorageError:
            continue  # already gone
        if now.etag == file.etag and now.size == file.size:
            keys.append(file.key)  # not replaced since: a new upload under the same name stays
    for start in range(0, len(keys), 1000):
        storage.delete(keys[start : start + 1000])


def _stage_of(name: Name) -> Stage | None:
    schema, table = name
    if STAGE_NAME_RE.match(schema) and STAGE_NAME_RE.match(table):
        return table_stage(schema, table)
    return None


def _move_stage(engine: Any, old: Name, new: Name) -> None:
    """A renamed table's stage files move to the new name's prefix; their history entries follow."""
    old_stage, new_stage = _stage_of(old), _stage_of(new)
    if old_stage is None:
        return
    if new_stage is None:
        log.warning("table %s.%s renamed to a name without a table stage; its files stay", *old)
        return
    moved = engine.stages.copy_table_stage(old_stage, new_stage)
    if moved:
        with engine.metadata_cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                LoadHistory.follow_moved_files(on_cursor(cur), _key(new), moved)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
    engine.stages.storage.delete([old_file.key for old_file, _ in moved])
