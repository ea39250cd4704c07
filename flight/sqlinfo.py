"""The GetSqlInfo answer: a static description of what the server and its SQL dialect support.

Values follow the `SqlInfo` enum of apache/arrow `format/FlightSql.proto`; each id has one value
type, which decides the dense-union slot it is written to (see flight-sql-surface.md §2.5):

====  =======================  ==============================
code  union child              used for
====  =======================  ==============================
0     string_value             names, versions, quote chars
1     bool_value               yes/no facts
2     bigint_value             SQL_MAX_* limits (0 = no limit / unknown)
3     int32_bitmask            enum ordinals and bitmasks (id 8 MUST be here)
4     string_list              keywords and function lists
5     int32_to_int32_list_map  SQL_SUPPORTS_CONVERT
====  =======================  ==============================

No DuckDB import here: keywords and function names are static lists (DuckDB 2.0 reserved
keywords), and a caller can pass its own keyword list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa

__all__ = [
    "SQLINFO_SCHEMA",
    "SQLINFO_UNION_TYPE",
    "SQLINFO_DUCKDB_VERSION",
    "describe",
    "sql_info_table",
    "sql_info_values",
]

STRING, BOOL, BIGINT, INT32, STRING_LIST, INT32_LIST_MAP = range(6)

_CONVERT_MAP_TYPE = pa.map_(pa.int32(), pa.list_(pa.int32()))

SQLINFO_UNION_TYPE = pa.dense_union(
    [
        pa.field("string_value", pa.utf8(), nullable=False),
        pa.field("bool_value", pa.bool_(), nullable=False),
        pa.field("bigint_value", pa.int64(), nullable=False),
        pa.field("int32_bitmask", pa.int32(), nullable=False),
        pa.field("string_list", pa.list_(pa.utf8()), nullable=False),
        pa.field("int32_to_int32_list_map", _CONVERT_MAP_TYPE, nullable=False),
    ],
    type_codes=[STRING, BOOL, BIGINT, INT32, STRING_LIST, INT32_LIST_MAP],
)

SQLINFO_SCHEMA = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", SQLINFO_UNION_TYPE, nullable=False),
    ]
)

# A custom id (custom ids start at 10000). It is only returned when asked for by number: the
# Arrow Flight SQL JDBC driver caches "all ids" in an EnumMap keyed by SqlInfo.forNumber(id),
# which is null for an id it does not know, so an unknown id in the "all" answer breaks it.
SQLINFO_DUCKDB_VERSION = 10000

Value: TypeAlias = str | bool | int | list[str] | dict[int, list[int]]


@dataclass(frozen=True)
class _Info:
    code: int
    value: Value


# --- enum values used below (FlightSql.proto) -------------------------------------------------
_TRANSACTION_SUPPORT_TRANSACTION = 1  # SqlSupportedTransaction: transactions, no savepoints
_CASE_INSENSITIVE = 1  # SqlSupportedCaseSensitivity
_NULLS_SORTED_AT_END = 3  # SqlNullOrdering: DuckDB's default is NULLS LAST for ASC and DESC
_FULL_OUTER_JOINS = 2  # SqlOuterJoinsSupportLevel
_REPEATABLE_READ = 3  # SqlTransactionIsolationLevel: DuckDB gives snapshot isolation (MVCC)
_RESULT_SET_FORWARD_ONLY = 1  # SqlSupportedResultSetType
_CONCURRENCY_READ_ONLY = 1  # SqlSupportedResultSetConcurrency


def _bits(*ordinals: int) -> int:
    mask = 0
    for ordinal in ordinals:
        mask |= 1 << ordinal
    return mask


# SqlSupportsConvert ordinals
(
    _C_BIGINT,
    _C_BINARY,
    _C_BIT,
    _C_CHAR,
    _C_DATE,
    _C_DECIMAL,
    _C_FLOAT,
    _C_INTEGER,
    _C_INTERVAL_DAY_TIME,
    _C_INTERVAL_YEAR_MONTH,
    _C_LONGVARBINARY,
    _C_LONGVARCHAR,
    _C_NUMERIC,
    _C_REAL,
    _C_SMALLINT,
    _C_TIME,
    _C_TIMESTAMP,
    _C_TINYINT,
    _C_VARBINARY,
    _C_VARCHAR,
) = range(20)

_NUMERIC = [_C_BIGINT, _C_BIT, _C_DECIMAL, _C_FLOAT, _C_INTEGER, _C_NUMERIC, _C_REAL, _C_SMALLINT, _C_TINYINT]
_TEXT = [_C_CHAR, _C_LONGVARCHAR, _C_VARCHAR]
_BINARY = [_C_BINARY, _C_LONGVARBINARY, _C_VARBINARY]
_INTERVAL = [_C_INTERVAL_DAY_TIME, _C_INTERVAL_YEAR_MONTH]


def _convert_matrix() -> dict[int, list[int]]:
    """What DuckDB's CAST accepts, in SqlSupportsConvert terms (from type -> to types)."""
    matrix: dict[int, set[int]] = {}
    for source in _NUMERIC:
        matrix[source] = {*_NUMERIC, *_TEXT}
    for source in _TEXT:  # text parses into every type
        matrix[source] = set(range(20))
    for source in _BINARY:
        matrix[source] = {*_BINARY, *_TEXT}
    for source in _INTERVAL:
        matrix[source] = {*_INTERVAL, *_TEXT}
    matrix[_C_DATE] = {_C_DATE, _C_TIMESTAMP, *_TEXT}
    matrix[_C_TIME] = {_C_TIME, *_TEXT}
    matrix[_C_TIMESTAMP] = {_C_DATE, _C_TIME, _C_TIMESTAMP, *_TEXT}
    return {source: sorted(targets) for source, targets in sorted(matrix.items())}


