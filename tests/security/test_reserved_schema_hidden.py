"""No catalog view or metadata call shows the server's reserved schema (issue 11, item 15).

information_schema, pg_catalog and sqlite_temp_master used to list ``__stageflight``'s tables,
columns, constraints and row counts to any user. Reads of the filterable views are now rewritten
into subqueries that drop those rows (engine/catalog_views.py); the others are refused.
"""

from __future__ import annotations

import re

import adbc_driver_manager.dbapi as dbapi
import pytest

from engine.errors import StatementRejected
from engine.sql import guard
from tests.conftest import connect

TABLE = "hidden_check_orders"

VIEWS = [
    "information_schema.tables",
    "information_schema.columns",
    "information_schema.schemata",
    "information_schema.views",
    "information_schema.table_constraints",
    "information_schema.key_column_usage",
    "information_schema.check_constraints",
    "information_schema.constraint_column_usage",
    "pg_catalog.pg_namespace",
    "pg_catalog.pg_class",
    "pg_catalog.pg_tables",
    "pg_catalog.pg_views",
    "pg_catalog.pg_indexes",
    "pg_catalog.pg_attribute",
    "pg_catalog.pg_attrdef",
    "pg_catalog.pg_constraint",
    "pg_catalog.pg_index",
    "pg_catalog.pg_description",
    "pg_catalog.pg_depend",
    "pg_class",
    "pg_namespace",
    "pg_tables",
]

REFUSED = [
    ("SELECT * FROM sqlite_master", "System view sqlite_master is not allowed"),
    ("SELECT * FROM sqlite_temp_master", "System view sqlite_temp_master is not allowed"),
    ("SELECT * FROM sqlite_temp_schema", "System view sqlite_temp_schema is not allowed"),
    ("SELECT * FROM duckdb_tables()", "Function duckdb_tables is not allowed"),
    ("SELECT * FROM duckdb_columns()", "Function duckdb_columns is not allowed"),
    ("SELECT * FROM duckdb_tables", "System view duckdb_tables is not allowed"),
    ("SELECT * FROM pg_catalog.pg_prepared_statements", "System view pg_prepared_statements is not allowed"),
    ("SHOW ALL TABLES", "Statement SHOW ALL TABLES is not allowed"),
    ("SUMMARIZE SELECT 1", "Statement SUMMARIZE is not allowed"),
    ("DESCRIBE __stageflight.users", "Schema __stageflight is reserved"),
]


@pytest.fixture(scope="module")
def setup(server):
    # The reserved schema holds rows (root, a stage, a grant, load history) and a user table with a
    # key, a default and an index sits next to it, so a filter that hid too much would show.
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS hidden_eve IDENTIFIED BY 'eve-pw'")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, note VARCHAR DEFAULT 'x')")
        cur.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_note ON {TABLE} (note)")
        cur.execute("CREATE STAGE IF NOT EXISTS hidden_stage")
        cur.execute("GRANT READ ON STAGE hidden_stage TO hidden_eve")
        cur.execute(f"GRANT SELECT ON {TABLE} TO hidden_eve")  # catalog views list only what eve may use
    return server


@pytest.fixture(params=["root", "hidden_eve"], scope="module")
def conn(request, setup):
    password = None if request.param == "root" else "eve-pw"
    c = connect(setup) if password is None else connect(setup, user=request.param, password=password)
    yield c
    c.close()


def _rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _mentions_reserved(rows: list[tuple]) -> list[tuple]:
    return [row for row in rows if "__stage" in repr(row).lower()]


@pytest.mark.parametrize("view", VIEWS)
def test_catalog_view_rows_never_name_the_reserved_schema(conn, view) -> None:
    rows = _rows(conn, f"SELECT * FROM {view}")
    assert not _mentions_reserved(rows)


