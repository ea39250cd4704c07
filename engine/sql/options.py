"""Option lists: ``NAME = ( KEY = value, ... )`` in CREATE STAGE, COPY and FILE_FORMAT clauses."""

from __future__ import annotations

from sqlglot.tokens import TokenType

from engine.sql.tokens import TokenCursor


def parse_options_list(cur: TokenCursor, what: str) -> dict[str, str]:
    cur.accept_type(TokenType.EQ)
    cur.expect_type(TokenType.L_PAREN, f"'(' after {what}")
    options: dict[str, str] = {}
    while not cur.accept_type(TokenType.R_PAREN):
        key = cur.identifier(f"an option name in {what}").upper()
        cur.expect_type(TokenType.EQ, f"'=' after {key}")
        options[key] = cur.option_value()
        cur.accept_type(TokenType.COMMA)
    return options
