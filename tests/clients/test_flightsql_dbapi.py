"""The pure-Python Flight SQL client `flightsql-dbapi` (influxdata, PyPI) against the real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pyarrow.flight as flight
import pytest

from tests.conftest import ROOT_PASSWORD, connect
from tests.e2e import stage_helpers

flightsql = pytest.importorskip(
    "flightsql", reason="flightsql-dbapi not installed: pip install --no-deps 'flightsql-dbapi==0.2.2'"
)


def _client(server: Any, user: str = "root", password: str = ROOT_PASSWORD) -> Any:
    return flightsql.FlightSQLClient(
        host="127.0.0.1", port=server.port, user=user, password=password, insecure=True
    )


@pytest.fixture
def client(server: Any) -> Iterator[Any]:
    c = _client(server)
    yield c
    c.close()


@pytest.fixture
def cur(client: Any) -> Iterator[Any]:
    with flightsql.connect(client) as conn, conn.cursor() as cursor:
        yield cursor


def test_select_returns_typed_columns(cur):
    cur.execute(
        "SELECT 1::INTEGER AS i, 'a' AS s, 2.5::DOUBLE AS d, 1.25::DECIMAL(18,3) AS dec, "
        "TRUE AS b, NULL::BIGINT AS n"
    )
    assert cur.fetchall() == [[1, "a", 2.5, Decimal("1.250"), True, None]]
    assert [(name, kind.__name__) for name, kind in cur.description] == [
        ("i", "INTEGER"),
        ("s", "TEXT"),
        ("d", "FLOAT"),
        ("dec", "DECIMAL"),
        ("b", "BOOLEAN"),
        ("n", "BIGINT"),
    ]


def test_ddl_and_dml_row_counts(client, cur, unique_table):
    table = unique_table("dbapi")
    assert client.execute_update(f"CREATE TABLE {table} (id INTEGER, name VARCHAR)") == 0
    assert client.execute_update(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')") == 3
    assert client.execute_update(f"UPDATE {table} SET name = 'z' WHERE id >= 2") == 2
    assert client.execute_update(f"DELETE FROM {table} WHERE id = 3") == 1
    cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
    assert cur.fetchall() == [[1, "a"], [2, "z"]]


def test_parameterised_queries_bind_union_values(client, cur, unique_table):
    # this client sends every parameter as a one-row dense union (int64|float64|utf8|binary|bool)
    table = unique_table("dbapi_params")
    client.execute_update(f"CREATE TABLE {table} (id INTEGER, name VARCHAR)")
    cur.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
    cur.execute(f"SELECT id, name FROM {table} WHERE id > ? AND name <> ? ORDER BY id", (1, "c"))
    assert cur.fetchall() == [[2, "b"]]


def test_copy_from_a_stage(server, client, cur, unique_table):
    table, stage = unique_table("dbapi_copy"), unique_table("dbapi_stage")
    client.execute_update(f"CREATE TABLE {table} (id INTEGER, name VARCHAR)")
    client.execute_update(f"CREATE STAGE {stage}")
    with connect(server) as conn:
        assert stage_helpers.put(conn, f"@{stage}/rows.csv", b"1,a\n2,b\n") == 200
    cur.execute(f"COPY INTO {table} FROM @{stage} FILE_FORMAT = (TYPE = CSV)")
    names = [name for name, _ in cur.description]
    loaded = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    assert [(row["File"], row["Rows_loaded"], row["Errors_seen"]) for row in loaded] == [("rows.csv", 2, 0)]
    cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
    assert cur.fetchall() == [[1, "a"], [2, "b"]]


def test_metadata_calls(client, unique_table):
    table = unique_table("dbapi_meta")
    client.execute_update(f"CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR)")
    with flightsql.connect(client) as conn:
        assert table in conn.flightsql_get_table_names()
        schemas = conn.flightsql_get_schema_names()  # the module's server: other tests add schemas
        assert "main" in schemas and len(schemas) == len(set(schemas))
        columns = conn.flightsql_get_columns(table)
        assert [(c["name"], c["type"].__name__, c["nullable"]) for c in columns] == [
            ("id", "INTEGER", False),
            ("name", "TEXT", True),
        ]
        assert [row["column_name"] for row in conn.flightsql_get_primary_keys(table)] == ["id"]
        info = conn.flightsql_get_sql_info([0, 562])
    assert info[0] == "stageflight"
    assert isinstance(info[562], int)


def test_bad_sql_and_missing_table_raise_our_message(cur):
    with pytest.raises(flight.FlightServerError, match="Cannot parse statement"):
        cur.execute("SELEC 1")
    with pytest.raises(flight.FlightServerError, match="Table with name nope_missing does not exist"):
        cur.execute("SELECT * FROM nope_missing")
    cur.execute("SELECT 42 AS answer")
    assert cur.fetchall() == [[42]]


def test_a_made_user_connects_and_is_refused_others_tables(
    server, client, unique_table, make_user: Callable[[], tuple[str, str]]
):
    table = unique_table("dbapi_closed")
    client.execute_update(f"CREATE TABLE {table} (id INTEGER)")
    name, password = make_user()
    user_client = _client(server, name, password)
    try:
        with flightsql.connect(user_client) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT current_user AS u")
            assert cursor.fetchall() == [[name]]
            with pytest.raises(
                flight.FlightUnauthorizedError, match=f"Permission denied: SELECT on main.{table}"
            ):
                cursor.execute(f"SELECT * FROM {table}")
    finally:
        user_client.close()


def test_wrong_password_is_refused_with_our_message(server):
    with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid user name or password"):
        _client(server, "root", "wrong")
