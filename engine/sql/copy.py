"""Parsing COPY INTO: load (``COPY INTO t FROM @stage``) and unload (``COPY INTO @stage FROM t``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.tokens import TokenType

from engine.errors import StatementRejected
from engine.sql import guard
from engine.sql.dialect import StageRef, stage_refs
from engine.sql.options import parse_options_list
from engine.sql.tokens import TokenCursor
from stages.formats import normalize_format_options
from stages.paths import parse_stage_ref

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_VALIDATION_RE = re.compile(r"^(RETURN_ERRORS|RETURN_ALL_ERRORS|RETURN_(\d+)_ROWS)$")
MAX_FILES_LIMIT = 15000


@dataclass
class CopyIntoTable:
    table: list[str]
    columns: list[str] | None
    source: str
    transform_sql: str | None = None
    files: list[str] | None = None
    pattern: str | None = None
    file_format: dict[str, str] = field(default_factory=dict)
    on_error: str = "ABORT"
    max_files: int | None = None
    size_limit: int | None = None
    purge: bool = False
    force: bool = False
    return_failed_only: bool = False
    column_match_mode: str = "CASE_INSENSITIVE"
    validation_mode: str | None = None
    given: set[str] = field(default_factory=set)  # the options the statement spells out


@dataclass
class CopyIntoStage:
    target: str
    source_table: list[str] | None
    source_query: str | None
    file_format: dict[str, str] = field(default_factory=dict)
    single: bool = False
    max_file_size: int = 64 * 1024 * 1024
    overwrite: bool = False
    use_raw_path: bool = False
    include_query_id: bool = True
    detailed_output: bool = False


def _bool(cur: TokenCursor, name: str) -> bool:
    cur.expect_type(TokenType.EQ, f"'=' after {name}")
    value = cur.option_value().upper()
    if value not in ("TRUE", "FALSE"):
        raise StatementRejected(f"{name} must be TRUE or FALSE, got {value}")
    return value == "TRUE"


def _int(cur: TokenCursor, name: str) -> int:
    cur.expect_type(TokenType.EQ, f"'=' after {name}")
    value = cur.option_value()
    if not value.isdigit():
        raise StatementRejected(f"{name} must be a whole number, got {value}")
    return int(value)


def _word(cur: TokenCursor, name: str) -> str:
    cur.expect_type(TokenType.EQ, f"'=' after {name}")
    return cur.option_value().strip("'").upper()


def _file_list(cur: TokenCursor, name: str) -> list[str]:
    cur.expect_type(TokenType.EQ, f"'=' after {name}")
    cur.expect_type(TokenType.L_PAREN, f"'(' after {name} =")
    files = []
    while not cur.accept_type(TokenType.R_PAREN):
        files.append(cur.string("a quoted file name"))
        cur.accept_type(TokenType.COMMA)
    return files


def _pattern(cur: TokenCursor, name: str) -> str:
    cur.expect_type(TokenType.EQ, f"'=' after {name}")
    return cur.string("PATTERN as a quoted regular expression")


def _max_files(cur: TokenCursor, name: str) -> int:
    value = _int(cur, name)
    if not 0 < value < MAX_FILES_LIMIT:
        raise StatementRejected(f"MAX_FILES must be between 1 and {MAX_FILES_LIMIT - 1}")
    return value


def _column_match_mode(cur: TokenCursor, name: str) -> str:
    value = _word(cur, name)
    if value not in ("CASE_SENSITIVE", "CASE_INSENSITIVE"):
        raise StatementRejected("COLUMN_MATCH_MODE must be one of CASE_SENSITIVE | CASE_INSENSITIVE")
    return value


def _validation_mode(cur: TokenCursor, name: str) -> str:
    value = _word(cur, name)
    if not _VALIDATION_RE.match(value):
        raise StatementRejected("VALIDATION_MODE must be RETURN_ERRORS, RETURN_ALL_ERRORS or RETURN_<n>_ROWS")
    return value


_OptionReader = Callable[[TokenCursor, str], object]
# How each option's value is read; it sets the field of its name in lower case. Each reader checks
# the value as it reads it, so the first bad option is the one reported.
_LOAD_OPTIONS: dict[str, _OptionReader] = {
    "FILES": _file_list,
    "PATTERN": _pattern,
    "FILE_FORMAT": parse_options_list,
    "ON_ERROR": _word,
    "MAX_FILES": _max_files,
    "SIZE_LIMIT": _int,
    "COLUMN_MATCH_MODE": _column_match_mode,
    "VALIDATION_MODE": _validation_mode,
    **dict.fromkeys(("PURGE", "FORCE", "RETURN_FAILED_ONLY"), _bool),
}
_UNLOAD_OPTIONS: dict[str, _OptionReader] = {
    "FILE_FORMAT": parse_options_list,
    "MAX_FILE_SIZE": _int,
    **dict.fromkeys(("SINGLE", "OVERWRITE", "USE_RAW_PATH", "INCLUDE_QUERY_ID", "DETAILED_OUTPUT"), _bool),
}
_UNLOAD_UNSUPPORTED = ("PARTITION", "VALIDATION_MODE")


def _read_options(
    cur: TokenCursor,
    into: CopyIntoTable | CopyIntoStage,
    options: Mapping[str, _OptionReader],
    unsupported: tuple[str, ...] = (),
) -> None:
    """Read ``NAME = value`` options to the end of the statement into the fields of ``into``."""
    while not cur.at_end():
        name = cur.identifier("a COPY option").upper()
        if name in unsupported:
            raise StatementRejected(f"COPY INTO @stage option {name} is not supported")
        if name not in options:
            raise StatementRejected(f"Unknown COPY option: {name}")
        setattr(into, name.lower(), options[name](cur, name))
        if isinstance(into, CopyIntoTable):
            into.given.add(name)


def _qualified_name(cur: TokenCursor) -> list[str]:
    parts = [cur.identifier("a table name")]
    while cur.accept_type(TokenType.DOT):
        parts.append(cur.identifier("a table name"))
    if len(parts) > 3 or not all(_IDENT.match(p) for p in parts):
        raise StatementRejected(f"Invalid table name {'.'.join(parts)!r}")
    return parts


def _parenthesised_sql(cur: TokenCursor) -> str:
    open_tok = cur.expect_type(TokenType.L_PAREN, "'('")
    depth = 1
    while depth:
        tok = cur.advance()
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
    return cur.sql[open_tok.end + 1 : cur.tokens[cur.pos - 1].start]


def parse_copy(sql: str) -> CopyIntoTable | CopyIntoStage | None:
    cur = TokenCursor(sql)
    if not cur.accept("COPY", "INTO"):
        return None
    tok = cur.peek()
    if tok is not None and (
        tok.text == "@" or (tok.token_type == TokenType.STRING and tok.text.startswith("@"))
    ):
        return _unload(cur)
    return _load(cur)


def _load(cur: TokenCursor) -> CopyIntoTable:
    table = _qualified_name(cur)
    columns = None
    if cur.peek() is not None and cur.peek().token_type == TokenType.L_PAREN:  # type: ignore[union-attr]
        cur.advance()
        columns = [cur.identifier("a column name")]
        while cur.accept_type(TokenType.COMMA):
            columns.append(cur.identifier("a column name"))
        cur.expect_type(TokenType.R_PAREN, "')' after the column list")
    cur.expect("FROM")
    load = CopyIntoTable(table=table, columns=columns, source="")
    nxt = cur.peek()
    if nxt is not None and nxt.token_type == TokenType.L_PAREN:
        load.transform_sql = _parenthesised_sql(cur)
        load.source = transform_stage(load.transform_sql)
    elif nxt is not None and nxt.token_type == TokenType.STRING and not nxt.text.startswith("@"):
        raise StatementRejected(
            "COPY from a URL or path is not allowed: put the files in a stage and COPY INTO t FROM @stage"
        )
    else:
        load.source = cur.stage_ref()
    parse_stage_ref(load.source)
    _load_options(cur, load)
    return load


def transform_stage(sql: str) -> str:
    """The one stage a COPY transform's FROM clause reads, as the parser sees it (not a comment or a
    string that merely mentions one). The load resolves and reads exactly that stage."""
    trees = guard.parse_statements(sql)
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        raise StatementRejected("COPY transform must be one SELECT: (SELECT $1, $2 ... FROM @stage [alias])")
    select = trees[0]
    from_clause = select.args.get("from_")
    sources = [from_clause.this] if from_clause is not None else []
    sources += [join.this for join in select.args.get("joins") or []]
    staged = [s.this.text for s in sources if isinstance(s, exp.Table) and isinstance(s.this, StageRef)]
    if not staged:
        raise StatementRejected("COPY transform must select FROM a stage: (SELECT $1, ... FROM @stage)")
    if len(staged) > 1:
        raise StatementRejected(
            "COPY transform must read exactly one stage; "
            f"its FROM clause names {len(staged)}: {', '.join(staged)}"
        )
    if len(sources) > 1 or len(stage_refs(select)) > 1:
        raise StatementRejected("COPY transform must read exactly one stage and nothing else")
    return staged[0]


def _load_options(cur: TokenCursor, load: CopyIntoTable) -> None:
    _read_options(cur, load, _LOAD_OPTIONS)
    if load.file_format and "FORMAT_NAME" not in load.file_format:
        load.file_format = normalize_format_options(load.file_format)
    elif load.file_format:
        normalize_format_options(load.file_format)


def _unload(cur: TokenCursor) -> CopyIntoStage:
    target = cur.stage_ref()
    parse_stage_ref(target)
    cur.expect("FROM")
    nxt = cur.peek()
    if nxt is not None and nxt.token_type == TokenType.L_PAREN:
        unload = CopyIntoStage(target=target, source_table=None, source_query=_parenthesised_sql(cur))
    else:
        unload = CopyIntoStage(target=target, source_table=_qualified_name(cur), source_query=None)
    _read_options(cur, unload, _UNLOAD_OPTIONS, unsupported=_UNLOAD_UNSUPPORTED)
    if unload.file_format and "FORMAT_NAME" not in unload.file_format:
        unload.file_format = normalize_format_options(unload.file_format)
    return unload


def parse_transform(sql: str) -> exp.Select:
    """The SELECT of ``COPY INTO t FROM (SELECT ... FROM @stage)``: a projection of one stage only."""
    trees = guard.validate(sql)
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        raise StatementRejected("COPY transform must be one SELECT: (SELECT $1, $2 ... FROM @stage [alias])")
    select = trees[0]
    if len(stage_refs(select)) != 1 or select.args.get("joins"):
        raise StatementRejected("COPY transform must read exactly one stage and nothing else")
    for clause in ("where", "group", "order", "having", "qualify", "limit", "distinct"):
        if select.args.get(clause):
            raise StatementRejected(
                f"COPY transform supports only a projection: {clause.upper()} is not allowed"
            )
    if any(isinstance(node, exp.AggFunc | exp.Window) for node in select.find_all(exp.AggFunc, exp.Window)):
        raise StatementRejected(
            "COPY transform supports only a projection: aggregates and windows are not allowed"
        )
    return select
