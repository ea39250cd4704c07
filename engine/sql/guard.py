"""The statement allowlist: what user SQL may do before DuckDB sees it (docs/security.md §3).

The locked DuckDB still lets SQL read its own database file, WAL and temp directory, create
instance-wide secrets and ATTACH ':memory:' (security.md §1.3), so this module is a real layer,
not a convenience. It is an allowlist: a statement passes only if its root is a known-safe kind
and every node below it (CTEs, subqueries, lambdas, RETURNING, DEFAULT, CHECK) is acceptable;
every function it calls, as written and as regenerated, is on the reviewed list in
engine/sql/allowed_functions.py. DuckDB later runs only :func:`regenerate` output, one statement at a
time, never the user's text, with reads of catalog views filtered (engine/catalog_views.py).
"""

from __future__ import annotations

import re
import threading

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError
from sqlglot.tokens import Token, TokenType

from engine.errors import StatementRejected
from engine.names import RESERVED_PREFIXES
from engine.sql.allowed_functions import ALLOWED_FUNCTIONS, SPECIAL_FORMS, TYPE_NAMES
from engine.sql.catalog_policy import check_object_name_literal, check_table_catalog
from engine.sql.catalog_views import hide_reserved_catalog
from engine.sql.dialect import StageDuckDB, StageRef
from engine.sql.explain import EXPLAINABLE, Explain, explain_node

MAX_SQL_BYTES = 1_048_576

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME_TOKEN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
# 'FROM main.csv' is a replacement scan of ./main.csv in DuckDB, not a table 'csv' in schema 'main'.
_FILE_SUFFIXES = frozenset(
    "csv tsv tbl txt dat parquet parq json jsonl ndjson geojson db duckdb ddb sqlite sqlite3 arrow feather "
    "ipc avro orc xlsx xls gz gzip zst zstd lz4 snappy bz2 xz br brotli lance vortex blob wal".split()
)
# infer_schema and list_stage are answered by the engine (stage-aware, privilege-checked) and replaced
# by registered Arrow tables before DuckDB sees the statement.
_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "infer_schema", "list_stage"})
_TABLE_FUNCTIONS |= {"copy_history", "query_history"}  # answered too: engine.statements.system_functions
# What a statement may call: the reviewed allowlist (engine/sql/allowed_functions.py), never a deny list.
_CALLABLE = ALLOWED_FUNCTIONS | SPECIAL_FORMS
# Functions whose first argument names a catalog object: only a literal, which the literal check sees.
_NAMED_OBJECT_ARG = frozenset({"nextval", "currval", "setval"})
# sqlite_master and friends list every schema's objects with their CREATE text and no schema column
# to filter on; the PostgreSQL views that are allowed are filtered (engine/catalog_views.py).
_SYSTEM_VIEWS = frozenset(
    {
        "pg_settings",
        "pg_prepared_statements",
        "information_schema_settings",
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
    }
)
_SYSTEM_VIEW_RE = re.compile(r"^(duckdb_|pragma_|pg_settings)", re.I)
# Not the decision (that is the allowlist): known-dangerous names get a message saying why.
_FILE_FUNC_RE = re.compile(
    r"^(read_\w*|glob|sniff_csv|parquet_\w+|query|query_table|st_read\w*|iceberg_\w+|delta_\w+|"
    r"sqlite_\w+|postgres_\w+|mysql_\w+|arrow_scan\w*|pandas_scan|python_\w+|ducklake_\w+|http_\w+)$",
    re.I,
)
_DENY_FUNC_RE = re.compile(
    r"^(duckdb_\w+|pragma_\w*|json_execute_serialized_sql|json_serialize_sql|json_deserialize_sql|"
    r"getenv|current_setting|getvariable|set_variable|which_secret|load_\w+|enable_\w+|disable_\w+|"
    r"add_grammar\w*|remove_grammar\w*|register_\w+|checkpoint|force_checkpoint|write_log|"
    r"truncate_duckdb_logs|seq_scan|summary|test_all_types|test_vector_types|repeat_row|export_\w+|"
    r"import_\w+|copy_database|ui_\w+|to_json_serialized\w*)$",
    re.I,
)
_STAGE_OPTION_VALUES = (exp.Literal, exp.Boolean, exp.Null, exp.Column, exp.Identifier, exp.Var, exp.Neg)