# DuckDB 2.0 reserved keywords (duckdb_keywords() WHERE keyword_category = 'reserved').
DUCKDB_RESERVED_KEYWORDS: tuple[str, ...] = (
    "ALL", "ANALYSE", "ANALYZE", "AND", "ANY", "ARRAY", "AS", "ASC", "ASYMMETRIC", "BOTH", "CASE",
    "CAST", "CHECK", "COLLATE", "COLUMN", "CONSTRAINT", "CREATE", "DEFAULT", "DEFERRABLE", "DESC",
    "DESCRIBE", "DISTINCT", "DO", "ELSE", "END", "EXCEPT", "FALSE", "FETCH", "FOR", "FOREIGN", "FROM",
    "GROUP", "HAVING", "IN", "INITIALLY", "INTERSECT", "INTO", "LAMBDA", "LATERAL", "LEADING", "LIMIT",
    "NOT", "NULL", "OFFSET", "ON", "ONLY", "OR", "ORDER", "PIVOT", "PIVOT_LONGER", "PIVOT_WIDER",
    "PLACING", "PRIMARY", "QUALIFY", "REFERENCES", "RETURNING", "SELECT", "SHOW", "SOME", "SUMMARIZE",
    "SYMMETRIC", "TABLE", "THEN", "TO", "TRAILING", "TRUE", "UNION", "UNIQUE", "UNPIVOT", "USING",
    "VARIADIC", "WHEN", "WHERE", "WINDOW", "WITH",
)  # fmt: skip