def test_filtered_views_still_list_user_objects(conn) -> None:
    tables = _rows(conn, "SELECT table_schema, table_name FROM information_schema.tables")
    assert ("main", TABLE) in tables
    columns = _rows(
        conn, f"SELECT column_name FROM information_schema.columns WHERE table_name = '{TABLE}' ORDER BY 1"
    )
    assert columns == [("id",), ("note",)]
    schemas = {name for (name,) in _rows(conn, "SELECT schema_name FROM information_schema.schemata")}
    assert "main" in schemas and not any(s.startswith("__stage") for s in schemas)
    assert (TABLE,) in _rows(
        conn, "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    )
    assert ("main", TABLE) in _rows(conn, "SELECT schemaname, tablename FROM pg_catalog.pg_tables")
    indexes = _rows(conn, f"SELECT indexname FROM pg_catalog.pg_indexes WHERE tablename = '{TABLE}'")
    assert indexes == [(f"{TABLE}_note",)]


def test_row_counts_of_reserved_tables_are_not_shown(conn) -> None:
    # reltuples / estimated sizes were the "row counts" the issue saw: no reserved relation remains.
    rows = _rows(conn, "SELECT relname, reltuples FROM pg_catalog.pg_class WHERE relkind = 'r'")
    names = {name for name, _ in rows}
    assert TABLE in names and not {"users", "stages", "file_formats", "load_history", "table_owners"} & names


def test_views_keyed_by_oid_drop_the_reserved_relations(conn) -> None:
    # pg_attribute and friends name no schema, only oids: load_history's columns must not appear.
    attnames = {name for (name,) in _rows(conn, "SELECT attname FROM pg_catalog.pg_attribute")}
    assert {"id", "note"} <= attnames and not {"file_key", "etag", "loaded_at"} & attnames
    [(defaults,)] = _rows(conn, "SELECT count(*) FROM pg_catalog.pg_attrdef")
    [(user_defaults,)] = _rows(
        conn, "SELECT count(*) FROM information_schema.columns WHERE column_default IS NOT NULL"
    )
    assert defaults == user_defaults


def test_a_user_alias_and_column_list_survive_the_rewrite(conn) -> None:
    rows = _rows(conn, f"SELECT t.n FROM pg_catalog.pg_tables AS t(s, n) WHERE t.n = '{TABLE}'")
    assert rows == [(TABLE,)]
    rows = _rows(
        conn, f"SELECT tables.table_name FROM information_schema.tables WHERE table_name = '{TABLE}'"
    )
    assert rows == [(TABLE,)]


def test_views_read_by_merge_delete_and_insert_are_filtered_too(conn, unique_table) -> None:
    sink = unique_table("hidden_sink")
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {sink} (s VARCHAR)")
        cur.execute(
            f"MERGE INTO {sink} USING information_schema.tables t ON false "
            "WHEN NOT MATCHED THEN INSERT VALUES (t.table_schema || '.' || t.table_name)"
        )
        cur.execute(f"INSERT INTO {sink} SELECT schema_name FROM information_schema.schemata")
        cur.execute(f"INSERT INTO {sink} SELECT 'kept' WHERE EXISTS (SELECT 1 FROM pg_namespace)")
        cur.execute(f"DELETE FROM {sink} USING pg_catalog.pg_tables p WHERE {sink}.s = p.schemaname || '.x'")
    rows = _rows(conn, f"SELECT s FROM {sink}")
    assert (f"main.{TABLE}",) in rows and ("kept",) in rows
    assert not _mentions_reserved(rows)


def test_show_tables_and_describe_do_not_list_reserved_tables(conn) -> None:
    assert not _mentions_reserved(_rows(conn, "SHOW TABLES"))
    assert (TABLE,) in _rows(conn, "SHOW TABLES")
    assert not _mentions_reserved(_rows(conn, "DESCRIBE information_schema.tables"))


@pytest.mark.parametrize(("sql", "fragment"), REFUSED)
def test_unfilterable_views_are_refused(conn, sql, fragment) -> None:
    with pytest.raises(dbapi.Error, match=re.escape(fragment)), conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()


def test_flight_sql_metadata_never_shows_the_reserved_schema(conn) -> None:
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    assert not _mentions_reserved([(repr(objects),)])
    names = {
        (schema["db_schema_name"], table["table_name"])
        for catalog in objects
        for schema in catalog["catalog_db_schemas"] or []
        for table in schema["db_schema_tables"] or []
    }
    assert ("main", TABLE) in names
    by_pattern = conn.adbc_get_objects(depth="tables", db_schema_filter="__stage%").read_all().to_pylist()
    assert all(not catalog["catalog_db_schemas"] for catalog in by_pattern)


def test_catalog_views_under_a_cte_name_are_the_users_own() -> None:
    # WITH pg_class AS (...) is the user's CTE, not pg_catalog's view: left alone.
    (tree,) = guard.validate("WITH pg_class AS (SELECT 1 AS relname) SELECT relname FROM pg_class")
    assert guard.regenerate(tree) == "WITH pg_class AS (SELECT 1 AS relname) SELECT relname FROM pg_class"


def test_a_catalog_view_with_a_sample_is_refused() -> None:
    (tree,) = guard.validate("SELECT * FROM information_schema.tables TABLESAMPLE 10%")
    with pytest.raises(StatementRejected, match="System view tables cannot be used with"):
        guard.regenerate(tree)