_ROOTS: dict[type[exp.Expression], str] = {
    exp.Select: "SELECT",
    exp.SetOperation: "SELECT",
    exp.Values: "SELECT",
    exp.Describe: "SELECT",
    exp.Show: "SELECT",
    exp.Insert: "INSERT",
    exp.Update: "UPDATE",
    exp.Delete: "DELETE",
    exp.TruncateTable: "DELETE",
    exp.Merge: "MERGE_INTO",
    exp.Create: "CREATE",
    exp.Drop: "DROP",
    exp.Alter: "ALTER",
    exp.Transaction: "TRANSACTION",
    exp.Commit: "TRANSACTION",
    exp.Rollback: "TRANSACTION",
}
_DDL_KINDS = frozenset({"TABLE", "VIEW", "SCHEMA", "SEQUENCE", "INDEX"})
# Statement kinds that must never appear below the root (a COPY inside a CTE, a SET inside ...).
_NESTED_DENY: dict[type[exp.Expression], str] = {
    exp.Command: "",
    exp.Attach: "ATTACH",
    exp.Detach: "DETACH",
    exp.Install: "INSTALL",
    exp.Set: "SET",
    exp.Pragma: "PRAGMA",
    exp.Use: "USE",
    exp.Copy: "COPY",
    exp.Summarize: "SUMMARIZE",
    exp.Describe: "DESCRIBE",
    exp.Show: "SHOW",
    exp.Transaction: "BEGIN",
    exp.Commit: "COMMIT",
    exp.Rollback: "ROLLBACK",
    exp.Create: "CREATE",
    exp.Drop: "DROP",
    exp.Alter: "ALTER",
    exp.TruncateTable: "TRUNCATE",
    exp.Analyze: "ANALYZE",
}

_duck_lock = threading.Lock()
_duck = duckdb.connect(":memory:")  # private: only its parser is used, never user data