NUMERIC_FUNCTIONS: tuple[str, ...] = tuple(
    "abs acos asin atan atan2 bit_count cbrt ceil ceiling cos cot degrees even exp factorial floor "
    "gamma gcd greatest isfinite isinf isnan lcm least ln log log10 log2 mod pi pow power radians "
    "random round sign sin sqrt tan trunc xor".split()
)
STRING_FUNCTIONS: tuple[str, ...] = tuple(
    "ascii bit_length chr concat concat_ws contains ends_with format instr lcase left length lower "
    "lpad ltrim md5 position prefix printf regexp_extract regexp_matches regexp_replace repeat replace "
    "reverse right rpad rtrim sha256 split_part starts_with strip_accents strlen strpos substr "
    "substring suffix translate trim ucase unicode upper".split()
)
SYSTEM_FUNCTIONS: tuple[str, ...] = tuple(
    "coalesce current_catalog current_database current_schema current_schemas current_user hash "
    "ifnull nullif typeof version".split()
)
DATETIME_FUNCTIONS: tuple[str, ...] = tuple(
    "age current_date current_time current_timestamp date_add date_diff date_part date_sub date_trunc "
    "datediff datepart datesub datetrunc day dayname dayofmonth dayofweek dayofyear epoch epoch_ms "
    "extract hour isodow isoyear last_day make_date make_time make_timestamp microsecond millisecond "
    "minute month monthname now quarter second strftime strptime time_bucket to_timestamp today week "
    "weekday weekofyear year yearweek".split()
)


