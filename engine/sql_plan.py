"""Plans for user SQL that DuckDB runs: guarded by the allowlist, executed as regenerated text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from engine import guard
from engine.errors import StatementRejected
from engine.plans import Params, Plan
from engine.results import Result
from stages.model import table_stage
from stages.paths import STAGE_NAME_RE

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


def plan_sql(tree: exp.Expression) -> Plan:
    sql = guard.regenerate(tree)
    is_query = guard.is_query(tree)
    params = _param_count(tree)

    dropped_tables = _dropped_tables(tree)

    def run(session: Session, params_in: Params) -> Result:
        result = session.run_duckdb(sql, params_in, is_query=is_query, transaction=_transaction_effect(tree))
        for schema, table in dropped_tables:
            # A table stage (@%t) goes away with its table.
            session.engine.stages.wipe(table_stage(schema, table))
        return result

    def describe(session: Session) -> pa.Schema | None:
        if not isinstance(tree, exp.Select | exp.SetOperation):
            return None
        return session.describe_query(sql, params)

    return Plan(
        description=sql[:200], is_query=is_query, run=run, param_count=params,
        describe=describe if is_query else None,
    )


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


def _transaction_effect(tree: exp.Expression) -> str | None:
    if isinstance(tree, exp.Transaction):
        return "begin"
    if isinstance(tree, exp.Commit | exp.Rollback):
        return "end"
    return None
