"""Trees to plans: one dispatch point for every statement text, and the plan cache.

Statements the engine answers itself (users, stages, file formats, COPY) are read by the
``TokenCursor`` parsers; everything else goes through the SQL allowlist to DuckDB. Planners
return :class:`engine.plans.Plan` closures typed against ``RunContext``; nothing here knows the
session or the engine.
"""

from __future__ import annotations

import functools

from engine.plans import Plan
from engine.sql import guard
from engine.sql.copy import CopyIntoStage, CopyIntoTable, parse_copy
from engine.sql.statement_bounds import bounded_tokens, check_size, check_tokens
from engine.sql.tokens import first_word, tokenize, tokens_reused
from engine.statements.copy_into_stage import plan_copy_into_stage
from engine.statements.copy_into_table import plan_copy_into_table
from engine.statements.file_formats import plan_file_format_statement
from engine.statements.grants import plan_grant_statement
from engine.statements.maintenance import plan_maintenance_statement
from engine.statements.processes import plan_process_statement
from engine.statements.query import plan_query
from engine.statements.roles import plan_role_statement
from engine.statements.stages import plan_stage_statement
from engine.statements.users import plan_user_statement

# Statements the engine answers itself start with one of these words; anything else goes
# straight to the SQL allowlist (saves tokenizing every SELECT four more times).
_SPECIAL_FIRST_WORDS = {
    "CREATE",
    "ALTER",
    "DROP",
    "SHOW",
    "LIST",
    "LS",
    "REMOVE",
    "RM",
    "PRESIGN",
    "DESC",
    "DESCRIBE",
    "GRANT",
    "REVOKE",
    "VACUUM",
    "COPY",
    "SET",  # SET ROLE, SET SECONDARY ROLES (any other SET goes on to the SQL allowlist)
    "KILL",  # KILL QUERY <id> (SHOW PROCESSLIST is a SHOW)
}


# Plans of plain SQL depend on its text alone, so repeated statements (BI dashboards, re-executed
# queries) skip parsing and checking. Long texts (bulk INSERT ... VALUES) are not kept.
_PLAN_CACHE_SIZE = 512
_PLAN_CACHE_MAX_CHARS = 4096


@functools.lru_cache(maxsize=_PLAN_CACHE_SIZE)
def _plan_checked_sql(sql: str) -> tuple[Plan, ...]:
    check_tokens(tokenize(sql))  # short, but may still nest too deeply
    return tuple(plan_query(tree) for tree in guard.validate(sql))


def plan_statements(sql: str) -> list[Plan]:
    """Every path (plain, special, prepared, Flight SQL query and update) plans through here,
    so the bounds are checked before any parser sees the text."""
    check_size(sql)
    bounded = False
    if first_word(sql) in _SPECIAL_FIRST_WORDS:
        tokens = bounded_tokens(sql)
        bounded = True
        with tokens_reused(sql, tokens):
            special = _plan_special(sql)
        if special is not None:
            return [special]
    if len(sql) <= _PLAN_CACHE_MAX_CHARS:
        return list(_plan_checked_sql(sql))
    if not bounded:
        check_tokens(tokenize(sql))
    return [plan_query(tree) for tree in guard.validate(sql)]


def _plan_special(sql: str) -> Plan | None:
    parsers = (
        plan_user_statement,
        plan_stage_statement,
        plan_file_format_statement,
        plan_role_statement,
        plan_grant_statement,
        plan_process_statement,
        plan_maintenance_statement,
    )
    for parse in parsers:
        special = parse(sql)
        if special is not None:
            return special
    copy = parse_copy(sql)
    if isinstance(copy, CopyIntoTable):
        return plan_copy_into_table(copy)
    if isinstance(copy, CopyIntoStage):
        return plan_copy_into_stage(copy)
    return None
