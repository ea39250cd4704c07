"""A planned statement, and what it may use while it runs.

Plans are closures over a :class:`RunContext`, never over the concrete ``Session`` or ``Engine``:
a planner can be read, typed and tested against these two Protocols alone. ``Session`` and
``Engine`` satisfy them structurally (neither is imported here, not even for type checking).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from engine.results import Result

if TYPE_CHECKING:
    import duckdb

    from engine.catalog.authorizer import Authorizer
    from engine.catalog.database import Database
    from engine.catalog.file_formats import FileFormats
    from engine.catalog.load_history import LoadHistory
    from engine.catalog.query_log import QueryLog
    from engine.catalog.stages import StageCatalog, StagePrivilege
    from engine.catalog.users import UserDirectory
    from engine.config import EngineConfig
    from engine.stage_access import ResolvedStage, StageAccess

Params = Sequence[Any] | None


class EngineServices(Protocol):
    """What plans and sessions use of the engine: its configuration, database and catalog."""

    config: EngineConfig
    db: Database
    users: UserDirectory
    stage_catalog: StageCatalog
    stages: StageAccess
    file_formats: FileFormats
    load_history: LoadHistory
    query_log: QueryLog
    authorizer: Authorizer

    def on_password_changed(self, name: str) -> None: ...

    def presign_target(
        self, ctx: RunContext, ref: str, privilege: StagePrivilege
    ) -> tuple[ResolvedStage, str]: ...

    def metadata_cursor(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...


class RunContext(Protocol):
    """What a plan may use while it runs: the caller, its cursor and transaction, its stages."""

    engine: EngineServices
    user: str
    is_admin: bool
    current_role: str | None  # SET ROLE (the user's default role at connect)
    secondary_roles_all: bool  # SET SECONDARY ROLES ALL (default) | NONE
    in_transaction: bool

    def resolve_stage(self, ref: str, privilege: StagePrivilege) -> ResolvedStage: ...

    def current_schema(self) -> str: ...

    def exclusive(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def statement_transaction(self, cur: duckdb.DuckDBPyConnection) -> AbstractContextManager[None]: ...

    def after_commit(self, action: Callable[[], object]) -> None: ...
    def hold_until_transaction_end(self, held: ExitStack) -> None: ...

    def transaction_ended(self, committed: bool) -> None: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def run_duckdb(
        self, sql: str, params: Params, *, is_query: bool, transaction: str | None = None
    ) -> Result: ...

    def run_internal(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]: ...

    def describe_query(self, sql: str, param_count: int) -> pa.Schema: ...

    def register_arrow(self, data: pa.RecordBatchReader | pa.Table) -> str: ...

    def register_insert_source(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> str: ...

    def unregister_all(self, names: list[str]) -> None: ...


@dataclass(frozen=True)
class Plan:
    """One statement ready to run. ``schema`` is the result schema when known before running."""

    is_query: bool
    run: Callable[[RunContext, Params], Result]
    schema: pa.Schema | None = None
    param_count: int = 0
    # Computes the result schema on demand (may touch the session's cursor).
    describe: Callable[[RunContext], pa.Schema | None] | None = field(default=None, repr=False)
    # Running it changes nothing (a read without side effects): prepare may run it at once and
    # hand the result to the first execution, instead of describing it and running it again.
    reads_only: bool = False
    # The Arrow type of each parameter, for a prepared statement's parameter_schema (may touch the
    # session's cursor to read column types: engine/sql/parameter_types.py).
    param_types: Callable[[RunContext], list[pa.DataType]] | None = field(default=None, repr=False)
    # Outside a transaction, running it again after a concurrent change (ConcurrentChange) does what
    # one run would have done: INSERT, COPY INTO a table (its load history skips what committed).
    retry_on_conflict: bool = False


def static_query(schema: pa.Schema, produce: Callable[[RunContext], pa.Table]) -> Plan:
    """A server-built result (SHOW USERS, LIST @stage ...) with a schema known up front."""

    def run(ctx: RunContext, params: Params) -> Result:
        return Result.of_table(produce(ctx).cast(schema))

    return Plan(is_query=True, run=run, schema=schema)


def static_update(action: Callable[[RunContext], int | None]) -> Plan:
    def run(ctx: RunContext, params: Params) -> Result:
        count = action(ctx)
        return Result.update(-1 if count is None else count)

    return Plan(is_query=False, run=run)
