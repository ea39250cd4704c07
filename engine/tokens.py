"""A small token cursor for the statements sqlglot does not model (users, stages, LIST, PRESIGN...).

Tokens come from sqlglot's DuckDB tokenizer, so quoting and escaping rules match the rest of
the engine; the raw SQL text is kept to rebuild stage references exactly as written.
"""

from __future__ import annotations

from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from engine.errors import StatementRejected

_DIALECT = DuckDB()
_WORD_TYPES = {TokenType.VAR, TokenType.IDENTIFIER}


def tokenize(sql: str) -> list[Token]:
    try:
        return list(_DIALECT.tokenize(sql))
    except TokenError as exc:
        raise StatementRejected(f"Cannot read statement: {exc}") from None


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
