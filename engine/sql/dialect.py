"""A DuckDB dialect that understands Databend-style stage references (``@~/x.csv``, ``@s1/dir/``).

Stock DuckDB parsing reads ``@~/x.csv`` as the ``@`` (abs) operator applied to garbage, and
``FROM '@s1/x.csv'`` as a quoted table name. :class:`StageDuckDB` turns both into a
:class:`StageRef` node inside an ``exp.Table``, so the guard can allow it and the engine can
swap it for a registered Arrow object before the SQL is regenerated for DuckDB.

Options written after a stage, as in
``FROM @~/p/ (FILE_FORMAT => 'CSV', PATTERN => '.*[.]csv', FILES => ('a.csv', 'b.csv')) t``,
are kept on ``StageRef.args["options"]`` as a list of ``exp.PropertyEQ`` nodes whose ``this``
is an upper-cased ``exp.Var`` (the option name) and whose ``expression`` is the parsed value
(``exp.Literal``, ``exp.Tuple`` of literals, ``exp.Column`` for a bare word, ...). Use
:func:`stage_options` for a ``{NAME: value}`` view.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokens import TokenType

# Tokens that end an unquoted stage reference even without whitespace: stages can be joined
# with ',', appear inside a subquery ')', carry an options list '(' or end the statement ';'.
_STOP_TOKENS = (TokenType.COMMA, TokenType.L_PAREN, TokenType.R_PAREN, TokenType.SEMICOLON)
# Quoted pieces inside an unquoted reference would make the raw text ambiguous; the quoted
# form '@s/a b/x.csv' exists for paths that need unusual characters.
_QUOTED_TOKENS = frozenset({TokenType.STRING, TokenType.IDENTIFIER, TokenType.HEREDOC_STRING})


class StageRef(exp.Expression):
    """A stage reference in table position.

    Args (``self.args``):
        this: the raw reference text without quotes, e.g. ``'@~/dir/f.csv'`` or ``'@#orders'``
            (a plain ``str``; ``ref.text`` and ``ref.name`` return it).
        options: optional list of ``exp.PropertyEQ(this=exp.Var(NAME), expression=value)``.
    """

    arg_types: ClassVar[dict[str, bool]] = {"this": True, "options": False}

    # Shadows Expression.text(key); sqlglot reaches a node's text through .name, kept working below.
    @property
    def text(self) -> str:  # type: ignore[override]
        return str(self.args["this"])

    @property
    def name(self) -> str:
        return str(self.args["this"])


class StageDuckDBParser(DuckDBParser):
    def _warn_unsupported(self) -> None:
        # Statements sqlglot cannot model become exp.Command, which the guard always refuses with
        # its own message; a log line per refused statement would only be noise.
        return None

    def _parse_column(self) -> Any:
        # Databend's VARIANT paths on a positional column: ``$1:a``, ``$1:a.b``, ``t.$1:a[0]::INT``,
        # ``$1['c']``. They become JSON extraction (``"$1" -> '$.a'``) on the row of an NDJSON or
        # Parquet file (engine.statements.query gives those a JSON ``$1``).
        column = super()._parse_column()
        if not _is_positional(column.this if isinstance(column, exp.Bracket) else column):
            return column
        if isinstance(column, exp.Bracket) and _string_keys(column):
            path: list[exp.JSONPathPart] = [exp.JSONPathRoot()]
            path += [exp.JSONPathKey(this=key.name, quoted=True) for key in column.expressions]
            column = self.expression(
                exp.JSONExtract(
                    this=column.this, expression=exp.JSONPath(expressions=path), variant_extract=True
                )
            )
        after = self._next
        if (
            self._match(TokenType.COLON, advance=False)
            and after is not None
            and (after.token_type == TokenType.IDENTIFIER or _PATH_KEY.match(after.text))
        ):
            column = self._parse_colon_as_variant_extract(column)
        return column

    def _parse_table_parts(
        self,
        schema: bool = False,
        is_db_reference: bool = False,
        wildcard: bool = False,
        fast: bool = False,
    ) -> Any:
        curr = self._curr
        if not fast and curr is not None and _starts_stage(curr.token_type, curr.text):
            return self.expression(exp.Table(this=self._parse_stage_ref()))
        return super()._parse_table_parts(
            schema=schema, is_db_reference=is_db_reference, wildcard=wildcard, fast=fast
        )

    def _parse_file_location(self) -> Any:
        # COPY ... FROM @stage: parsed so the guard can name the statement it refuses.
        curr = self._curr
        if curr is not None and _starts_stage(curr.token_type, curr.text):
            return self.expression(exp.Table(this=self._parse_stage_ref()))
        return super()._parse_file_location()

    def _parse_stage_ref(self) -> StageRef:
        start = self._curr
        assert start is not None  # the caller checked
        self._advance()
        if start.token_type == TokenType.STRING:
            text = start.text
        else:
            if not self._is_connected():
                self.raise_error("Expected a stage name right after '@'")
            while self._curr and self._is_connected() and not self._match_set(_STOP_TOKENS, advance=False):
                if self._curr.token_type in _QUOTED_TOKENS:
                    self.raise_error("Quotes are not allowed inside an unquoted stage reference")
                self._advance_any(ignore_reserved=True)
            text = self._find_sql(start, self._prev)
        node = StageRef(this=text)
        options = self._parse_stage_options()
        if options is not None:
            node.set("options", options)
        return node

    def _parse_stage_options(self) -> list[exp.Expression] | None:
        # Only '( NAME => ...' is an options list; anything else is left for the caller.
        if not (
            self._match(TokenType.L_PAREN, advance=False)
            and self._next is not None
            and self._next.token_type in (TokenType.VAR, TokenType.FILE_FORMAT, TokenType.FORMAT)
            and self._index + 2 < len(self._tokens)
            and self._tokens[self._index + 2].token_type == TokenType.FARROW
        ):
            return None
        self._advance()  # (
        options: list[exp.Expression] = []
        while True:
            name_token = self._curr
            if name_token is None:
                self.raise_error("Unterminated stage options list")
                break
            self._advance_any(ignore_reserved=True)
            if not self._match(TokenType.FARROW):
                self.raise_error("Expected '=>' after a stage option name")
            value = self._parse_bitwise()
            if value is None:
                self.raise_error(f"Expected a value for stage option {name_token.text}")
            if name_token.text.upper() == "FILES" and isinstance(value, exp.Paren):
                value = exp.Tuple(expressions=[value.this])  # FILES => ('a.csv'): a list of one
            options.append(
                self.expression(exp.PropertyEQ(this=exp.var(name_token.text.upper()), expression=value))
            )
            if not self._match(TokenType.COMMA):
                break
        self._match_r_paren()
        return options


_PATH_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _is_positional(node: exp.Expr | None) -> bool:
    """``$1`` or ``t.$1``: a staged file's positional column (a parameter outside stage queries)."""
    if isinstance(node, exp.Column) and node.args.get("table") is not None:
        node = node.this
    return isinstance(node, exp.Placeholder) and str(node.args.get("this") or "").isdigit()