# -- parsing ---------------------------------------------------------------------------------
def parse_statements(sql: str) -> list[exp.Expression]:
    """Parse ``sql`` with the stage-aware dialect; every problem becomes ``StatementRejected``."""
    if "\x00" in sql:
        raise StatementRejected("Statement contains a NUL character")
    if len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        raise StatementRejected(f"Statement is longer than {MAX_SQL_BYTES} bytes")
    try:
        trees = sqlglot.parse(sql, read=StageDuckDB, error_level=ErrorLevel.IMMEDIATE)
    except ParseError as exc:
        raise StatementRejected(f"Cannot parse statement: {_describe_parse_error(exc)}") from None
    except TokenError as exc:
        raise StatementRejected(f"Cannot read statement: {_first_line(str(exc))}") from None
    except RecursionError:
        raise StatementRejected("Statement is nested too deeply") from None
    except (SqlglotError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # A parser crash is not a reason to let the statement through.
        raise StatementRejected(f"Cannot parse statement: {type(exc).__name__}") from None
    statements = [tree for tree in trees if isinstance(tree, exp.Expression)]
    if len(statements) != sum(tree is not None for tree in trees):
        raise StatementRejected("Cannot parse statement: unexpected parse result")
    if not statements:
        raise StatementRejected("Empty statement")
    return [explain_node(tree, parse_statements) for tree in statements]


_TOKEN_REPR = "<Token token_type: "


def _describe_parse_error(exc: ParseError) -> str:
    if not exc.errors:
        return _first_line(str(exc))
    err = exc.errors[0]
    text = _token_texts(str(err.get("description") or "syntax error").split("\n", 1)[0])
    if err.get("line") is not None:
        text += f" (line {err['line']}, column {err.get('col')})"
    return _first_line(text)


def _token_texts(description: str) -> str:
    """Show a Token repr embedded in a description as just its text: ``<Token ..., text: x, line: ..>``
    becomes ``'x'``. Found with str.find in one pass: the description quotes user text, and a regex
    with lazy groups went quadratic on many false starts."""
    out: list[str] = []
    pos = 0
    while (start := description.find(_TOKEN_REPR, pos)) >= 0:
        text_at = description.find(", text: ", start)
        line_at = description.find(", line: ", text_at) if text_at >= 0 else -1
        end = description.find(">", line_at) if line_at >= 0 else -1
        if end < 0:
            break
        out += [description[pos:start], "'", description[text_at + len(", text: ") : line_at], "'"]
        pos = end + 1
    out.append(description[pos:])
    return "".join(out)


def _first_line(text: str) -> str:
    # sqlglot decorates messages with ANSI underline codes and an excerpt on later lines.
    line = text.splitlines()[0] if text else ""
    return re.sub(r"\x1b\[[0-9;]*m", "", line)[:300]


# -- checking --------------------------------------------------------------------------------
def validate(sql: str) -> list[exp.Expression]:
    """Parse and check every statement before returning any, so a bad batch runs nothing."""
    statements = parse_statements(sql)
    for tree in statements:
        check_statement(tree)
    return statements


def check_statement(tree: exp.Expression) -> None:
    """Raise ``StatementRejected`` unless ``tree`` is an allowed statement all the way down."""
    if isinstance(tree, Explain):  # the inner statement's own error first, then whether it explains
        check_statement(tree.this)
        if not isinstance(tree.this, EXPLAINABLE):
            raise StatementRejected(f"EXPLAIN of {_statement_name(tree.this)} is not allowed")
        return
    try:
        _check_root(tree)
        for node in tree.walk():
            _check_node(node, tree)
    except RecursionError:
        raise StatementRejected("Statement is nested too deeply") from None


def _check_root(tree: exp.Expression) -> None:
    if not isinstance(tree, tuple(_ROOTS)):
        raise StatementRejected(f"Statement {_statement_name(tree)} is not allowed")
    if isinstance(tree, exp.Create | exp.Drop):
        kind = str(tree.args.get("kind") or "").upper()
        verb = "CREATE" if isinstance(tree, exp.Create) else "DROP"
        if kind not in _DDL_KINDS:
            raise StatementRejected(f"Statement {verb} {kind or '?'} is not allowed")
    if isinstance(tree, exp.Alter) and str(tree.args.get("kind") or "").upper() != "TABLE":
        raise StatementRejected(f"Statement ALTER {tree.args.get('kind') or '?'} is not allowed")
    if isinstance(tree, exp.Describe) and not isinstance(tree.this, exp.Table):
        raise StatementRejected("DESCRIBE is only allowed for a table")
    if isinstance(tree, exp.Show) and str(tree.name).upper() != "TABLES":
        raise StatementRejected(f"Statement SHOW {tree.name} is not allowed")
    if isinstance(tree, exp.Update) and not tree.expressions:
        # sqlglot reads DuckDB's 'UPDATE EXTENSIONS' as an UPDATE without SET.
        raise StatementRejected("UPDATE without SET is not allowed")


def _statement_name(tree: exp.Expr) -> str:
    for cls, name in _NESTED_DENY.items():
        if name and type(tree) is cls:
            return name
    if isinstance(tree, exp.Command):
        words = f"{tree.this} {tree.text('expression')}".upper().split() or ["?"]
        if words[0] not in {"CREATE", "DROP", "FORCE", "ALTER"}:
            return words[0][:40]
        skip = {"OR", "REPLACE", "PERSISTENT", "TEMP", "TEMPORARY", "IF", "NOT", "EXISTS"}
        return " ".join(words[:1] + [w for w in words[1:] if w not in skip][:1])[:60]
    first = tree.sql(dialect="duckdb").split(maxsplit=1)
    return first[0].upper()[:40] if first else type(tree).__name__.upper()


def _check_node(node: exp.Expr, root: exp.Expression) -> None:
    if node is not root and isinstance(node, tuple(_NESTED_DENY)) and not _is_column_drop(node, root):
        name = _statement_name(node)
        raise StatementRejected(f"Statement {name} is not allowed inside another statement")
    if isinstance(node, exp.HistoricalData | exp.Changes):
        # AT (VERSION => n) / AT (TIMESTAMP => ...) / BEFORE (...): time travel reads a table as it
        # was, outside any privilege check on the table as it is (catalog-home.md §5.2).
        clause = (
            f"{node.name} ({node.text('kind')} => ...)" if isinstance(node, exp.HistoricalData) else "CHANGES"
        )
        raise StatementRejected(f"Time travel is not allowed: {clause.upper()}")
    if isinstance(node, exp.Identifier):
        _check_identifier(node)
    elif isinstance(node, exp.Table):
        _check_table(node, root)
    elif isinstance(node, exp.Lateral) and isinstance(node.this, exp.Func):
        _check_table_function(node.this)
    elif isinstance(node, exp.Func):
        _check_function(node)
    elif isinstance(node, exp.Literal) and node.is_string:
        lowered = node.this.lower()
        if any(prefix in lowered for prefix in RESERVED_PREFIXES):
            # nextval('__stageflight.seq') and friends name catalog objects inside strings.
            raise StatementRejected(f"String {_short(node.this)!r} names a reserved object")
        if isinstance(node.parent, exp.From | exp.Join):
            raise StatementRejected(f"String {_short(node.this)!r} cannot be used as a table")
    elif isinstance(node, StageRef):
        _check_stage_ref(node)


def _is_column_drop(node: exp.Expr, root: exp.Expression) -> bool:
    # ALTER TABLE t DROP COLUMN c is modelled as an exp.Drop action inside the exp.Alter.
    return (
        isinstance(node, exp.Drop)
        and node.parent is root
        and isinstance(root, exp.Alter)
        and str(node.args.get("kind") or "").upper() == "COLUMN"
    )


def _check_identifier(ident: exp.Identifier) -> None:
    lowered = ident.name.lower()
    if not lowered.startswith(RESERVED_PREFIXES):
        return
    parent = ident.parent
    is_schema = ident.arg_key == "db" or (
        isinstance(parent, exp.Table)
        and isinstance(parent.parent, exp.Create | exp.Drop)
        and str(parent.parent.args.get("kind") or "").upper() == "SCHEMA"
    )
    raise StatementRejected(f"{'Schema' if is_schema else 'Name'} {ident.name} is reserved")


def _check_table(table: exp.Table, root: exp.Expression) -> None:
    this = table.this
    if isinstance(this, StageRef):
        if not _reads_table(table, root):
            raise StatementRejected(f"Stage {this.name} can only be read from (FROM, JOIN, USING)")
        return
    if isinstance(this, exp.Func):
        if table.args.get("db") or table.args.get("catalog"):
            _check_function(this)  # a denied name gets its own message first
            raise StatementRejected(f"Table function {_func_name(this)} cannot be schema-qualified")
        _check_table_function(this)
        return
    parts = [table.args.get(key) for key in ("catalog", "db", "this")]
    present = [part for part in parts if part is not None]
    if not present:
        raise StatementRejected("Table reference without a name is not allowed")
    for part in present:
        if not isinstance(part, exp.Identifier) or not _IDENT_RE.match(part.name):
            shown = part.name if isinstance(part, exp.Identifier) else part.sql(dialect="duckdb")
            raise StatementRejected(f"Table name {_short(shown)!r} is not a plain identifier")
        _check_identifier(part)
    check_table_catalog(table, present)
    name = present[-1].name.lower()
    if this is not None and (name in _SYSTEM_VIEWS or _SYSTEM_VIEW_RE.match(name)):
        raise StatementRejected(f"System view {present[-1].name} is not allowed")
    if this is not None and len(present) > 1 and name in _FILE_SUFFIXES:
        dotted = ".".join(part.name for part in present)
        raise StatementRejected(f"Table name '{_short(dotted)}' looks like a file: use a stage (@stage)")


def _reads_table(table: exp.Table, root: exp.Expression) -> bool:
    parent = table.parent
    if isinstance(parent, exp.From | exp.Join):
        return True
    if isinstance(parent, exp.Merge) and table.arg_key == "using":
        return True
    return parent is root and isinstance(root, exp.Describe)


def _check_stage_ref(ref: StageRef) -> None:
    for option in ref.args.get("options") or []:
        value = option.expression
        items = value.expressions if isinstance(value, exp.Tuple | exp.Array) else [value]
        if not items or not all(isinstance(item, _STAGE_OPTION_VALUES) for item in items):
            raise StatementRejected(f"Stage option {option.name} must be a literal or a name")


def _func_name(func: exp.Func) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    if isinstance(func, exp.GenerateSeries) and func.args.get("is_end_exclusive"):
        return "range"  # sqlglot models DuckDB's range() as an end-exclusive generate_series
    return func.sql_name().lower()


def _check_function(func: exp.Func) -> None:
    name = _func_name(func)
    names = {name, type(func).__name__.lower()}
    if any(_FILE_FUNC_RE.match(n) for n in names):
        raise StatementRejected(
            f"Function {name} is not allowed: files are reached only through stages (@stage)"
        )
    if any(_DENY_FUNC_RE.match(n) for n in names):
        raise StatementRejected(f"Function {name} is not allowed")
    if isinstance(func, exp.Anonymous):
        # A name sqlglot does not know is called as written. Typed nodes (exp.Sum, ...) are
        # checked by the name they regenerate to (_check_called_names).
        if name not in _CALLABLE and not _in_table_position(func):
            raise StatementRejected(f"Function not allowed: {name}")
        if name in _NAMED_OBJECT_ARG:
            first = func.expressions[0] if func.expressions else None
            if not (isinstance(first, exp.Literal) and first.is_string):
                raise StatementRejected(f"Function {name} needs the sequence name as a string literal")
            check_object_name_literal(name, first.this)


def _in_table_position(func: exp.Func) -> bool:
    # FROM f(...) and LATERAL f(...): _check_table_function holds those to the table functions.
    return isinstance(func.parent, exp.Table | exp.Lateral) and func.arg_key == "this"


def _check_table_function(func: exp.Func) -> None:
    _check_function(func)
    name = _func_name(func)
    if name not in _TABLE_FUNCTIONS:
        allowed = ", ".join(sorted(_TABLE_FUNCTIONS))
        raise StatementRejected(f"Table function {name} is not allowed (allowed: {allowed})")


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:80] + "..."


