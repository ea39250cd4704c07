"""The Arrow type of each ``?`` / ``$n`` parameter, for a prepared statement's ``parameter_schema``.

DuckDB reports parameter types as UNKNOWN, and a client binds into the vectors the schema
declares (the Flight SQL JDBC driver cannot write a value into a ``null`` vector), so the types
are read from where each parameter stands:

- ``CAST(? AS T)`` / ``?::T``: ``T``;
- ``LIMIT ?`` / ``OFFSET ?``: int64;
- ``INSERT INTO t [(cols)] VALUES (?, ...)`` or ``... SELECT ?, ...``: the target column's type;
- ``SET col = ?``, ``col op ?``, ``col BETWEEN ? AND ?``, ``col IN (?, ...)``: ``col``'s type, with
  ``col`` resolved against its qualifier (a table name or alias) or the statement's only table;
- anything else: utf8, which every client can bind and DuckDB casts where the value goes.

:func:`parameter_hints` reads the statement once at plan time (plans are cached per text);
:func:`resolve` turns column hints into types at prepare time from the tables' own Arrow schemas.
TIMESTAMP parameters are declared ``timestamp[ms]``: the JDBC driver writes epoch milliseconds
into any timestamp vector. Values are bound as Python values whatever type a client sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import SqlglotError

from engine.errors import EngineError
from engine.sql.dialect import StageDuckDB

FALLBACK = pa.utf8()
_COUNT = pa.int64()
_MARKER = "stageflight_param_{}_"
_MARKER_RE = re.compile(r"stageflight_param_(\d+)_")
_T = exp.DType
_CAST_TYPES: dict[exp.DType, pa.DataType] = {
    _T.BOOLEAN: pa.bool_(),
    _T.TINYINT: pa.int8(),
    _T.SMALLINT: pa.int16(),
    _T.INT: pa.int32(),
    _T.BIGINT: pa.int64(),
    _T.UTINYINT: pa.uint8(),
    _T.USMALLINT: pa.uint16(),
    _T.UINT: pa.uint32(),
    _T.UBIGINT: pa.uint64(),
    _T.INT128: pa.decimal128(38, 0),
    _T.FLOAT: pa.float32(),
    _T.DOUBLE: pa.float64(),
    _T.VARCHAR: pa.utf8(),
    _T.TEXT: pa.utf8(),
    _T.CHAR: pa.utf8(),
    _T.BPCHAR: pa.utf8(),
    _T.NVARCHAR: pa.utf8(),
    _T.NCHAR: pa.utf8(),
    _T.BLOB: pa.binary(),
    _T.VARBINARY: pa.binary(),
    _T.BINARY: pa.binary(),
    _T.DATE: pa.date32(),
    _T.TIME: pa.time64("us"),
    _T.TIMESTAMP: pa.timestamp("ms"),
    _T.TIMESTAMPNTZ: pa.timestamp("ms"),
    _T.DATETIME: pa.timestamp("ms"),
    _T.TIMESTAMP_S: pa.timestamp("ms"),
    _T.TIMESTAMP_MS: pa.timestamp("ms"),
    _T.TIMESTAMP_NS: pa.timestamp("ms"),
    _T.TIMESTAMPTZ: pa.timestamp("ms", tz="UTC"),
    _T.TIMESTAMPLTZ: pa.timestamp("ms", tz="UTC"),
}
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Like)


@dataclass(frozen=True)
class ColumnOf:
    """The parameter takes the type of a table's column, by name or (INSERT without a list) position."""

    table: exp.Table
    column: str | int


Hint: TypeAlias = pa.DataType | ColumnOf | None
# A table's Arrow schema, or an EngineError when it cannot be described.
DescribeTable = Callable[[exp.Table], pa.Schema]


def parameter_hints(tree: exp.Expression, count: int, *, numbered: bool = True) -> tuple[Hint, ...]:
    """One hint per parameter (``count`` of them), in DuckDB's numbering.

    ``?`` are numbered in the order they appear in the regenerated text; ``$n`` is parameter n
    (with ``numbered`` false, ``$n`` are not parameters: staged files' positional columns).
    """
    hints: list[Hint] = [None] * count
    for slot, node in _numbered_placeholders(tree, numbered):
        if 0 <= slot < count and hints[slot] is None:
            hints[slot] = _hint(node, tree)
    return tuple(hints)


def resolve(hints: tuple[Hint, ...], describe: DescribeTable | None) -> list[pa.DataType]:
    """The declared type of each parameter; ``describe`` (None: no lookups) reads column types."""
    schemas: dict[str, pa.Schema | None] = {}
    types = []
    for hint in hints:
        if isinstance(hint, ColumnOf):
            hint = _column_type(hint, schemas, describe)
        types.append(FALLBACK if hint is None else hint)
    return types


# -- where each parameter stands ---------------------------------------------------------------
def _anonymous(node: exp.Expr) -> bool:
    return isinstance(node, exp.Placeholder) and node.args.get("this") in (None, "?")


def _numbered_placeholders(tree: exp.Expression, numbered: bool) -> list[tuple[int, exp.Placeholder]]:
    found: list[tuple[int, exp.Placeholder]] = []
    anonymous: list[exp.Placeholder] = []
    for node in tree.walk(bfs=False):
        if isinstance(node, exp.Placeholder) and _anonymous(node):
            anonymous.append(node)
        elif numbered and isinstance(node, exp.Placeholder) and str(node.args.get("this")).isdigit():
            found.append((int(node.args["this"]) - 1, node))
    return found + list(enumerate(_in_text_order(tree, anonymous)))


