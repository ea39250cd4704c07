"""Catalog qualifiers, time travel and DuckLake names through the real server and ADBC (issue 13 PR 5).

The server allows a name to be qualified only with its own database (``stageflight``, as DuckDB
reports it) or ``temp``; ``memory``, ``system``, DuckLake's metadata catalog and AT/BEFORE are refused
before DuckDB sees the statement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pytest


def _rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall() if cur.description else []


REFUSED = [
    ("SELECT * FROM memory.main.t", "Catalog not allowed: memory"),
    ('SELECT * FROM "memory"."main"."t"', "Catalog not allowed: memory"),
    ("SELECT * FROM system.main.x", "Catalog not allowed: system"),
    ("SELECT * FROM system.x", "Catalog not allowed: system"),
    ("CREATE TABLE memory.main.t (a INT)", "Catalog not allowed: memory"),
    ("INSERT INTO system.main.t VALUES (1)", "Catalog not allowed: system"),
    ("SHOW TABLES FROM system", "Catalog not allowed: system"),
    (
        "SELECT * FROM __ducklake_metadata_lake.lake_meta.ducklake_table",
        "Name __ducklake_metadata_lake is reserved",
    ),
    ('DELETE FROM "__ducklake_metadata_lake".x.y', "Name __ducklake_metadata_lake is reserved"),
    ("CREATE TABLE __ducklake_x (a INT)", "Name __ducklake_x is reserved"),
    ("CREATE SCHEMA __ducklake_meta", "Schema __ducklake_meta is reserved"),
    ("SELECT * FROM range(3) AT (VERSION => 1)", "Time travel is not allowed: AT (VERSION => ...)"),
]


@pytest.mark.parametrize(("sql", "fragment"), REFUSED, ids=[f"refused{i}" for i in range(len(REFUSED))])
def test_other_catalogs_and_ducklake_names_are_refused(user_conn: Any, sql: str, fragment: str) -> None:
    with pytest.raises(dbapi.Error) as err:
        _rows(user_conn, sql)
    assert fragment in str(err.value)
    assert "Traceback" not in str(err.value)


def test_the_main_database_qualifies_names(root_conn: Any, unique_table: Callable[[str], str]) -> None:
    table = unique_table("cq")
    _rows(root_conn, f"CREATE TABLE stageflight.main.{table} (a INTEGER)")
    try:
        _rows(root_conn, f'INSERT INTO "StageFlight".main.{table} VALUES (1), (2)')
        assert _rows(root_conn, f"SELECT sum(a) FROM stageflight.main.{table}") == [(3,)]
        assert _rows(root_conn, f"SELECT count(*) FROM stageflight.{table}") == [(2,)]
        assert _rows(root_conn, f'SELECT count(*) FROM "STAGEFLIGHT"."MAIN"."{table.upper()}"') == [(2,)]
    finally:
        _rows(root_conn, f"DROP TABLE stageflight.main.{table}")
    assert _rows(root_conn, "SELECT current_database()") == [("stageflight",)]


def test_temp_qualifies_names(user_conn: Any) -> None:
    _rows(user_conn, "CREATE TEMP TABLE scratch_cq (a INTEGER)")
    _rows(user_conn, "INSERT INTO temp.main.scratch_cq VALUES (7)")
    assert _rows(user_conn, "SELECT a FROM temp.main.scratch_cq") == [(7,)]


def test_time_travel_on_a_real_table_is_refused(root_conn: Any, unique_table: Callable[[str], str]) -> None:
    table = unique_table("tt")
    _rows(root_conn, f"CREATE TABLE {table} (a INTEGER)")
    try:
        for clause, shown in [
            ("AT (VERSION => 1)", "AT (VERSION => ...)"),
            ("AT (TIMESTAMP => now() - INTERVAL 1 DAY)", "AT (TIMESTAMP => ...)"),
            ("BEFORE (STATEMENT => 'x')", "BEFORE (STATEMENT => ...)"),
        ]:
            with pytest.raises(dbapi.Error) as err:
                _rows(root_conn, f"SELECT * FROM {table} {clause}")
            assert f"Time travel is not allowed: {shown}" in str(err.value)
        assert _rows(root_conn, f"SELECT count(*) FROM {table}") == [(0,)]
    finally:
        _rows(root_conn, f"DROP TABLE {table}")
