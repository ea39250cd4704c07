"""Plans for user SQL that DuckDB runs: guarded by the allowlist, executed as regenerated text."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
from sqlglot import exp

from engine.catalog.load_history import LoadHistory
from engine.catalog.privileges import USER, Principal
from engine.catalog.stages import StagePrivilege
from engine.errors import EngineError, StatementRejected, translated_errors
from engine.plans import Params, Plan, RunContext
from engine.results import Result
from engine.sql import guard
from engine.sql.dialect import stage_options, stage_refs
from engine.sql.parameter_types import Hint, parameter_hints, resolve
from engine.sql.table_refs import TableNeed, extract
from engine.statements.access import checked_in_one_snapshot, require_needs
from engine.statements.result_source import schema_with_source, source_table, with_source
from engine.statements.system_functions import SYSTEM_TABLE_FUNCTIONS, system_table
from engine.statements.table_identity import check_rename, history_key_for, track_table_changes
from engine.statements.visibility import with_visibility
from stages.paths import parse_stage_ref


def _param_count(tree: exp.Expression) -> int:
    """``?`` count, or the highest ``$n`` (DuckDB numbers positional parameters from 1)."""
    anonymous = 0
    numbered = 0
    for node in tree.find_all(exp.Placeholder):
        name = node.args.get("this")
        if name is None or name == "?":
            anonymous += 1
        elif str(name).isdigit():
            numbered = max(numbered, int(name))
        else:
            raise StatementRejected(f"Named parameter ${name} is not supported: use ? or $1, $2, ...")
    return anonymous or numbered


STAGE_TABLE_FUNCTIONS = ("INFER_SCHEMA", "LIST_STAGE", *SYSTEM_TABLE_FUNCTIONS)


def stage_functions(tree: exp.Expression) -> list[exp.Table]:
    """``FROM INFER_SCHEMA(...)`` / ``FROM LIST_STAGE(...)`` table-function calls the engine answers."""
    return [
        t
        for t in tree.find_all(exp.Table)
        if isinstance(t.this, exp.Anonymous) and str(t.this.name).upper() in STAGE_TABLE_FUNCTIONS
    ]


def _kwargs(call: exp.Anonymous) -> dict[str, exp.Expression]:
    args: dict[str, exp.Expression] = {}
    for arg in call.expressions:
        if not isinstance(arg, exp.Kwarg):
            raise StatementRejected(f"{call.name} takes named arguments: NAME => value")
        args[arg.this.name.upper()] = arg.expression
    return args


def plan_query(tree: exp.Expression) -> Plan:
    if stage_refs(tree) or stage_functions(tree):
        return _plan_with_stages(tree)
    sql = guard.regenerate(tree)
    is_query = guard.is_query(tree)
    params = _param_count(tree)

    transaction = _transaction_effect(tree)
    truncated = _truncated(tree)
    renamed = _renamed(tree)
    tracked = changes_tables(tree)
    needs = extract(tree).needs  # names only: checked for the caller at every execution
    new_schema = _created_schema(tree)
    hints = parameter_hints(tree, params)
    source = source_table(tree)  # a plain one-table SELECT: its result names the table

    def run_statement(session: RunContext, params_in: Params) -> Result:
        return checked_in_one_snapshot(session, needs, lambda: _run_checked(session, params_in))

    def _run_checked(session: RunContext, params_in: Params) -> Result:
        if renamed is not None:
            check_rename(session, *renamed)
        if new_schema is not None:
            return create_schema(session, new_schema, lambda: _run_sql(session, params_in))
        return with_source(session, source, lambda: _run_sql(session, params_in))

    def _run_sql(session: RunContext, params_in: Params) -> Result:
        result = with_visibility(  # catalog views read: the caller's visibility is bound for the run
            session,
            sql,
            lambda text: session.run_duckdb(text, params_in, is_query=is_query, transaction=transaction),
        )
        if truncated:
            # TRUNCATE starts the table's load history afresh (DROP and replace: table_identity).
            LoadHistory.clear(session.run_internal, [history_key_for(session, *t) for t in truncated])
        return result

    def run(session: RunContext, params_in: Params) -> Result:
        if tracked:
            return track_table_changes(session, lambda: run_statement(session, params_in))
        result = run_statement(session, params_in)
        if transaction == "end":
            session.transaction_ended(committed=isinstance(tree, exp.Commit))
        return result

    def describe(session: RunContext) -> pa.Schema | None:
        if not isinstance(tree, exp.Select | exp.SetOperation):
            return None
        require_needs(session, needs)  # a result's columns are not shown to whom may not read it
        schema = with_visibility(
            session, sql, lambda text: session.describe_query(text, params), describe=True
        )
        return schema_with_source(session, source, schema)

    return Plan(
        is_query=is_query,
        run=run,
        param_count=params,
        describe=describe if is_query else None,
        reads_only=reads_only(tree),
        param_types=_param_types(hints, needs) if params else None,
        retry_on_conflict=isinstance(tree, exp.Insert),
    )


def _param_types(
    hints: tuple[Hint, ...], needs: tuple[TableNeed, ...]
) -> Callable[[RunContext], list[pa.DataType]]:
    """Parameter types at prepare time; column types are read only from tables the caller may use."""

    def describe_table(session: RunContext, table: exp.Table) -> pa.Schema:
        sql = guard.regenerate(exp.select("*").from_(table))
        with translated_errors():
            return session.describe_query(sql, 0)

    def param_types(session: RunContext) -> list[pa.DataType]:
        try:
            require_needs(session, needs)
        except EngineError:
            return resolve(hints, None)
        return resolve(hints, lambda table: describe_table(session, table))

    return param_types


def _plan_with_stages(tree: exp.Expression) -> Plan:
    """Statements reading staged files: each @ref becomes a registered Arrow stream at run time."""
    for ref in stage_refs(tree):
        parse_stage_ref(ref.name)  # unsafe paths are refused before anything runs
    needs = extract(tree).needs  # the tables it reads or creates (stages are checked as resolved)
    is_query = guard.is_query(tree)
    params = sum(1 for p in tree.find_all(exp.Placeholder) if p.args.get("this") in (None, "?"))
    # METADATA$ columns exist only when asked for, so SELECT * shows the file's own columns.
    with_metadata = any(i.name.upper().startswith("METADATA$") for i in tree.find_all(exp.Identifier))
    tracked = changes_tables(tree)
    # $1 of an NDJSON or Parquet file is its whole row as JSON (Databend's VARIANT row).
    row_column = any(str(p.args.get("this")) == "1" for p in tree.find_all(exp.Placeholder))

    def run(session: RunContext, params_in: Params) -> Result:
        return checked_in_one_snapshot(session, needs, lambda: run_checked(session, params_in))

    def run_checked(session: RunContext, params_in: Params) -> Result:
        bound = tree.copy()
        names: list[str] = []
        try:
            stages = session.engine.stages
            for ref in stage_refs(bound):
                resolved = session.resolve_stage(ref.name, StagePrivilege.READ)
                options = stage_options(ref)
                kind = file_kind(stages.query_format(resolved, options))
                reader = stages.scan(resolved, options, with_metadata)
                names.append(session.register_arrow(reader))
                if kind in POSITIONAL_KINDS:
                    _refuse_star(ref)
                table = ref.parent
                ref.replace(exp.to_identifier(names[-1]))
                if row_column and kind in VARIANT_KINDS and isinstance(table, exp.Table):
                    _with_row_column(table, names[-1], reader.schema)
            for call in stage_functions(bound):
                function = call.this.name
                answer = system_table(session, function, _kwargs(call.this))  # COPY_/QUERY_HISTORY
                if answer is None:
                    location, values = stages.table_function_args(function, _kwargs(call.this))
                    resolved = session.resolve_stage(location, StagePrivilege.READ)
                    answer = stages.table_function(function, resolved, values)
                names.append(session.register_arrow(answer))
                call.set("this", exp.to_identifier(names[-1]))
            positional_columns(bound)
            sql = guard.regenerate(bound)
            if tracked:  # CREATE TABLE ... AS SELECT ... FROM @stage
                result = track_table_changes(
                    session,
                    lambda: with_visibility(
                        session, sql, lambda text: session.run_duckdb(text, params_in, is_query=is_query)
                    ),
                )
            else:
                result = with_visibility(
                    session, sql, lambda text: session.run_duckdb(text, params_in, is_query=is_query)
                )
        except BaseException:
            session.unregister_all(names)
            raise
        if result.stream is None:
            session.unregister_all(names)
        else:
            done = result.on_close

            def close() -> None:
                if done is not None:
                    done()
                session.unregister_all(names)

            result.on_close = close
        return result

    hints = parameter_hints(tree, params, numbered=False)
    return Plan(
        is_query=is_query,
        run=run,
        param_count=params,
        reads_only=reads_only(tree),
        param_types=_param_types(hints, needs) if params else None,
    )


# Functions whose every call changes state, so a statement using them must run exactly when asked.
_STATEFUL_FUNCTIONS = frozenset({"NEXTVAL", "SETVAL"})


def reads_only(tree: exp.Expression) -> bool:
    """A query (SELECT, set operation, SHOW, DESCRIBE) that changes nothing when it runs."""
    if not isinstance(tree, exp.Select | exp.SetOperation | exp.Show | exp.Describe):
        return False
    return not any(
        isinstance(node, exp.Func)
        and node.sql_name().upper() in _STATEFUL_FUNCTIONS
        or isinstance(node, exp.Anonymous)
        and str(node.name).upper() in _STATEFUL_FUNCTIONS
        for node in tree.find_all(exp.Func)
    )


# Staged files read as positional $1 .. $n text columns, and those whose $1 is the row as JSON.
POSITIONAL_KINDS = frozenset({"CSV", "TSV"})
VARIANT_KINDS = frozenset({"NDJSON", "PARQUET"})
_TEXT_TYPES = frozenset({exp.DType.VARCHAR, exp.DType.TEXT, exp.DType.CHAR, exp.DType.NVARCHAR})


def file_kind(file_format: dict[str, str]) -> str:
    kind = file_format.get("TYPE", "PARQUET").upper()
    return "TSV" if kind == "TEXT" else kind


def _refuse_star(ref: exp.Expression) -> None:
    """CSV/TSV files have no column names: ``SELECT *`` (alone or beside ``$1``) is refused, as Databend."""
    select = ref.find_ancestor(exp.Select)
    if select is None:
        return
    for item in select.expressions:
        if isinstance(item, exp.Star) or isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
            raise StatementRejected(
                "Query from CSV file lacks column positions (Databend error 1065): "
                "name the columns $1, $2, ... instead of *"
            )


def _with_row_column(table: exp.Table, name: str, schema: pa.Schema) -> None:
    """Read the registered stream through ``SELECT *, to_json({...}) AS "$1"``: the row as JSON."""
    fields = [f.name for f in schema if not f.name.startswith("METADATA$")]
    row = exp.Struct(
        expressions=[
            exp.PropertyEQ(
                this=exp.Literal.string(f), expression=exp.column(exp.to_identifier(f, quoted=True))
            )
            for f in fields
        ]
    )
    value = exp.func("to_json", row) if fields else exp.cast(exp.Literal.string("{}"), exp.DType.JSON)
    inner = exp.select(exp.Star(), exp.alias_(value, exp.to_identifier("$1", quoted=True))).from_(
        exp.to_identifier(name)
    )
    alias = table.args.get("alias")
    subquery = exp.Subquery(
        this=inner, alias=alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(name))
    )
    table.replace(subquery)


def positional_columns(tree: exp.Expression) -> None:
    """``$1`` / ``t.$2`` name columns of staged CSV files, not parameters.

    ``CAST($1:a AS VARCHAR)`` is the text of the value (Databend), not its JSON (``"x"``).
    """
    for cast in list(tree.find_all(exp.Cast)):
        extract = cast.this
        if isinstance(extract, exp.JSONExtract) and extract.args.get("variant_extract"):
            if cast.to.this in _TEXT_TYPES:
                cast.replace(exp.JSONExtractScalar(this=extract.this, expression=extract.expression))
    for node in list(tree.find_all(exp.Placeholder)):
        name = node.args.get("this")
        if name is None or not str(name).isdigit():
            continue
        ident = exp.to_identifier(f"${name}", quoted=True)
        if isinstance(node.parent, exp.Column):
            node.replace(ident)
        else:
            node.replace(exp.column(ident))


def changes_tables(tree: exp.Expression) -> bool:
    """Statements that may drop, create, rename or empty tables or views (their identity is followed)."""
    kind = str(tree.args.get("kind") or "").upper()
    if isinstance(tree, exp.Create):
        return kind in ("TABLE", "VIEW")
    if isinstance(tree, exp.Drop):
        return kind in ("TABLE", "VIEW", "SCHEMA")
    return isinstance(tree, exp.Alter | exp.TruncateTable)


def _table_name(table: exp.Table) -> tuple[str | None, str | None, str]:
    return (table.catalog or None, table.db or None, table.name)


def _truncated(tree: exp.Expression) -> list[tuple[str | None, str | None, str]]:
    if not isinstance(tree, exp.TruncateTable):
        return []
    return [_table_name(t) for t in tree.expressions if isinstance(t, exp.Table)]


def _renamed(tree: exp.Expression) -> tuple[str | None, str, str] | None:
    """``ALTER TABLE [schema.]t RENAME TO u``: (schema, t, u)."""
    if not isinstance(tree, exp.Alter) or not isinstance(tree.this, exp.Table):
        return None
    for action in tree.args.get("actions") or []:
        if isinstance(action, exp.AlterRename) and isinstance(action.this, exp.Table):
            return (tree.this.db or None, tree.this.name, action.this.name)
    return None


def _transaction_effect(tree: exp.Expression) -> str | None:
    if isinstance(tree, exp.Transaction):
        return "begin"
    if isinstance(tree, exp.Commit | exp.Rollback):
        return "end"
    return None


def _created_schema(tree: exp.Expression) -> str | None:
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() == "SCHEMA":
        target = tree.this
        name = target.db if isinstance(target, exp.Table) and target.db else target.name
        return str(name) or None
    return None


def create_schema(session: RunContext, name: str, run: Callable[[], Result]) -> Result:
    """CREATE SCHEMA: the creator owns the new schema (an existing one keeps its owner)."""
    exists = (
        "SELECT count(*) FROM duckdb_schemas() "
        "WHERE database_name = current_database() AND lower(schema_name) = lower(?)"
    )
    existed = bool(session.run_internal(exists, [name])[0][0])
    result = run()
    if not existed and bool(session.run_internal(exists, [name])[0][0]):
        session.engine.authorizer.store.set_owner("schema", name.lower(), Principal(USER, session.user))
    return result
