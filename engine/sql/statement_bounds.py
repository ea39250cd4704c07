"""Limits a statement meets before any parser works on it (security.md: statement bounds).

The order is what makes them cheap: the byte size is checked before anything reads the text;
the token count and bracket depth are checked on sqlglot's tokens (the tokenizer is linear, about
5 us per token) before sqlglot's parser, which costs about 20 us per token end to end and recurses
once per nesting level.
"""

from __future__ import annotations

from sqlglot.tokens import Token, TokenType

from engine.errors import StatementRejected
from engine.sql.guard import MAX_SQL_BYTES
from engine.sql.tokens import tokenize

# About 3 s of parsing and checking; a 10,000-row, 4-column INSERT ... VALUES is 100,003 tokens.
MAX_TOKENS = 150_000
# Brackets of any kind: '(', '[', '{'. sqlglot itself runs out of stack at 40-100 levels depending
# on what nests (that still ends as "nested too deeply"); past this depth it is never tried.
MAX_NESTING = 64

_OPENERS = frozenset({TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE})
_CLOSERS = frozenset({TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE})


def check_size(sql: str) -> None:
    """Refuse a statement over MAX_SQL_BYTES of UTF-8 before any work is spent on it."""
    # len() first: a 100 MB text is refused without encoding it.
    if len(sql) > MAX_SQL_BYTES or len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        raise StatementRejected(f"Statement is longer than {MAX_SQL_BYTES} bytes")


def check_tokens(tokens: list[Token]) -> None:
    """Refuse more tokens, or deeper brackets, than the parser may be given."""
    if len(tokens) > MAX_TOKENS:
        raise StatementRejected(f"Statement too complex: {len(tokens)} tokens (limit {MAX_TOKENS})")
    depth = 0
    for tok in tokens:
        if tok.token_type in _OPENERS:
            depth += 1
            if depth > MAX_NESTING:
                raise StatementRejected(
                    f"Statement is nested too deeply: more than {MAX_NESTING} levels of brackets"
                )
        elif tok.token_type in _CLOSERS and depth:
            depth -= 1


def bounded_tokens(sql: str) -> list[Token]:
    """``sql``'s tokens, once its size, token count and nesting are known to be within bounds."""
    check_size(sql)
    tokens = tokenize(sql)
    check_tokens(tokens)
    return tokens
