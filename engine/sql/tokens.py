"""A small token cursor for the statements sqlglot does not model (users, stages, LIST, PRESIGN...).

Tokens come from sqlglot's DuckDB tokenizer, so quoting and escaping rules match the rest of
the engine; the raw SQL text is kept to rebuild stage references exactly as written.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from engine.errors import StatementRejected
from engine.sql.dialect import StageDuckDB

_DIALECT = StageDuckDB()  # its tokenizer: the one the guard's parser reads
_WORD_TYPES = {TokenType.VAR, TokenType.IDENTIFIER}
# The tokens of the statement being planned on this thread: the special-statement parsers each
# open a TokenCursor on the same text, and a 1 MiB statement should be tokenized once, not five times.
_planning = threading.local()


def tokenize(sql: str) -> list[Token]:
    shared = getattr(_planning, "tokens", None)
    if shared is not None and shared[0] is sql:
        return list(shared[1])  # a copy: TokenCursor drops trailing ';' from its list
    try:
        return list(_DIALECT.tokenize(sql))
    except TokenError as exc:
        raise StatementRejected(f"Cannot read statement: {exc}") from None


@contextmanager
def tokens_reused(sql: str, tokens: list[Token]) -> Iterator[None]:
    """While planning ``sql`` on this thread, :func:`tokenize` of that same text returns ``tokens``."""
    outer = getattr(_planning, "tokens", None)  # a statement planned while planning another
    _planning.tokens = (sql, tokens)
    try:
        yield
    finally:
        _planning.tokens = outer


# -- the first word, without tokenizing ----------------------------------------------------------
# Only '*' and '/' matter inside a block comment; one character class cannot backtrack.
_COMMENT_MARK = re.compile(r"[*/]")
_LINE_BREAK = re.compile(r"[\r\n]")


def first_word(sql: str) -> str:
    """The statement's first word, upper-cased ('' when it starts with anything else).

    Linear in the length of ``sql``. Skips what sqlglot's DuckDB tokenizer skips before its first
    token (Unicode whitespace, ``--`` comments ending at a line break, nested ``/* */`` comments),
    so the word is the first token every later parser sees. An unterminated comment gives ''.
    """
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i):
            i = _line_comment_end(sql, i + 2)
        elif sql.startswith("/*", i):
            end = _block_comment_end(sql, i)
            if end is None:
                return ""
            i = end
        else:
            break
    j = i
    while j < n and sql[j].isascii() and (sql[j].isalnum() or sql[j] == "_"):
        j += 1
    return sql[i:j].upper()


def _line_comment_end(sql: str, start: int) -> int:
    # One search for either break: str.find per character would rescan the rest for a missing '\r'.
    brk = _LINE_BREAK.search(sql, start)
    return brk.start() if brk is not None else len(sql)


def _block_comment_end(sql: str, start: int) -> int | None:
    """Index just after the comment opened at ``start``, or None if it never closes.

    Mirrors sqlglot's scan, quirks included: a '/*' right after an opener does not nest, and the
    '/' of a closing '*/' can begin a new opener ('*/*'). DuckDB's own scanner nests slightly
    differently; that does not matter here because DuckDB only ever runs SQL regenerated from
    sqlglot's reading, and every statement is read by sqlglot's tokenizer after this word.
    """
    n = len(sql)
    depth, pos, may_open = 1, start + 2, False
    while pos < n - 1:
        if may_open and sql.startswith("/*", pos):
            depth, pos, may_open = depth + 1, pos + 2, False
            continue
        if sql.startswith("*/", pos):
            depth -= 1
            if depth == 0:
                return pos + 2
        mark = _COMMENT_MARK.search(sql, pos + 1)
        if mark is None:
            return None
        pos, may_open = mark.start(), True
    return None


class TokenCursor:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        tokens = tokenize(sql)
        # A trailing ';' is harmless; anything after it is a second statement.
        while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
            tokens.pop()
        self.tokens = tokens
        self.pos = 0

    # -- looking -----------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def is_word(self, *words: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        if tok is None or tok.token_type == TokenType.STRING:
            return False
        return tok.text.upper() in words and tok.token_type != TokenType.IDENTIFIER

    def words_ahead(self, *words: str) -> bool:
        return all(self.is_word(w, offset=i) for i, w in enumerate(words))

    # -- consuming ---------------------------------------------------------------
    def advance(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise StatementRejected(f"Unexpected end of statement: {self.sql.strip()}")
        self.pos += 1
        return tok

    def accept(self, *words: str) -> bool:
        if self.words_ahead(*words):
            self.pos += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            got = self.peek()
            raise StatementRejected(
                f"Expected {' '.join(words)} but found {got.text if got else 'end of statement'!r}"
            )

    def accept_type(self, token_type: TokenType) -> Token | None:
        tok = self.peek()
        if tok is not None and tok.token_type == token_type:
            self.pos += 1
            return tok
        return None

    def expect_type(self, token_type: TokenType, what: str) -> Token:
        tok = self.accept_type(token_type)
        if tok is None:
            got = self.peek()
            raise StatementRejected(f"Expected {what} but found {got.text if got else 'end of statement'!r}")
        return tok

    def identifier(self, what: str = "a name") -> str:
        tok = self.peek()
        if tok is None or tok.token_type in (TokenType.STRING, TokenType.NUMBER) or not tok.text:
            raise StatementRejected(f"Expected {what} but found {tok.text if tok else 'end of statement'!r}")
        if tok.token_type not in _WORD_TYPES and not tok.text.replace("_", "a").isalnum():
            raise StatementRejected(f"Expected {what} but found {tok.text!r}")
        self.pos += 1
        return tok.text

    def string(self, what: str = "a quoted string") -> str:
        return self.expect_type(TokenType.STRING, what).text

    def number(self, what: str = "a number") -> int:
        tok = self.expect_type(TokenType.NUMBER, what)
        try:
            return int(tok.text)
        except ValueError:
            raise StatementRejected(f"Expected {what} but found {tok.text!r}") from None

    def stage_ref(self) -> str:
        """Consume ``@name/path`` (tokens written without spaces) or a quoted '@...' string."""
        tok = self.peek()
        if tok is not None and tok.token_type == TokenType.STRING and tok.text.startswith("@"):
            self.pos += 1
            return tok.text
        if tok is None or tok.text != "@":
            raise StatementRejected(
                f"Expected a stage (@name or @~) but found {tok.text if tok else 'end'!r}"
            )
        start, end = tok.start, tok.end
        self.pos += 1
        while (
            (nxt := self.peek()) is not None and nxt.start == end + 1 and nxt.token_type != TokenType.STRING
        ):
            end = nxt.end
            self.pos += 1
        return self.sql[start : end + 1]

    def option_value(self) -> str:
        """A value after ``KEY =``: string, number, word, or a parenthesised list kept as text."""
        tok = self.advance()
        if tok.token_type == TokenType.L_PAREN:
            depth, start = 1, tok.start
            while depth:
                inner = self.advance()
                if inner.token_type == TokenType.L_PAREN:
                    depth += 1
                elif inner.token_type == TokenType.R_PAREN:
                    depth -= 1
            return self.sql[start : self.tokens[self.pos - 1].end + 1]
        if tok.token_type == TokenType.DASH:
            return "-" + self.advance().text
        return tok.text

    def finish(self) -> None:
        if not self.at_end():
            raise StatementRejected(f"Unexpected text at the end of the statement: {self.peek().text!r}")  # type: ignore[union-attr]
