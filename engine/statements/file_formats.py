"""File format statements: CREATE [OR REPLACE] FILE FORMAT, DROP FILE FORMAT, SHOW FILE FORMATS.

The formats themselves live in :mod:`engine.catalog.file_formats`.
"""

from __future__ import annotations

from sqlglot.tokens import TokenType

from engine.catalog.file_formats import SHOW_SCHEMA
from engine.errors import StatementRejected
from engine.plans import Plan, RunContext, static_query, static_update
from engine.sql.tokens import TokenCursor
from stages.formats import FORMAT_TYPES, normalize_format_options
from stages.paths import STAGE_NAME_RE


def plan_file_format_statement(sql: str) -> Plan | None:
    cur = TokenCursor(sql)
    if cur.words_ahead("CREATE", "FILE", "FORMAT") or cur.words_ahead(
        "CREATE", "OR", "REPLACE", "FILE", "FORMAT"
    ):
        return _create(cur)
    if cur.accept("DROP", "FILE", "FORMAT"):
        if_exists = cur.accept("IF", "EXISTS")
        name = _format_name(cur)
        cur.finish()
        return static_update(
            lambda s: s.engine.file_formats.drop(name, s.user, s.is_admin, if_exists=if_exists),
        )
    if cur.accept("SHOW", "FILE", "FORMATS"):
        cur.finish()
        return static_query(SHOW_SCHEMA, lambda s: s.engine.file_formats.list())
    return None


def _format_name(cur: TokenCursor) -> str:
    name = cur.identifier("a file format name").lower()
    if not STAGE_NAME_RE.match(name):
        raise StatementRejected(f"Invalid file format name {name!r}")
    if name.upper() in FORMAT_TYPES:
        raise StatementRejected(f"{name} is a built-in format type and cannot name a file format")
    return name


def _create(cur: TokenCursor) -> Plan:
    cur.expect("CREATE")
    replace = cur.accept("OR", "REPLACE")
    cur.expect("FILE", "FORMAT")
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    if replace and if_not_exists:
        raise StatementRejected("CREATE OR REPLACE FILE FORMAT cannot be combined with IF NOT EXISTS")
    name = _format_name(cur)
    options: dict[str, str] = {}
    while not cur.at_end():
        key = cur.identifier("a file format option").upper()
        cur.expect_type(TokenType.EQ, f"'=' after {key}")
        options[key] = cur.option_value()
    if "TYPE" not in options:
        raise StatementRejected("CREATE FILE FORMAT needs TYPE = CSV | TSV | TEXT | NDJSON | PARQUET")
    normalized = normalize_format_options(options)

    def action(session: RunContext) -> None:
        session.engine.file_formats.create(
            name, normalized, session.user, session.is_admin, replace=replace, if_not_exists=if_not_exists
        )

    return static_update(action)