def _static_infos(keywords: Sequence[str]) -> dict[int, _Info]:
    s, b, i64, i32 = STRING, BOOL, BIGINT, INT32
    lst = STRING_LIST
    return {
        3: _Info(b, False),  # FLIGHT_SQL_SERVER_READ_ONLY
        4: _Info(b, True),  # FLIGHT_SQL_SERVER_SQL
        5: _Info(b, False),  # FLIGHT_SQL_SERVER_SUBSTRAIT (so 6/7, the Substrait versions, are omitted)
        8: _Info(i32, _TRANSACTION_SUPPORT_TRANSACTION),  # FLIGHT_SQL_SERVER_TRANSACTION
        9: _Info(b, True),  # FLIGHT_SQL_SERVER_CANCEL
        10: _Info(b, True),  # FLIGHT_SQL_SERVER_BULK_INGESTION
        11: _Info(b, True),  # FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED
        100: _Info(i32, 0),  # FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT (ms, 0 = none)
        101: _Info(i32, 0),  # FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT
        500: _Info(b, False),  # SQL_DDL_CATALOG
        501: _Info(b, True),  # SQL_DDL_SCHEMA
        502: _Info(b, True),  # SQL_DDL_TABLE
        503: _Info(i32, _CASE_INSENSITIVE),  # SQL_IDENTIFIER_CASE
        504: _Info(s, '"'),  # SQL_IDENTIFIER_QUOTE_CHAR
        505: _Info(i32, _CASE_INSENSITIVE),  # SQL_QUOTED_IDENTIFIER_CASE (DuckDB: quoted too)
        506: _Info(b, True),  # SQL_ALL_TABLES_ARE_SELECTABLE
        507: _Info(i32, _NULLS_SORTED_AT_END),  # SQL_NULL_ORDERING
        508: _Info(lst, list(keywords)),  # SQL_KEYWORDS
        509: _Info(lst, list(NUMERIC_FUNCTIONS)),  # SQL_NUMERIC_FUNCTIONS
        510: _Info(lst, list(STRING_FUNCTIONS)),  # SQL_STRING_FUNCTIONS
        511: _Info(lst, list(SYSTEM_FUNCTIONS)),  # SQL_SYSTEM_FUNCTIONS
        512: _Info(lst, list(DATETIME_FUNCTIONS)),  # SQL_DATETIME_FUNCTIONS
        513: _Info(s, "\\"),  # SQL_SEARCH_STRING_ESCAPE (metadata patterns use LIKE ... ESCAPE '\')
        514: _Info(s, ""),  # SQL_EXTRA_NAME_CHARACTERS
        515: _Info(b, True),  # SQL_SUPPORTS_COLUMN_ALIASING
        516: _Info(b, True),  # SQL_NULL_PLUS_NULL_IS_NULL
        517: _Info(INT32_LIST_MAP, _convert_matrix()),  # SQL_SUPPORTS_CONVERT
        518: _Info(b, True),  # SQL_SUPPORTS_TABLE_CORRELATION_NAMES
        519: _Info(b, False),  # SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES
        520: _Info(b, True),  # SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY
        521: _Info(b, True),  # SQL_SUPPORTS_ORDER_BY_UNRELATED
        522: _Info(i32, _bits(0, 1)),  # SQL_SUPPORTED_GROUP_BY: UNRELATED, BEYOND_SELECT
        523: _Info(b, True),  # SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE
        524: _Info(b, True),  # SQL_SUPPORTS_NON_NULLABLE_COLUMNS
        525: _Info(i32, _bits(0, 1, 2)),  # SQL_SUPPORTED_GRAMMAR: minimum, core, extended
        526: _Info(i32, _bits(0, 1)),  # SQL_ANSI92_SUPPORTED_LEVEL: entry, intermediate
        527: _Info(b, True),  # SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY (PK/FK/CHECK)
        528: _Info(i32, _FULL_OUTER_JOINS),  # SQL_OUTER_JOINS_SUPPORT_LEVEL
        529: _Info(s, "schema"),  # SQL_SCHEMA_TERM
        530: _Info(s, "procedure"),  # SQL_PROCEDURE_TERM
        531: _Info(s, "catalog"),  # SQL_CATALOG_TERM (non-empty: catalogs are supported)
        532: _Info(b, True),  # SQL_CATALOG_AT_START
        533: _Info(i32, _bits(1)),  # SQL_SCHEMAS_SUPPORTED_ACTIONS: in index definitions
        534: _Info(i32, _bits(1)),  # SQL_CATALOGS_SUPPORTED_ACTIONS: in index definitions
        535: _Info(i32, 0),  # SQL_SUPPORTED_POSITIONED_COMMANDS: none
        536: _Info(b, False),  # SQL_SELECT_FOR_UPDATE_SUPPORTED
        537: _Info(b, False),  # SQL_STORED_PROCEDURES_SUPPORTED
        538: _Info(i32, _bits(0, 1, 2, 3)),  # SQL_SUPPORTED_SUBQUERIES: comparisons, EXISTS, IN, quantified
        539: _Info(b, True),  # SQL_CORRELATED_SUBQUERIES_SUPPORTED
        540: _Info(i32, _bits(0, 1)),  # SQL_SUPPORTED_UNIONS: UNION, UNION ALL
        # 541-561: SQL_MAX_* limits; DuckDB has none of these limits, 0 = "no limit or unknown"
        **{info_id: _Info(i64, 0) for info_id in range(541, 556)},
        556: _Info(b, False),  # SQL_MAX_ROW_SIZE_INCLUDES_BLOBS
        **{info_id: _Info(i64, 0) for info_id in range(557, 562)},
        # int64, as the Java reference server sends it: the JDBC driver casts this one to Long.
        562: _Info(i64, _REPEATABLE_READ),  # SQL_DEFAULT_TRANSACTION_ISOLATION
        563: _Info(b, True),  # SQL_TRANSACTIONS_SUPPORTED
        564: _Info(i32, _bits(_REPEATABLE_READ)),  # SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS
        565: _Info(b, False),  # SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT
        566: _Info(b, False),  # SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED
        567: _Info(i32, _bits(_RESULT_SET_FORWARD_ONLY)),  # SQL_SUPPORTED_RESULT_SET_TYPES
        568: _Info(i32, 0),  # SQL_SUPPORTED_CONCURRENCIES_FOR_RESULT_SET_UNSPECIFIED
        569: _Info(i32, _bits(_CONCURRENCY_READ_ONLY)),  # ..._FOR_RESULT_SET_FORWARD_ONLY
        570: _Info(i32, 0),  # ..._FOR_RESULT_SET_SCROLL_SENSITIVE
        571: _Info(i32, 0),  # ..._FOR_RESULT_SET_SCROLL_INSENSITIVE
        572: _Info(b, True),  # SQL_BATCH_UPDATES_SUPPORTED
        573: _Info(b, False),  # SQL_SAVEPOINTS_SUPPORTED (DuckDB has no SAVEPOINT)
        574: _Info(b, False),  # SQL_NAMED_PARAMETERS_SUPPORTED
        575: _Info(b, False),  # SQL_LOCATORS_UPDATE_COPY
        576: _Info(b, False),  # SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED
    }


