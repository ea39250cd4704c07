"""Plans for user SQL that DuckDB runs: guarded by the allowlist, executed as regenerated text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from engine import guard
from engine.dialect import stage_options, stage_refs
from engine.errors import StatementRejected
from engine.history import history_table_key
from engine.plans import Params, Plan
from engine.results import Result
from stages.model import table_stage
from stages.paths import STAGE_NAME_RE, parse_stage_ref

if TYPE_CHECKING:
    from engine.session import Session


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


STAGE_TABLE_FUNCTIONS = ("INFER_SCHEMA", "LIST_STAGE")


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


def plan_sql(tree: exp.Expression) -> Plan:
    if stage_refs(tree) or stage_functions(tree):
        return _plan_with_stages(tree)
    sql = guard.regenerate(tree)
    is_query = guard.is_query(tree)
    params = _param_count(tree)

    dropped_tables = _dropped_tables(tree)
    reset_tables = dropped_tables + _truncated_or_replaced(tree)

    def run(session: Session, params_in: Params) -> Result:
        result = session.run_duckdb(sql, params_in, is_query=is_query, transaction=_transaction_effect(tree))
        for schema, table in dropped_tables:
            # A table stage (@%t) goes away with its table.
            session.engine.stages.wipe(table_stage(schema, table))
        if reset_tables:
            # TRUNCATE, DROP and CREATE OR REPLACE start the table's load history afresh.
            session.clear_load_history([history_table_key(s, t) for s, t in reset_tables])
        return result

    def describe(session: Session) -> pa.Schema | None:
        if not isinstance(tree, exp.Select | exp.SetOperation):
            return None
        return session.describe_query(sql, params)

    return Plan(
        description=sql[:200],
        is_query=is_query,
        run=run,
        param_count=params,
        describe=describe if is_query else None,
    )


def _plan_with_stages(tree: exp.Expression) -> Plan:
    """Statements reading staged files: each @ref becomes a registered Arrow stream at run time."""
    for ref in stage_refs(tree):
        parse_stage_ref(ref.name)  # unsafe paths are refused before anything runs
    is_query = guard.is_query(tree)
    params = sum(1 for p in tree.find_all(exp.Placeholder) if p.args.get("this") in (None, "?"))
    # METADATA$ columns exist only when asked for, so SELECT * shows the file's own columns.
    with_metadata = any(i.name.upper().startswith("METADATA$") for i in tree.find_all(exp.Identifier))

    def run(session: Session, params_in: Params) -> Result:
        bound = tree.copy()
        names: list[str] = []
        try:
            for ref in stage_refs(bound):
                reader = session.engine.stages.scan(session, ref.name, stage_options(ref), with_metadata)
                names.append(session.register_arrow(reader))
                ref.replace(exp.to_identifier(names[-1]))
            for call in stage_functions(bound):
                answer = session.engine.stages.table_function(session, call.this.name, _kwargs(call.this))
                names.append(session.register_arrow(answer))
                call.set("this", exp.to_identifier(names[-1]))
            positional_columns(bound)
            sql = guard.regenerate(bound)
            result = session.run_duckdb(sql, params_in, is_query=is_query)
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

    return Plan(description="query on staged files", is_query=is_query, run=run, param_count=params)


def positional_columns(tree: exp.Expression) -> None:
    """``$1`` / ``t.$2`` name columns of staged CSV files, not parameters."""
    for node in list(tree.find_all(exp.Placeholder)):
        name = node.args.get("this")
        if name is None or not str(name).isdigit():
            continue
        ident = exp.to_identifier(f"${name}", quoted=True)
        if isinstance(node.parent, exp.Column):
            node.replace(ident)
        else:
            node.replace(exp.column(ident))


def _dropped_tables(tree: exp.Expression) -> list[tuple[str, str]]:
    if not isinstance(tree, exp.Drop) or (tree.args.get("kind") or "").upper() != "TABLE":
        return []
    tables = tree.args.get("tables") or ([tree.this] if tree.this is not None else [])
    found = []
    for table in tables:
        schema = table.db or "main" if isinstance(table, exp.Table) else ""
        if isinstance(table, exp.Table) and STAGE_NAME_RE.match(table.name) and STAGE_NAME_RE.match(schema):
            found.append((schema, table.name))
    return found


def _truncated_or_replaced(tree: exp.Expression) -> list[tuple[str, str]]:
    tables: list[exp.Expression] = []
    if isinstance(tree, exp.TruncateTable):
        tables = list(tree.expressions)
    elif (
        isinstance(tree, exp.Create)
        and tree.args.get("replace")
        and (tree.args.get("kind") or "").upper() == "TABLE"
    ):
        target = tree.this
        tables = [target.this if isinstance(target, exp.Schema) else target]
    return [((t.db or "main"), t.name) for t in tables if isinstance(t, exp.Table)]


def _transaction_effect(tree: exp.Expression) -> str | None:
    if isinstance(tree, exp.Transaction):
        return "begin"
    if isinstance(tree, exp.Commit | exp.Rollback):
        return "end"
    return None
