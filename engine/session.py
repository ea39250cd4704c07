"""A client session: one DuckDB cursor (temp tables, USE, transactions behave as users expect)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from engine.catalog.stages import StagePrivilege
from engine.catalog.table_owners import table_for_stage
from engine.conflicts import retried_on_conflict
from engine.described import DescribedSchemas, catalog_changing, describe
from engine.errors import EngineError, SessionBusy, StatementRejected, translated_errors
from engine.names import quote_ident, reject_reserved
from engine.plans import EngineServices, Params, Plan
from engine.results import Result, read_ahead
from engine.sql.session_identity import NO_ROLE, SET_ROLE_SQL, identity_macros
from engine.stage_access import ResolvedStage
from engine.statements import plan_statements
from engine.statements.access import may_use
from stages.batching import coalesce

T = TypeVar("T")


@dataclass
class Prepared:
    sql: str
    plans: list[Plan]
    is_update: bool
    dataset_schema: pa.Schema | None
    param_count: int
    # The Arrow type of each parameter (parameter_schema); None when not described.
    param_types: list[pa.DataType] | None = None
    # The result of running it at prepare time, for the first execution if no session ran anything
    # in between (clients prepare and execute at once: the query then runs once, not twice).
    early: Result | None = None
    early_epoch: int = -1


def parameter_rows(data: pa.Table | pa.RecordBatch) -> list[Sequence[Any]]:
    """Bound parameters arrive as Arrow columns (one row per execution); DuckDB takes rows."""
    columns = [col.to_pylist() for col in data.columns]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


class Session:
    def __init__(self, engine: EngineServices, user: str) -> None:
        self.engine = engine
        self.user = user
        self.is_admin = engine.users.is_admin(user)
        self.current_role: str | None = engine.users.default_role(user)  # SET ROLE changes it
        self.secondary_roles_all = True  # SET SECONDARY ROLES ALL | NONE
        self.cursor = engine.db.cursor()
        for macro in identity_macros(user):  # current_user, current_role ... answer this session
            self.cursor.execute(macro)
        self._role_set: str | None = None  # the role current_role() last answered
        # Held while a statement runs or a streamed result is open on the cursor. A plain Lock
        # because DoGet (another thread) releases what GetFlightInfo acquired.
        self._busy = threading.Lock()
        # The thread inside exclusive() (a COPY, an unload): its nested calls (run_internal, stage
        # resolution) reuse the lock it holds instead of waiting for themselves.
        self._holder: int | None = None
        self._nested = 0
        self._early: Prepared | None = None  # the prepared statement whose early result is kept
        self._early_lock = threading.Lock()
        self._described = DescribedSchemas(enabled=not engine.db.lake)
        self.in_transaction = False
        self.closed = False
        self._after_commit: list[Callable[[], object]] = []
        self._transaction_holds = ExitStack()  # released when the open transaction ends

    # -- exclusivity -----------------------------------------------------------------
    def _acquire(self) -> None:
        if self._holder == threading.get_ident():
            self._nested += 1
            return
        if not self._busy.acquire(blocking=False):
            if self._early is not None:
                self.drop_early()  # other work comes first: a kept stream gives the cursor back
            self._wait_for_cursor()
        if self.closed:
            self._busy.release()
            raise EngineError("Session is closed")
        self.engine.db.note_cursor_hold()

    def _wait_for_cursor(self) -> None:
        if not self._busy.acquire(timeout=self.engine.config.busy_wait_seconds):
            raise SessionBusy(
                "Session busy: a large result is still open on this connection; fetch or close it first"
            )

    def _release(self) -> None:
        if self._nested:
            self._nested -= 1
            return
        self._busy.release()

    @contextmanager
    def exclusive(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The session's cursor, held for server-built work (COPY, unload) from start to end."""
        me = threading.get_ident()
        if self._holder == me:
            yield self.cursor
            return
        self._acquire()
        self._holder = me
        try:
            yield self.cursor
        finally:
            self._holder = None
            self._release()

    @contextmanager
    def statement_transaction(self, cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """One transaction for a multi-step statement, unless the client already has one open."""
        if self.in_transaction:
            yield
            return
        cur.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass  # already rolled back by DuckDB
            self._after_commit.clear()
            raise
        try:
            self._duckdb(lambda: cur.execute("COMMIT"))  # a lake commit can lose to another node's
        except EngineError:
            self._after_commit.clear()
            raise
        self._run_after_commit()

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run ``action`` once the current work is committed (PURGE deletes files only then)."""
        self._after_commit.append(action)
        if not self.in_transaction:
            self._run_after_commit()

    def transaction_ended(self, committed: bool) -> None:
        """A COMMIT or ROLLBACK statement ended the transaction: run or drop what waits for commit."""
        if committed:
            self._run_after_commit()
        else:
            self._after_commit.clear()

    def _run_after_commit(self) -> None:
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            try:
                action()
            except Exception:  # the commit stands; a failed clean-up is logged, not the client's error
                logging.getLogger("stageflight").exception("post-commit action failed")
        self.engine.db.checkpoint_if_due()

    def current_schema(self) -> str:
        return self.current_catalog_and_schema()[1]

    # -- statements ------------------------------------------------------------------
    def prepare(self, sql: str, *, describe: bool = True) -> Prepared:
        """Plan ``sql``; with ``describe``, also report the result schema.

        A query is described with a ``LIMIT 0`` run (cheap: DuckDB plans it but reads nothing), so
        the real run happens at execution, where the client can cancel it. A read that nothing
        describes (SHOW, DESCRIBE, a stage query) is run here and kept for the first execution.
        A statement refused here is in the query log as failed, as if it had run.
        """
        try:
            prepared = self._planned(sql, describe)
        except EngineError as exc:
            self.engine.query_log.failed(self.user, sql, exc)
            raise
        [*earlier, last] = prepared.plans
        undescribed = describe and not earlier and prepared.dataset_schema is None
        if undescribed and last.reads_only and not last.param_count:
            self._run_early(prepared)  # nothing describes it (SHOW, DESCRIBE, a stage query)
        return prepared

    def _planned(self, sql: str, describe: bool) -> Prepared:
        plans = plan_statements(sql)
        last = plans[-1]
        prepared = Prepared(
            sql=sql,
            plans=plans,
            is_update=not last.is_query,
            dataset_schema=last.schema,
            param_count=sum(p.param_count for p in plans),
        )
        if not describe or len(plans) != 1:
            return prepared
        if last.param_types is not None:
            typing_plan = last.param_types
            with self.exclusive():  # the privilege check may read the catalog on this cursor
                prepared.param_types = self._duckdb(lambda: typing_plan(self))
        if last.schema is not None:
            return prepared
        if last.describe is not None:
            describe_plan = last.describe
            with self.exclusive():  # held once; the plan's privilege check runs inside
                prepared.dataset_schema = self._duckdb(lambda: describe_plan(self))
        return prepared

    @staticmethod
    def deferrable(prepared: Prepared, params: Sequence[Sequence[Any]]) -> bool:
        """Whether ``prepared`` may wait to run until its result is fetched: one query that only
        reads, its schema described (and not already run at prepare time), without parameters
        (a described parameter is NULL, so its column's type would not be the bound value's)."""
        if len(prepared.plans) != 1 or prepared.early is not None or prepared.dataset_schema is None:
            return False
        plan = prepared.plans[0]
        return plan.is_query and plan.reads_only and not plan.param_count and not any(params)

    def _run_early(self, prepared: Prepared) -> None:
        result = self.run_prepared(prepared)
        prepared.dataset_schema = result.schema
        with self._early_lock:
            self._drop_early_locked()
            prepared.early, prepared.early_epoch = result, self.engine.db.cursor_holds
            self._early = prepared

    def _take_early(self, prepared: Prepared) -> Result | None:
        with self._early_lock:
            result, fresh = prepared.early, prepared.early_epoch == self.engine.db.cursor_holds
            if result is None:
                return None
            prepared.early = None
            if self._early is prepared:
                self._early = None
        if fresh:
            return result
        result.close()  # something ran in between: run again to see it
        return None

    def drop_early(self, prepared: Prepared | None = None) -> None:
        """Give up a kept early result (the statement was closed, or the cursor is wanted)."""
        with self._early_lock:
            if prepared is None or self._early is prepared:
                self._drop_early_locked()

    def _drop_early_locked(self) -> None:
        kept, self._early = self._early, None
        if kept is not None and kept.early is not None:
            result, kept.early = kept.early, None
            result.close()

    def execute(self, sql: str, params: Params = None) -> Result:
        # The result carries its own schema: no need to describe the statement first.
        return self.run_prepared(self.prepare(sql, describe=False), params)

    def run_prepared(self, prepared: Prepared, params: Params = None) -> Result:
        if prepared.early is not None and not params:
            early = self._take_early(prepared)
            if early is not None:
                return early
        log = self.engine.query_log  # one entry per statement run (SHOW PROCESSLIST, KILL QUERY)
        return log.run(self.user, prepared.sql, self.interrupt, lambda: self._run_plans(prepared, params))

    def _run_plans(self, prepared: Prepared, params: Params) -> Result:
        # Any statement (a GRANT or REVOKE too, which never touches a cursor) makes results run
        # early in other sessions stale.
        self.engine.db.note_cursor_hold()
        if params and len(prepared.plans) > 1:
            raise StatementRejected("Parameters can only be bound to a single statement")
        result: Result | None = None
        for plan in prepared.plans:
            if result is not None:
                result.close()
            result = self._run_plan(plan, params)
        if not self.in_transaction:
            self.engine.db.checkpoint_if_due()  # autocommit: the statement's work is committed
        return result if result is not None else Result.update(-1)

    def _run_plan(self, plan: Plan, params: Params) -> Result:
        """Run ``plan``; an autocommit INSERT or COPY that lost a race to a concurrent change (two
        nodes writing one lake table) runs again, a bounded number of times."""
        if plan.reads_only:
            return plan.run(self, params)
        with catalog_changing():
            if not plan.retry_on_conflict or self.in_transaction:
                return plan.run(self, params)
            return retried_on_conflict(lambda: plan.run(self, params))

    def run_prepared_rows(self, prepared: Prepared, rows: list[Sequence[Any]]) -> Result:
        """Run a query once per parameter row and concatenate the results."""
        if len(rows) <= 1:
            return self.run_prepared(prepared, rows[0] if rows else None)
        tables = [self.run_prepared(prepared, row).read_all() for row in rows]
        return Result.of_table(pa.concat_tables(tables))

    def execute_many(self, prepared: Prepared, batches: Iterable[pa.RecordBatch]) -> int:
        if len(prepared.plans) != 1:
            raise StatementRejected("executemany needs exactly one statement")
        total = 0
        for batch in batches:
            for row in parameter_rows(batch):
                result = self._run_plan(prepared.plans[0], row)
                total += max(result.rowcount, 0)
                result.close()
        return total

    # -- DuckDB execution (called by plans) --------------------------------------------
    def run_duckdb(
        self, sql: str, params: Params, *, is_query: bool, transaction: str | None = None
    ) -> Result:
        self._acquire()
        streaming = False
        try:
            self._sync_role()
            bound = list(params) if params else None
            if not is_query:  # execute, not sql(): DuckDB 1.5 gives no relation (no count) for DML
                rows = self._ending(transaction, lambda: self.cursor.execute(sql, bound).fetchall())
                self._track_transaction(transaction)
                return Result.update(int(rows[0][0]) if rows and rows[0] else -1)
            relation = self._ending(transaction, lambda: self.cursor.sql(sql, params=bound))
            self._track_transaction(transaction)
            if relation is None:
                return Result.update(-1)
            reader = self._duckdb(lambda: relation.to_arrow_reader(self.engine.config.batch_rows))
            # Inside exclusive() the result is read whole: a stream would release the lock elsewhere.
            budget = self.engine.config.read_ahead_bytes if self._holder is None else None
            result = read_ahead(reader, budget, on_close=self._release)
            streaming = result.stream is not None
            return result
        finally:
            if not streaming:
                self._release()

    def _ending(self, transaction: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn``; a COMMIT that fails (a lake conflict, a key violation) has still ended the
        transaction in DuckDB, so it ends here too (and what it held is let go)."""
        try:
            return self._duckdb(fn)
        except EngineError:
            if transaction == "end":
                self._after_commit.clear()
                self._track_transaction(transaction)
            raise

    def _track_transaction(self, transaction: str | None) -> None:
        if transaction == "begin":
            self.in_transaction = True
        elif transaction == "end":
            self.in_transaction = False
            self._transaction_holds.close()

    def hold_until_transaction_end(self, held: ExitStack) -> None:
        """Keep what ``held`` holds (a COPY's load lock) until the open transaction commits or rolls back."""
        self._transaction_holds.enter_context(held)

    def _sync_role(self) -> None:
        role = self.current_role or NO_ROLE
        if role != self._role_set:
            try:
                self.cursor.execute(SET_ROLE_SQL, [role])
                self._role_set = role
            except duckdb.Error:  # an aborted transaction: tried again at the next statement
                pass

    def describe_query(self, sql: str, param_count: int) -> pa.Schema:
        """The schema the query's run will stream (engine.described), the role set first:
        current_role()'s type is its value's."""
        role = self.current_role or NO_ROLE
        epoch, schema = self._described.get(sql, param_count, role)
        if schema is None:
            self._sync_role()
            schema = describe(self.cursor, sql, param_count)
            self._described.keep(sql, param_count, role, epoch, schema)
        return schema

    @staticmethod
    def _duckdb(fn: Callable[[], T]) -> T:
        """Run ``fn`` and turn DuckDB's errors into engine errors with DuckDB's own text."""
        with translated_errors():
            return fn()

    def resolve_stage(self, ref: str, privilege: StagePrivilege) -> ResolvedStage:
        return self.engine.stages.resolve(
            ref,
            self.user,
            self.is_admin,
            privilege,
            find_table=lambda s, t: table_for_stage(self.run_internal, s, t),
            may_use_table=lambda s, t, privilege: may_use(self, s, t, privilege),
        )

    # -- ingest, transactions, options ------------------------------------------------
    def register_arrow(self, data: pa.RecordBatchReader | pa.Table) -> str:
        name = f"__stage_{uuid.uuid4().hex}"
        self.cursor.register(name, data)
        return name

    def register_insert_source(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> str:
        """Register a stream that an INSERT will read, in batches of at least ``batch_rows`` rows.

        DuckDB's INSERT is slow on small batches (see :func:`stages.batching.coalesce`).
        """
        coalesced = coalesce(batches, self.engine.config.batch_rows)
        return self.register_arrow(pa.RecordBatchReader.from_batches(schema, coalesced))

    def unregister_all(self, names: list[str]) -> None:
        for name in names:
            try:
                self.cursor.unregister(name)
            except duckdb.Error:  # noqa: S110 - an aborted transaction refuses; the name dies with it
                pass

    def begin(self) -> None:
        self.run_internal("BEGIN TRANSACTION")
        self.in_transaction = True

    def commit(self) -> None:
        try:
            with self._transaction_holds:
                self.run_internal("COMMIT")
        except EngineError:
            self._after_commit.clear()  # DuckDB ended the transaction: it rolled back
            raise
        finally:
            self.in_transaction = False
        self._run_after_commit()

    def rollback(self) -> None:
        self._after_commit.clear()
        with self._transaction_holds:
            self.run_internal("ROLLBACK")
        self.in_transaction = False

    def run_internal(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Server-built SQL (never user text) on the session's cursor, inside its transaction."""
        self._acquire()
        try:
            return self._duckdb(lambda: self.cursor.execute(sql, params).fetchall())
        finally:
            self._release()

    def current_catalog_and_schema(self) -> tuple[str, str]:
        row = self.run_internal("SELECT current_database(), current_schema()")[0]
        return str(row[0]), str(row[1])

    def use(self, catalog: str | None, schema: str | None) -> None:
        current_catalog, current_schema = self.current_catalog_and_schema()
        catalog = catalog or current_catalog
        schema = schema or current_schema
        reject_reserved(catalog, schema)
        with catalog_changing():  # unqualified names now mean other tables
            self.run_internal(f"USE {quote_ident(catalog)}.{quote_ident(schema)}")

    def interrupt(self) -> None:
        try:
            self.cursor.interrupt()
        except duckdb.Error:
            pass

    def close(self) -> None:
        """Roll back what is open and drop the cursor (CloseSession, expiry)."""
        if self.closed:
            return
        self.drop_early()
        self.interrupt()
        got = self._busy.acquire(timeout=5)
        self.closed = True
        try:
            if self.in_transaction:
                try:
                    self.cursor.execute("ROLLBACK")
                except duckdb.Error:
                    pass
            self.cursor.close()
        finally:
            self._transaction_holds.close()
            if got:
                self._busy.release()