def _in_text_order(tree: exp.Expression, placeholders: list[exp.Placeholder]) -> list[exp.Placeholder]:
    """``placeholders`` (in tree order) as they appear in the SQL text, which is DuckDB's numbering:
    tree order differs (sqlglot keeps a SELECT's LIMIT before its FROM)."""
    if len(placeholders) < 2:
        return placeholders
    copy = tree.copy()
    marked = [node for node in copy.walk(bfs=False) if _anonymous(node)]
    for i, node in enumerate(marked):
        node.replace(exp.column(_MARKER.format(i)))
    try:
        order = [int(m.group(1)) for m in _MARKER_RE.finditer(copy.sql(dialect=StageDuckDB))]
    except (SqlglotError, RecursionError):  # only a hint: tree order is the fallback
        order = []
    if sorted(order) != list(range(len(placeholders))):
        return placeholders
    return [placeholders[i] for i in order]


def _hint(node: exp.Expression, tree: exp.Expression) -> Hint:
    parent = node.parent
    if isinstance(parent, exp.Cast) and parent.this is node:
        return _cast_type(parent.to)
    if isinstance(parent, exp.Limit | exp.Offset | exp.Fetch):
        return _COUNT
    if isinstance(parent, exp.Alias):
        node, parent = parent, parent.parent
    other: exp.Expression | None = None
    if isinstance(parent, _COMPARISONS):
        other = parent.expression if parent.this is node else parent.this
    elif isinstance(parent, exp.Between | exp.In) and parent.this is not node:
        other = parent.this
    if isinstance(other, exp.Column):
        if isinstance(tree, exp.Update) and parent in (tree.expressions or []):
            return ColumnOf(tree.this, other.name) if isinstance(tree.this, exp.Table) else None
        table = _table_of(other, tree)
        return ColumnOf(table, other.name) if table is not None else None
    return _insert_target(node, tree)


def _cast_type(to: exp.Expression | None) -> Hint:
    if not isinstance(to, exp.DataType):
        return None
    if to.this == _T.DECIMAL:
        params = [p.this.name for p in to.expressions if isinstance(p, exp.DataTypeParam)]
        if len(params) == 2 and all(p.isdigit() for p in params):
            return pa.decimal128(int(params[0]), int(params[1]))
        if len(params) == 1 and params[0].isdigit():
            return pa.decimal128(int(params[0]), 0)
        return pa.decimal128(18, 3)  # DuckDB's DECIMAL
    return _CAST_TYPES.get(to.this)


def _insert_target(node: exp.Expression, tree: exp.Expression) -> Hint:
    """A parameter written as a whole value of ``INSERT ... VALUES`` or ``INSERT ... SELECT``."""
    if not isinstance(tree, exp.Insert):
        return None
    parent = node.parent
    if isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Values):
        if parent.parent is not tree.expression:
            return None
        position = _position(parent.expressions, node)
    elif isinstance(parent, exp.Select) and parent is tree.expression:
        position = _position(parent.expressions, node)
    else:
        return None
    target = tree.this
    if isinstance(target, exp.Schema) and isinstance(target.this, exp.Table):
        columns = target.expressions
        if position >= len(columns):
            return None
        return ColumnOf(target.this, columns[position].name)
    return ColumnOf(target, position) if isinstance(target, exp.Table) else None


def _position(values: list[exp.Expression], node: exp.Expression) -> int:
    return next(i for i, value in enumerate(values) if value is node)  # equal nodes are not the same


def _table_of(column: exp.Column, tree: exp.Expression) -> exp.Table | None:
    """The table a column belongs to: by its qualifier, or the statement's only table."""
    tables = list(tree.find_all(exp.Table))  # stages and table functions count, never resolve
    qualifier = column.table
    if qualifier:
        tables = [t for t in tables if (t.alias_or_name or "").lower() == qualifier.lower()]
    if len(tables) != 1 or not isinstance(tables[0].this, exp.Identifier):
        return None
    return tables[0]


# -- at prepare time ---------------------------------------------------------------------------
def _column_type(
    hint: ColumnOf, schemas: dict[str, pa.Schema | None], describe: DescribeTable | None
) -> pa.DataType | None:
    if describe is None:
        return None
    bare = hint.table.copy()
    bare.set("alias", None)
    key = bare.sql(dialect=StageDuckDB)
    if key not in schemas:
        try:
            schemas[key] = describe(bare)
        except EngineError:
            schemas[key] = None  # gone, a CTE, not readable here: the fallback type
    schema = schemas[key]
    if schema is None:
        return None
    if isinstance(hint.column, int):
        return _declared(schema.field(hint.column).type) if hint.column < len(schema) else None
    for field in schema:
        if field.name.lower() == hint.column.lower():
            return _declared(field.type)
    return None


def _declared(arrow_type: pa.DataType) -> pa.DataType | None:
    """The type to declare for a column of ``arrow_type`` (None: the fallback)."""
    if pa.types.is_timestamp(arrow_type):
        return pa.timestamp("ms", tz=arrow_type.tz)
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.utf8()
    if pa.types.is_large_binary(arrow_type):
        return pa.binary()
    if isinstance(arrow_type, pa.ExtensionType):
        return None  # UUID and friends: written as text
    plain = (
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_boolean,
        pa.types.is_string,
        pa.types.is_binary,
        pa.types.is_date32,
        pa.types.is_time,
        pa.types.is_decimal128,
    )
    return arrow_type if any(test(arrow_type) for test in plain) else None
