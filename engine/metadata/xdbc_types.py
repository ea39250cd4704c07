"""GetXdbcTypeInfo: a static description of DuckDB's main types in JDBC/ODBC terms."""

from __future__ import annotations

from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from engine.metadata.query import arrow_table
from engine.metadata.schemas import XDBC_TYPE_INFO_SCHEMA


class _XdbcType(NamedTuple):
    type_name: str
    data_type: int  # java.sql.Types
    column_size: int | None = None
    literal_prefix: str | None = None
    literal_suffix: str | None = None
    create_params: list[str] | None = None
    nullable: int = 1  # Nullable.NULLABILITY_NULLABLE
    case_sensitive: bool = False
    searchable: int = 2  # Searchable.SEARCHABLE_BASIC (every operator but LIKE)
    unsigned_attribute: bool | None = None
    fixed_prec_scale: bool = False
    auto_increment: bool | None = None
    local_type_name: str | None = None
    minimum_scale: int | None = None
    maximum_scale: int | None = None
    sql_data_type: int | None = None  # None = same as data_type
    datetime_subcode: int | None = None
    num_prec_radix: int | None = None
    interval_precision: int | None = None


def _number(
    name: str,
    data_type: int,
    size: int,
    radix: int,
    scale: tuple[int | None, int | None] = (None, None),
    unsigned: bool = False,
    create_params: list[str] | None = None,
) -> _XdbcType:
    return _XdbcType(
        name,
        data_type,
        column_size=size,
        create_params=create_params,
        unsigned_attribute=unsigned,
        auto_increment=False,
        minimum_scale=scale[0],
        maximum_scale=scale[1],
        num_prec_radix=radix,
    )


def _integer(name: str, data_type: int, digits: int, unsigned: bool = False) -> _XdbcType:
    return _number(name, data_type, digits, 10, scale=(0, 0), unsigned=unsigned)


def _quoted(name: str, data_type: int, size: int | None, prefix: str, **kw: Any) -> _XdbcType:
    return _XdbcType(name, data_type, column_size=size, literal_prefix=prefix, literal_suffix="'", **kw)


_SQL_DATETIME, _SQL_INTERVAL = 9, 10  # XdbcDataType.XDBC_DATETIME / XDBC_INTERVAL

# java.sql.Types: BOOLEAN 16, TINYINT -6, SMALLINT 5, INTEGER 4, BIGINT -5, NUMERIC 2, DECIMAL 3,
# REAL 7 (DuckDB FLOAT is 4 bytes), DOUBLE 8, VARCHAR 12, VARBINARY -3, DATE 91, TIME 92,
# TIMESTAMP 93, TIME_WITH_TIMEZONE 2013, TIMESTAMP_WITH_TIMEZONE 2014, OTHER 1111, STRUCT 2002,
# ARRAY 2003.
_XDBC_TYPES: tuple[_XdbcType, ...] = (
    _XdbcType("BOOLEAN", 16, column_size=1),
    _integer("TINYINT", -6, 3),
    _integer("UTINYINT", -6, 3, unsigned=True),
    _integer("SMALLINT", 5, 5),
    _integer("USMALLINT", 5, 5, unsigned=True),
    _integer("INTEGER", 4, 10),
    _integer("UINTEGER", 4, 10, unsigned=True),
    _integer("BIGINT", -5, 19),
    _integer("UBIGINT", -5, 20, unsigned=True),
    _integer("HUGEINT", 2, 39),
    _number("DECIMAL", 3, 38, 10, scale=(0, 38), create_params=["precision", "scale"]),
    _number("FLOAT", 7, 24, 2),
    _number("DOUBLE", 8, 53, 2),
    _quoted("VARCHAR", 12, 2147483647, "'", case_sensitive=True, searchable=3),
    _XdbcType("BLOB", -3, column_size=2147483647, literal_prefix="'", literal_suffix="'::BLOB"),
    _quoted("DATE", 91, 10, "DATE '", sql_data_type=_SQL_DATETIME, datetime_subcode=1),
    _quoted("TIME", 92, 15, "TIME '", sql_data_type=_SQL_DATETIME, datetime_subcode=2),
    _quoted("TIMESTAMP", 93, 26, "TIMESTAMP '", sql_data_type=_SQL_DATETIME, datetime_subcode=3),
    _quoted("UUID", 1111, 36, "'"),
    _quoted("INTERVAL", 1111, None, "INTERVAL '", sql_data_type=_SQL_INTERVAL),
    _XdbcType("STRUCT", 2002, create_params=["fields"]),
    _XdbcType("LIST", 2003, create_params=["element type"]),
    _quoted("TIME WITH TIME ZONE", 2013, 21, "TIMETZ '", sql_data_type=_SQL_DATETIME, datetime_subcode=4),
    _quoted(
        "TIMESTAMP WITH TIME ZONE", 2014, 32, "TIMESTAMPTZ '", sql_data_type=_SQL_DATETIME, datetime_subcode=5
    ),
)


def get_xdbc_type_info(con: duckdb.DuckDBPyConnection | None, data_type: int | None = None) -> pa.Table:
    """GetXdbcTypeInfo: a static description of DuckDB's main types, sorted by data_type, type_name.

    ``con`` is unused (the answer does not depend on the database) and kept for a uniform call
    shape. ``data_type`` keeps only rows with that java.sql.Types code.
    """
    rows = [
        row._replace(sql_data_type=row.data_type if row.sql_data_type is None else row.sql_data_type)
        for row in _XDBC_TYPES
        if data_type is None or row.data_type == data_type
    ]
    rows.sort(key=lambda row: (row.data_type, row.type_name))
    return arrow_table(XDBC_TYPE_INFO_SCHEMA, rows)
