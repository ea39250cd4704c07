"""Limits a statement meets before any parser works on it (security.md: statement bounds).

The order is what makes them cheap: the byte size is checked before anything reads the text;
the token count and bracket depth are checked on sqlglot's tokens (the tokenizer is linear, about
5 us per token) before sqlglot's parser, which costs about 20 us per token end to end and recurses
once per nesting level.
"""

from __future__ import annotations

import re

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
    """Refuse a statement over MAX_SQL_BYTES of UTF-8 before any work is spent on it, then one whose
    block comments the guard and DuckDB could read differently (:func:`check_comments`)."""
    # len() first: a 100 MB text is refused without encoding it.
    if len(sql) > MAX_SQL_BYTES or len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        raise StatementRejected(f"Statement is longer than {MAX_SQL_BYTES} bytes")
    check_comments(sql)


# What starts a literal, identifier or comment; the text between them is plain SQL.
_LEXEME_START = re.compile(r"""'|"|--|/\*|\$""")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_E_STRING_END = re.compile(r"\\.|''|'", re.S)
_LINE_BREAK = re.compile(r"[\r\n]")


def check_comments(sql: str) -> None:
    """Refuse a block comment that holds '/*' (a nested comment) or never ends.

    DuckDB's scanner nests block comments; sqlglot's tokenizer nests them too, but not in the same
    places ('/*/*' opens one comment for sqlglot, two for DuckDB). Where they disagree the two see a
    different end of the comment, so different statements in the same text. Refusing every comment
    with an opener inside leaves no text they could split differently. One linear scan: string
    literals ('...', E'...'), quoted names ("...") and dollar-quoted strings ($tag$...$tag$) are
    skipped as DuckDB reads them, so '/*' inside them is not a comment.
    """
    pos, n = 0, len(sql)
    while (found := _LEXEME_START.search(sql, pos)) is not None:
        at, mark = found.start(), found.group()
        if mark == "/*":
            end = sql.find("*/", at + 2)
            if end < 0:
                raise StatementRejected("Unterminated block comment: a '/*' has no closing '*/'")
            if sql.find("/*", at + 2, end + 1) >= 0:
                raise StatementRejected(
                    "Nested block comments are not allowed: a '/* ... */' comment contains '/*'"
                )
            pos = end + 2
        elif mark == "--":
            brk = _LINE_BREAK.search(sql, at + 2)
            pos = n if brk is None else brk.end()
        elif mark == '"':
            pos = _quoted_end(sql, at, '"')
        elif mark == "'":
            escaped = at > 0 and sql[at - 1] in "eE" and (at < 2 or not _word_char(sql[at - 2]))
            pos = _e_string_end(sql, at) if escaped else _quoted_end(sql, at, "'")
        else:  # '$': a dollar quote unless it is a parameter ($1) or inside a name (a$b)
            tag = _DOLLAR_TAG.match(sql, at)
            if tag is None or (at > 0 and _word_char(sql[at - 1])):
                pos = at + 1
                continue
            end = sql.find(tag.group(), tag.end())
            pos = n if end < 0 else end + len(tag.group())


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _quoted_end(sql: str, start: int, quote: str) -> int:
    """Just after the literal or name opened at ``start`` (a doubled quote stands for one)."""
    pos = start + 1
    while True:
        end = sql.find(quote, pos)
        if end < 0:
            return len(sql)
        if not sql.startswith(quote, end + 1):
            return end + 1
        pos = end + 2


def _e_string_end(sql: str, start: int) -> int:
    """Just after the E'...' literal opened at ``start`` (backslash escapes, doubled quotes)."""
    pos = start + 1
    while (found := _E_STRING_END.search(sql, pos)) is not None:
        if found.group() == "'":
            return found.end()
        pos = found.end()
    return len(sql)


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
