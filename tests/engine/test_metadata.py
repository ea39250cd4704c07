"""Metadata answers against a real DuckDB file: exact schemas, rows, filters, hidden internals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from engine import metadata
from engine.metadata import (
    CATALOGS_SCHEMA,
    DB_SCHEMAS_SCHEMA,
    FOREIGN_KEYS_SCHEMA,
    PRIMARY_KEYS_SCHEMA,
    TABLE_TYPES_SCHEMA,
    TABLES_SCHEMA,
    TABLES_WITH_SCHEMA_SCHEMA,
    XDBC_TYPE_INFO_SCHEMA,
)

DDL = """
CREATE SCHEMA __stageflight;
CREATE TABLE __stageflight.users (id INTEGER PRIMARY KEY, name VARCHAR, hash VARCHAR);
CREATE TABLE __stageflight.grants (user_id INTEGER REFERENCES __stageflight.users (id), what VARCHAR);
CREATE SCHEMA sales;
CREATE SEQUENCE order_ids;
CREATE TABLE sales.customers (id INTEGER PRIMARY KEY, email VARCHAR NOT NULL UNIQUE);
CREATE TABLE sales.orders (
    id INTEGER DEFAULT nextval('order_ids'),
    region VARCHAR,
    customer_id INTEGER REFERENCES sales.customers (id),
    amount DECIMAL(10, 2) NOT NULL,
    doubled INTEGER GENERATED ALWAYS AS (id * 2),
    PRIMARY KEY (id, region)
);
CREATE TABLE sales.lines (
    order_id INTEGER,
    order_region VARCHAR,
    n INTEGER,
    FOREIGN KEY (order_id, order_region) REFERENCES sales.orders (id, region)
);
COMMENT ON COLUMN sales.orders.amount IS 'gross amount';
CREATE VIEW sales.big_orders AS SELECT id, amount FROM sales.orders WHERE amount > 100;
CREATE TABLE t1 (a INTEGER);
CREATE TABLE t2 (a INTEGER);
CREATE TABLE t10 (a INTEGER);
CREATE TABLE "under_score" (a INTEGER);
CREATE TABLE "underXscore" (a INTEGER);
CREATE TABLE "we""ird" ("co""l" BIGINT NOT NULL);
"""


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "db.duckdb"))
    for statement in DDL.split(";"):
        if statement.strip():
            connection.execute(statement)
    yield connection
    connection.close()


def assert_schema(table: pa.Table, expected: pa.Schema) -> None:
    assert table.schema.equals(expected, check_metadata=False)
    assert [f.nullable for f in table.schema] == [f.nullable for f in expected]


def rows(table: pa.Table) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in table.to_pylist()]


def names(table: pa.Table, column: str = "table_name") -> list[str]:
    return table.column(column).to_pylist()


# --- schemas of the answers --------------------------------------------------------------------


def test_schema_constants_match_the_spec() -> None:
    assert [(f.name, str(f.type), f.nullable) for f in TABLES_WITH_SCHEMA_SCHEMA] == [
        ("catalog_name", "string", True),
        ("db_schema_name", "string", True),
        ("table_name", "string", False),
        ("table_type", "string", False),
        ("table_schema", "binary", False),
    ]
    assert [(f.name, f.nullable) for f in PRIMARY_KEYS_SCHEMA] == [
        ("catalog_name", True),
        ("db_schema_name", True),
        ("table_name", False),
        ("column_name", False),
        ("key_sequence", False),
        ("key_name", True),
    ]
    assert PRIMARY_KEYS_SCHEMA.field("key_sequence").type == pa.int32()
    assert FOREIGN_KEYS_SCHEMA.field("update_rule").type == pa.uint8()
    assert FOREIGN_KEYS_SCHEMA.names == [
        "pk_catalog_name",
        "pk_db_schema_name",
        "pk_table_name",
        "pk_column_name",
        "fk_catalog_name",
        "fk_db_schema_name",
        "fk_table_name",
        "fk_column_name",
        "key_sequence",
        "fk_key_name",
        "pk_key_name",
        "update_rule",
        "delete_rule",
    ]
    not_null = {f.name for f in XDBC_TYPE_INFO_SCHEMA if not f.nullable}
    assert not_null == {
        "type_name",
        "data_type",
        "nullable",
        "case_sensitive",
        "searchable",
        "fixed_prec_scale",
        "sql_data_type",
    }
    create_params = XDBC_TYPE_INFO_SCHEMA.field("create_params").type
    assert create_params.value_field.nullable is False


def test_empty_answers_still_have_exact_schemas(con: duckdb.DuckDBPyConnection) -> None:
    assert_schema(metadata.get_db_schemas(con, "nope", None), DB_SCHEMAS_SCHEMA)
    assert_schema(metadata.get_tables(con, "nope", None, None), TABLES_SCHEMA)
    assert_schema(
        metadata.get_tables(con, "nope", None, None, include_schema=True), TABLES_WITH_SCHEMA_SCHEMA
    )
    assert_schema(metadata.get_primary_keys(con, None, None, "nope"), PRIMARY_KEYS_SCHEMA)
    assert_schema(metadata.get_imported_keys(con, None, None, "nope"), FOREIGN_KEYS_SCHEMA)
    assert_schema(metadata.get_exported_keys(con, None, None, "nope"), FOREIGN_KEYS_SCHEMA)
    assert_schema(metadata.get_cross_reference(con, None, None, "a", None, None, "b"), FOREIGN_KEYS_SCHEMA)
    assert_schema(metadata.get_xdbc_type_info(con, 424242), XDBC_TYPE_INFO_SCHEMA)
    for table in (
        metadata.get_db_schemas(con, "nope", None),
        metadata.get_primary_keys(con, None, None, "x"),
    ):
        assert table.num_rows == 0


# --- catalogs and schemas ----------------------------------------------------------------------


def test_catalogs_list_the_database_and_never_system(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_catalogs(con)
    assert_schema(result, CATALOGS_SCHEMA)
    assert rows(result) == [("db",)]


def test_temp_catalog_is_listed_only_while_it_has_objects(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TEMP TABLE scratch (q INTEGER)")
    assert names(metadata.get_catalogs(con), "catalog_name") == ["db", "temp"]
    assert ("temp", "main") in rows(metadata.get_db_schemas(con, None, None))
    # another connection to the same database has no temp objects
    other = con.cursor()
    assert names(metadata.get_catalogs(other), "catalog_name") == ["db"]
    other.close()
    con.execute("DROP TABLE scratch")
    assert names(metadata.get_catalogs(con), "catalog_name") == ["db"]


def test_attached_databases_are_catalogs(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con.execute(f"ATTACH '{tmp_path / 'extra.duckdb'}' AS extra")
    con.execute("CREATE TABLE extra.main.e (x INTEGER)")
    assert names(metadata.get_catalogs(con), "catalog_name") == ["db", "extra"]
    assert rows(metadata.get_tables(con, "extra", None, None)) == [("extra", "main", "e", "TABLE")]


def test_db_schemas_sorted_and_reserved_schema_hidden(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_db_schemas(con, None, None)
    assert_schema(result, DB_SCHEMAS_SCHEMA)
    assert rows(result) == [("db", "main"), ("db", "sales")]


@pytest.mark.parametrize(
    ("catalog", "pattern", "expected"),
    [
        ("db", None, ["main", "sales"]),
        ("", None, []),  # "" = objects without a catalog: none in DuckDB
        ("DB", None, []),  # catalog is an exact name
        (None, "s%", ["sales"]),
        (None, "_ain", ["main"]),
        (None, "%", ["main", "sales"]),
        (None, "__stage%", []),
        (None, "__stageflight", []),
        (None, "", []),
    ],
)
def test_db_schema_filters(
    con: duckdb.DuckDBPyConnection, catalog: str | None, pattern: str | None, expected: list[str]
) -> None:
    assert names(metadata.get_db_schemas(con, catalog, pattern), "db_schema_name") == expected


# --- tables --------------------------------------------------------------------------------------

ALL_TABLES = [
    ("db", "main", "t1", "TABLE"),
    ("db", "main", "t10", "TABLE"),
    ("db", "main", "t2", "TABLE"),
    ("db", "main", "underXscore", "TABLE"),
    ("db", "main", "under_score", "TABLE"),
    ("db", "main", 'we"ird', "TABLE"),
    ("db", "sales", "big_orders", "VIEW"),
    ("db", "sales", "customers", "TABLE"),
    ("db", "sales", "lines", "TABLE"),
    ("db", "sales", "orders", "TABLE"),
]


def test_tables_all_sorted_with_types(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_tables(con, None, None, None)
    assert_schema(result, TABLES_SCHEMA)
    assert rows(result) == ALL_TABLES


def test_temp_table_is_local_temporary(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TEMP TABLE scratch (q INTEGER NOT NULL)")
    con.execute("CREATE TEMP VIEW scratch_v AS SELECT 1 AS k")
    result = metadata.get_tables(con, "temp", None, None, include_schema=True)
    assert [row[:4] for row in rows(result)] == [
        ("temp", "main", "scratch", "LOCAL TEMPORARY"),
        ("temp", "main", "scratch_v", "VIEW"),
    ]
    schema = pa.ipc.read_schema(pa.py_buffer(result.column("table_schema")[0].as_py()))
    assert schema.field("q").nullable is False
    assert schema.field("q").metadata[b"ARROW:FLIGHT:SQL:CATALOG_NAME"] == b"temp"


@pytest.mark.parametrize(
    ("schema_pattern", "table_pattern", "expected"),
    [
        (None, "t_", ["t1", "t2"]),  # _ is exactly one character
        (None, "t%", ["t1", "t10", "t2"]),
        (None, "under_score", ["underXscore", "under_score"]),
        (None, "under\\_score", ["under_score"]),  # \ escapes the wildcard (SQL_SEARCH_STRING_ESCAPE)
        (None, "T1", []),  # LIKE is case-sensitive
        (None, "%order%", ["big_orders", "orders"]),
        ("sal%", None, ["big_orders", "customers", "lines", "orders"]),
        ("sales", "c%", ["customers"]),
        (None, "users", []),
        (None, "grants", []),
        ("__stageflight", None, []),
        ("%", "%", [row[2] for row in ALL_TABLES]),
        (None, "trailing\\", []),  # a lone trailing escape is taken literally, not an error
        (None, "x'; DROP TABLE t1; --", []),  # bound, never spliced
    ],
)
def test_table_patterns(
    con: duckdb.DuckDBPyConnection, schema_pattern: str | None, table_pattern: str | None, expected: list[str]
) -> None:
    assert names(metadata.get_tables(con, None, schema_pattern, table_pattern)) == expected
    assert names(metadata.get_tables(con, None, None, "t1")) == ["t1"]


def test_table_catalog_filter(con: duckdb.DuckDBPyConnection) -> None:
    assert rows(metadata.get_tables(con, "db", None, None)) == ALL_TABLES
    assert rows(metadata.get_tables(con, "", None, None)) == []
    assert rows(metadata.get_tables(con, "system", None, None)) == []


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["VIEW"], ["big_orders"]),
        (["view"], ["big_orders"]),
        (["TABLE"], [r[2] for r in ALL_TABLES if r[3] == "TABLE"]),
        (["TABLE", "VIEW"], [r[2] for r in ALL_TABLES]),
        (["BASE TABLE"], []),  # DuckDB's own word is not the reported vocabulary
        (["SYSTEM TABLE"], []),
        ([], [r[2] for r in ALL_TABLES]),
    ],
)
def test_table_types_filter(con: duckdb.DuckDBPyConnection, types: list[str], expected: list[str]) -> None:
    assert names(metadata.get_tables(con, None, None, None, types)) == expected


def test_table_types(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_table_types(con)
    assert_schema(result, TABLE_TYPES_SCHEMA)
    assert rows(result) == [("LOCAL TEMPORARY",), ("TABLE",), ("VIEW",)]


def read_table_schema(result: pa.Table, table_name: str) -> pa.Schema:
    index = names(result).index(table_name)
    return pa.ipc.read_schema(pa.py_buffer(result.column("table_schema")[index].as_py()))


def meta(field: pa.Field) -> dict[str, str]:
    prefix = "ARROW:FLIGHT:SQL:"
    return {k.decode().removeprefix(prefix): v.decode() for k, v in (field.metadata or {}).items()}


def test_include_schema_types_nullability_and_metadata(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_tables(con, None, "sales", None, include_schema=True)
    assert_schema(result, TABLES_WITH_SCHEMA_SCHEMA)
    assert [row[:4] for row in rows(result)] == [row for row in ALL_TABLES if row[1] == "sales"]

    orders = read_table_schema(result, "orders")
    assert orders.names == ["id", "region", "customer_id", "amount", "doubled"]
    assert [f.type for f in orders] == [pa.int32(), pa.string(), pa.int32(), pa.decimal128(10, 2), pa.int32()]
    assert [f.nullable for f in orders] == [False, False, True, False, True]  # PK columns are NOT NULL

    id_meta = meta(orders.field("id"))
    assert id_meta == {
        "CATALOG_NAME": "db",
        "SCHEMA_NAME": "sales",
        "DB_SCHEMA_NAME": "sales",
        "TABLE_NAME": "orders",
        "TYPE_NAME": "INTEGER",
        "IS_AUTO_INCREMENT": "1",
        "IS_CASE_SENSITIVE": "0",
        "IS_READ_ONLY": "0",
        "IS_SEARCHABLE": "1",
        "PRECISION": "10",
        "SCALE": "0",
    }
    amount = meta(orders.field("amount"))
    assert (amount["TYPE_NAME"], amount["PRECISION"], amount["SCALE"]) == ("DECIMAL(10,2)", "10", "2")
    assert amount["REMARKS"] == "gross amount"
    assert amount["IS_AUTO_INCREMENT"] == "0"
    region = meta(orders.field("region"))
    assert region["IS_CASE_SENSITIVE"] == "1"
    assert "PRECISION" not in region
    assert meta(orders.field("doubled"))["IS_READ_ONLY"] == "1"

    view = read_table_schema(result, "big_orders")
    assert view.names == ["id", "amount"]
    assert {meta(f)["IS_READ_ONLY"] for f in view} == {"1"}
    assert meta(view.field("amount"))["TABLE_NAME"] == "big_orders"


def test_include_schema_quotes_identifiers(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_tables(con, None, None, 'we"ird', include_schema=True)
    schema = read_table_schema(result, 'we"ird')
    assert schema.names == ['co"l']
    assert schema.field('co"l').type == pa.int64()
    assert schema.field('co"l').nullable is False
    assert meta(schema.field('co"l'))["TABLE_NAME"] == 'we"ird'


def test_include_schema_survives_a_broken_view(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE gone (a INTEGER)")
    con.execute("CREATE VIEW dangling AS SELECT * FROM gone")
    con.execute("DROP TABLE gone")
    result = metadata.get_tables(con, None, None, "dangling", include_schema=True)
    assert names(result) == ["dangling"]
    assert isinstance(read_table_schema(result, "dangling"), pa.Schema)


def test_include_schema_does_not_read_data_or_leave_results_open(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("INSERT INTO t1 SELECT range FROM range(1000)")
    result = metadata.get_tables(con, None, None, "t1", include_schema=True)
    assert read_table_schema(result, "t1").names == ["a"]
    assert con.execute("SELECT count(*) FROM t1").fetchall() == [(1000,)]


def test_quote_identifier() -> None:
    assert metadata.quote_identifier('a"b') == '"a""b"'
    assert metadata.quote_identifier("x") == '"x"'


# --- keys ----------------------------------------------------------------------------------------


def test_primary_keys(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_primary_keys(con, None, None, "orders")
    assert_schema(result, PRIMARY_KEYS_SCHEMA)
    key = "orders_id_region_pkey"
    assert rows(result) == [
        ("db", "sales", "orders", "id", 1, key),
        ("db", "sales", "orders", "region", 2, key),
    ]
    assert rows(metadata.get_primary_keys(con, "db", "sales", "customers")) == [
        ("db", "sales", "customers", "id", 1, "customers_id_pkey")
    ]


@pytest.mark.parametrize(
    ("catalog", "schema", "table"),
    [
        ("db", "main", "orders"),  # wrong schema
        ("other", None, "orders"),
        ("", None, "orders"),
        (None, "", "orders"),
        (None, None, "t1"),  # no primary key
        (None, None, "users"),  # reserved schema
        (None, "__stageflight", "users"),
        (None, None, "ord%"),  # table is a name, not a pattern
    ],
)
def test_primary_keys_filters(
    con: duckdb.DuckDBPyConnection, catalog: str | None, schema: str | None, table: str
) -> None:
    assert metadata.get_primary_keys(con, catalog, schema, table).num_rows == 0


LINES_TO_ORDERS = [
    ("db", "sales", "orders", "id", "db", "sales", "lines", "order_id", 1),
    ("db", "sales", "orders", "region", "db", "sales", "lines", "order_region", 2),
]


def test_imported_keys(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_imported_keys(con, None, None, "lines")
    assert_schema(result, FOREIGN_KEYS_SCHEMA)
    fk_name = result.column("fk_key_name").to_pylist()
    assert len(set(fk_name)) == 1 and fk_name[0]
    assert [row[:9] for row in rows(result)] == LINES_TO_ORDERS
    assert set(result.column("pk_key_name").to_pylist()) == {"orders_id_region_pkey"}
    assert set(result.column("update_rule").to_pylist()) == {3}
    assert set(result.column("delete_rule").to_pylist()) == {3}
    assert [row[:9] for row in rows(metadata.get_imported_keys(con, None, None, "orders"))] == [
        ("db", "sales", "customers", "id", "db", "sales", "orders", "customer_id", 1)
    ]


def test_exported_keys(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_exported_keys(con, "db", "sales", "orders")
    assert_schema(result, FOREIGN_KEYS_SCHEMA)
    assert [row[:9] for row in rows(result)] == LINES_TO_ORDERS
    customers = metadata.get_exported_keys(con, None, None, "customers")
    assert [row[6:9] for row in rows(customers)] == [("orders", "customer_id", 1)]
    assert customers.column("pk_key_name").to_pylist() == ["customers_id_pkey"]


def test_cross_reference(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_cross_reference(con, None, "sales", "orders", None, "sales", "lines")
    assert_schema(result, FOREIGN_KEYS_SCHEMA)
    assert [row[:9] for row in rows(result)] == LINES_TO_ORDERS
    assert metadata.get_cross_reference(con, None, None, "customers", None, None, "lines").num_rows == 0
    assert metadata.get_cross_reference(con, None, "sales", "orders", None, "main", "lines").num_rows == 0
    assert metadata.get_cross_reference(con, "db", None, "orders", "", None, "lines").num_rows == 0


def test_foreign_keys_filters_and_reserved_schema(con: duckdb.DuckDBPyConnection) -> None:
    assert metadata.get_imported_keys(con, None, "main", "lines").num_rows == 0
    assert metadata.get_imported_keys(con, "", None, "lines").num_rows == 0
    assert metadata.get_imported_keys(con, None, None, "grants").num_rows == 0
    assert metadata.get_exported_keys(con, None, None, "users").num_rows == 0
    assert metadata.get_exported_keys(con, None, "__stageflight", "users").num_rows == 0


def test_foreign_key_names_are_canonicalised(con: duckdb.DuckDBPyConnection) -> None:
    # DuckDB keeps the referenced table/column names as typed in the REFERENCES clause
    con.execute('CREATE TABLE "Parent" ("Key" INTEGER PRIMARY KEY, code INTEGER UNIQUE)')
    con.execute(
        'CREATE TABLE child (k INTEGER REFERENCES PARENT (key), c INTEGER REFERENCES "Parent" (CODE))'
    )
    result = metadata.get_exported_keys(con, None, None, "Parent")
    assert [(r[2], r[3], r[7], r[10]) for r in rows(result)] == [
        ("Parent", "code", "c", "Parent_code_key"),
        ("Parent", "Key", "k", "Parent_key_pkey"),
    ]


def test_reserved_schema_hidden_everywhere(con: duckdb.DuckDBPyConnection) -> None:
    answers = [
        metadata.get_db_schemas(con, None, None),
        metadata.get_tables(con, None, None, None),
        metadata.get_tables(con, None, "%", "%", include_schema=True),
        metadata.get_primary_keys(con, None, None, "users"),
        metadata.get_imported_keys(con, None, None, "grants"),
        metadata.get_exported_keys(con, None, None, "users"),
        metadata.get_cross_reference(con, None, None, "users", None, None, "grants"),
    ]
    for answer in answers:
        text = str(answer.to_pylist())
        assert "__stageflight" not in text
        assert "users" not in text and "grants" not in text


# --- type info -----------------------------------------------------------------------------------


def test_xdbc_type_info_all(con: duckdb.DuckDBPyConnection) -> None:
    result = metadata.get_xdbc_type_info(con, None)
    assert_schema(result, XDBC_TYPE_INFO_SCHEMA)
    by_name = {row["type_name"]: row for row in result.to_pylist()}
    expected_codes = {
        "BOOLEAN": 16,
        "TINYINT": -6,
        "SMALLINT": 5,
        "INTEGER": 4,
        "BIGINT": -5,
        "HUGEINT": 2,
        "DECIMAL": 3,
        "FLOAT": 7,
        "DOUBLE": 8,
        "VARCHAR": 12,
        "BLOB": -3,
        "DATE": 91,
        "TIME": 92,
        "TIMESTAMP": 93,
        "TIMESTAMP WITH TIME ZONE": 2014,
        "INTERVAL": 1111,
        "UUID": 1111,
    }
    assert {name: by_name[name]["data_type"] for name in expected_codes} == expected_codes
    keys = [(row["data_type"], row["type_name"]) for row in result.to_pylist()]
    assert keys == sorted(keys)
    assert by_name["DECIMAL"]["create_params"] == ["precision", "scale"]
    assert by_name["VARCHAR"]["case_sensitive"] is True
    assert by_name["INTEGER"]["sql_data_type"] == 4
    assert (by_name["DATE"]["sql_data_type"], by_name["DATE"]["datetime_subcode"]) == (9, 1)
    assert by_name["UBIGINT"]["unsigned_attribute"] is True
    assert by_name["VARCHAR"]["unsigned_attribute"] is None
    # every type name is one DuckDB understands (LIST and STRUCT need their create_params)
    for name in by_name.keys() - {"LIST", "STRUCT"}:
        con.execute(f"SELECT CAST(NULL AS {name})").fetchall()


@pytest.mark.parametrize(
    ("data_type", "expected"), [(4, ["INTEGER", "UINTEGER"]), (12, ["VARCHAR"]), (-7, [])]
)
def test_xdbc_type_info_filter(con: duckdb.DuckDBPyConnection, data_type: int, expected: list[str]) -> None:
    result = metadata.get_xdbc_type_info(con, data_type)
    assert_schema(result, XDBC_TYPE_INFO_SCHEMA)
    assert names(result, "type_name") == expected