# -- after checking --------------------------------------------------------------------------
def regenerate(tree: exp.Expression) -> str:
    """The DuckDB SQL to run for an allowed statement whose stage references were replaced.

    The text comes from sqlglot without comments; DuckDB's own parser must then see exactly one
    statement of the kind the tree says, which closes parser-differential tricks.
    """
    if any(True for _ in tree.find_all(StageRef)):
        raise StatementRejected("Stage references must be resolved before the statement runs")
    if isinstance(tree, Explain):  # a prefix on one statement DuckDB was checked to read as its kind
        return f"EXPLAIN {'ANALYZE ' if tree.args.get('analyze') else ''}{regenerate(tree.this)}"
    expected = next((kind for cls, kind in _ROOTS.items() if isinstance(tree, cls)), None)
    if expected is None:
        raise StatementRejected(f"Statement {_statement_name(tree)} is not allowed")
    try:
        tree = hide_reserved_catalog(tree)
        sql = tree.sql(dialect="duckdb", comments=False, unsupported_level=ErrorLevel.RAISE)
    except RecursionError:
        raise StatementRejected("Statement is nested too deeply") from None
    except SqlglotError as exc:
        raise StatementRejected(f"Cannot express statement for DuckDB: {_first_line(str(exc))}") from None
    _check_called_names(sql, tree)
    try:
        with _duck_lock:
            statements = _duck.extract_statements(sql)
            kinds = [str(st.type).rsplit(".", 1)[-1] for st in statements]
    except duckdb.Error as exc:
        raise StatementRejected(f"DuckDB cannot parse the statement: {_first_line(str(exc))}") from None
    if kinds != [expected]:
        raise StatementRejected(f"Statement was read by DuckDB as {'; '.join(kinds) or 'nothing'}")
    return sql