def _string_keys(bracket: exp.Bracket) -> bool:
    keys = bracket.expressions
    return bool(keys) and all(isinstance(k, exp.Literal) and k.is_string for k in keys)


def _starts_stage(token_type: TokenType, text: str) -> bool:
    if token_type == TokenType.PARAMETER:
        return text == "@"
    return token_type == TokenType.STRING and text.startswith("@")


def _stage_ref_sql(generator: DuckDBGenerator, expression: StageRef) -> str:
    # For messages and debugging only: the engine replaces StageRefs before DuckDB runs SQL.
    text = expression.text
    shown = generator.sql(exp.Literal.string(text)) if any(ch.isspace() for ch in text) else text
    options = expression.args.get("options")
    if options:
        shown += " (" + ", ".join(f"{o.name} => {generator.sql(o, 'expression')}" for o in options) + ")"
    return shown


class StageDuckDBGenerator(DuckDBGenerator):
    # sqlglot finds `<key>_sql` methods only for its own node classes, so register via TRANSFORMS.
    TRANSFORMS = {**DuckDBGenerator.TRANSFORMS, StageRef: _stage_ref_sql}


class StageDuckDBTokenizer(DuckDB.Tokenizer):
    # sqlglot reads '?::' as one operator (Databricks' try-cast); in DuckDB '?::INTEGER' is a
    # placeholder cast to INTEGER, so '?' and '::' stay separate tokens.
    KEYWORDS = {text: kind for text, kind in DuckDB.Tokenizer.KEYWORDS.items() if text != "?::"}


class StageDuckDB(DuckDB):
    Tokenizer = StageDuckDBTokenizer
    Parser = StageDuckDBParser
    Generator = StageDuckDBGenerator


def stage_refs(tree: exp.Expr) -> list[StageRef]:
    """Every stage reference in ``tree``, in source order (outer query first)."""
    return list(tree.find_all(StageRef, bfs=False))


def stage_options(ref: StageRef) -> dict[str, exp.Expression]:
    """``{UPPER_NAME: value expression}`` of a stage's options list; later duplicates win."""
    found: dict[str, exp.Expression] = {}
    for option in ref.args.get("options") or []:
        found[option.name.upper()] = option.expression
    return found