def sql_info_values(
    *,
    server_version: str,
    arrow_version: str,
    duckdb_version: str,
    keywords: Sequence[str] | None = None,
) -> dict[int, tuple[int, Value]]:
    """Every known id -> (union type code, value), including the on-request-only custom ids."""
    infos = {
        0: _Info(STRING, "stageflight"),  # FLIGHT_SQL_SERVER_NAME
        1: _Info(STRING, server_version),  # FLIGHT_SQL_SERVER_VERSION
        2: _Info(STRING, arrow_version),  # FLIGHT_SQL_SERVER_ARROW_VERSION
        **_static_infos(DUCKDB_RESERVED_KEYWORDS if keywords is None else keywords),
        SQLINFO_DUCKDB_VERSION: _Info(STRING, duckdb_version),
    }
    return {info_id: (info.code, info.value) for info_id, info in sorted(infos.items())}


def sql_info_table(
    ids: Sequence[int],
    *,
    server_version: str,
    arrow_version: str,
    duckdb_version: str,
    keywords: Sequence[str] | None = None,
) -> pa.Table:
    """Answer CommandGetSqlInfo.

    Args:
        ids: the requested ids; empty means every standard id (ids < 10000), sorted. Otherwise the
            requested known ids in the order asked, each once; unknown ids are skipped.
        server_version: FLIGHT_SQL_SERVER_VERSION.
        arrow_version: FLIGHT_SQL_SERVER_ARROW_VERSION (usually ``pyarrow.__version__``).
        duckdb_version: returned under the custom id ``SQLINFO_DUCKDB_VERSION`` when asked for.
        keywords: SQL_KEYWORDS; defaults to DuckDB's reserved keywords.

    Returns:
        A table with exactly ``SQLINFO_SCHEMA``.
    """
    known = sql_info_values(
        server_version=server_version,
        arrow_version=arrow_version,
        duckdb_version=duckdb_version,
        keywords=keywords,
    )
    if ids:
        chosen = [info_id for info_id in dict.fromkeys(ids) if info_id in known]
    else:
        chosen = [info_id for info_id in known if info_id < SQLINFO_DUCKDB_VERSION]
    return _build_table([(info_id, *known[info_id]) for info_id in chosen])


def _build_table(rows: Sequence[tuple[int, int, Value]]) -> pa.Table:
    per_child: list[list[Value]] = [[] for _ in range(6)]
    type_ids: list[int] = []
    offsets: list[int] = []
    for _, code, value in rows:
        type_ids.append(code)
        offsets.append(len(per_child[code]))
        per_child[code].append(value)
    children = [
        pa.array(values, type=field.type) for values, field in zip(per_child, SQLINFO_UNION_TYPE, strict=True)
    ]
    union = pa.UnionArray.from_dense(
        pa.array(type_ids, pa.int8()),
        pa.array(offsets, pa.int32()),
        children,
        [field.name for field in SQLINFO_UNION_TYPE],
        list(SQLINFO_UNION_TYPE.type_codes),
    )
    # from_dense makes nullable children; view() re-labels them as the non-null schema (§2.5).
    names = pa.array([info_id for info_id, _, _ in rows], pa.uint32())
    return pa.Table.from_arrays([names, union.view(SQLINFO_UNION_TYPE)], schema=SQLINFO_SCHEMA)


def describe(table: pa.Table) -> Mapping[int, object]:
    """id -> Python value of a GetSqlInfo table (for tests and debugging)."""
    return dict(zip(table.column("info_name").to_pylist(), table.column("value").to_pylist(), strict=True))