def _check_called_names(sql: str, tree: exp.Expression) -> None:
    """Every ``name(`` DuckDB will be told to call must be on the allowlist.

    sqlglot may model a DuckDB function under another name and writes calls as ``NAME(`` (no space),
    so this reads the regenerated text itself. The only adjacent ``name(`` that are not calls are
    alias column lists (``AS t(a, b)``), CTE column lists (``WITH r(n) AS (``), the table of
    CREATE INDEX (``ON t(a)``), ``ON CONFLICT(a)`` and type modifiers (``DECIMAL(10, 2)``).
    """
    try:
        tokens = StageDuckDB().tokenize(sql)
    except TokenError:
        raise StatementRejected("Regenerated statement cannot be tokenized") from None
    closing = _matching_parens(tokens)
    index_table = _index_table_positions(tokens) if _is_create_index(tree) else set()
    for i, (tok, nxt) in enumerate(zip(tokens, tokens[1:], strict=False)):
        if nxt.token_type != TokenType.L_PAREN or tok.end + 1 != nxt.start or not _is_name_token(tok):
            continue
        name = tok.text.lower()
        if name in _CALLABLE or name in _TABLE_FUNCTIONS or name in TYPE_NAMES or i in index_table:
            continue
        if i and tokens[i - 1].token_type == TokenType.ALIAS:
            continue  # AS t(a, b) / CAST(x AS DECIMAL(10, 2))
        if i and name == "conflict" and tokens[i - 1].token_type == TokenType.ON:
            continue  # INSERT ... ON CONFLICT(a) DO ...
        if _is_cte_name(tokens, i, closing):
            continue
        raise StatementRejected(f"Function not allowed: {name}")


