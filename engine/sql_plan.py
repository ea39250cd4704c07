"""Plans for user SQL that DuckDB runs: guarded by the allowlist, executed as regenerated text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
from sqlglot import exp

from engine import guard
from engine.plans import Params, Plan
from engine.results import Result

if TYPE_CHECKING:
    from engine.session import Session


def _param_count(sql: str) -> int:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return 0
    return len(statements[0].named_parameters) if statements else 0


def plan_sql(tree: exp.Expression) -> Plan:
    sql = guard.regenerate(tree)
    is_query = guard.is_query(tree)
    params = _param_count(sql)

    def run(session: Session, params_in: Params) -> Result:
        return session.run_duckdb(sql, params_in, is_query=is_query, transaction=_transaction_effect(tree))

    def describe(session: Session) -> pa.Schema | None:
        if not isinstance(tree, exp.Select | exp.SetOperation):
            return None
        return session.describe_query(sql, params)

    return Plan(
        description=sql[:200], is_query=is_query, run=run, param_count=params,
        describe=describe if is_query else None,
    )


def _transaction_effect(tree: exp.Expression) -> str | None:
    if isinstance(tree, exp.Transaction):
        return "begin"
    if isinstance(tree, exp.Commit | exp.Rollback):
        return "end"
    return None