def _is_name_token(tok: Token) -> bool:
    return tok.token_type == TokenType.IDENTIFIER or bool(_NAME_TOKEN_RE.match(tok.text))


def _matching_parens(tokens: list[Token]) -> dict[int, int]:
    closing: dict[int, int] = {}
    stack: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.token_type == TokenType.L_PAREN:
            stack.append(i)
        elif tok.token_type == TokenType.R_PAREN and stack:
            closing[stack.pop()] = i
    return closing


def _is_cte_name(tokens: list[Token], i: int, closing: dict[int, int]) -> bool:
    # WITH [RECURSIVE] r(n) AS [NOT] [MATERIALIZED] (, and later CTEs after a comma.
    end = closing.get(i + 1)
    if not i or end is None or end + 2 >= len(tokens):
        return False
    before, after, then = tokens[i - 1], tokens[end + 1], tokens[end + 2]
    return (
        before.token_type in (TokenType.WITH, TokenType.RECURSIVE, TokenType.COMMA)
        and after.token_type == TokenType.ALIAS
        and (then.token_type == TokenType.L_PAREN or then.text.upper() in ("MATERIALIZED", "NOT"))
    )


def _is_create_index(tree: exp.Expression) -> bool:
    return isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() == "INDEX"


def _index_table_positions(tokens: list[Token]) -> set[int]:
    # CREATE INDEX i ON [schema.]t(a): the name parts between the first ON and its '('.
    start = next((i for i, tok in enumerate(tokens) if tok.token_type == TokenType.ON), None)
    if start is None:
        return set()
    parens = (i for i in range(start + 1, len(tokens)) if tokens[i].token_type == TokenType.L_PAREN)
    stop = next(parens, start)
    return set(range(start + 1, stop))


def is_query(tree: exp.Expression) -> bool:
    """True when the statement returns rows rather than an update count."""
    if isinstance(tree, exp.Select | exp.SetOperation | exp.Values | exp.Describe | exp.Show | Explain):
        return True
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge):
        return bool(tree.args.get("returning"))
    return False
