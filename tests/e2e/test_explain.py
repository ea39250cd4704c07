"""EXPLAIN and EXPLAIN ANALYZE (issue 16 item 14) through the real ADBC driver: allowed around the
statements the guard allows, refused with the inner statement's own error, privilege-checked as the
statement they explain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.e2e.stage_helpers import execute


def _explain(conn: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()


def test_explain_select_answers_the_plan(root_conn: Any, unique_table: Callable[[str], str]) -> None:
    t = unique_table("ex")
    execute(root_conn, f"CREATE TABLE {t} AS SELECT range AS a FROM range(10)")
    columns, rows = _explain(root_conn, f"EXPLAIN SELECT a FROM {t} WHERE a > 1")
    assert columns == ["explain_key", "explain_value"]
    assert rows[0][0] == "physical_plan"
    assert "SEQ_SCAN" in rows[0][1].upper().replace(" ", "_")


def test_explain_analyze_runs_the_query(root_conn: Any, unique_table: Callable[[str], str]) -> None:
    t = unique_table("ex")
    execute(root_conn, f"CREATE TABLE {t} AS SELECT range AS a FROM range(1000)")
    columns, rows = _explain(root_conn, f"explain analyze SELECT sum(a) FROM {t} WHERE a % 2 = 0")
    assert columns == ["explain_key", "explain_value"]
    assert rows[0][0] == "analyzed_plan"
    assert "Total Time" in rows[0][1]
    assert "500 rows" in rows[0][1]  # the filter's row count: it ran


def test_explain_analyze_of_dml_runs_it(root_conn: Any, unique_table: Callable[[str], str]) -> None:
    t = unique_table("ex")
    execute(root_conn, f"CREATE TABLE {t} (a INTEGER)")
    _explain(root_conn, f"EXPLAIN ANALYZE INSERT INTO {t} VALUES (1), (2)")
    _explain(root_conn, f"EXPLAIN INSERT INTO {t} VALUES (3)")  # plain EXPLAIN does not run it
    with root_conn.cursor() as cur:
        cur.execute(f"SELECT a FROM {t} ORDER BY a")
        assert cur.fetchall() == [(1,), (2,)]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "EXPLAIN SELECT * FROM read_csv('/etc/passwd')",
            "Function read_csv is not allowed: files are reached",
        ),
        ("EXPLAIN ANALYZE SELECT * FROM duckdb_settings()", "Function duckdb_settings is not allowed"),
        ("EXPLAIN ATTACH ':memory:' AS x", "Statement ATTACH is not allowed"),
        ("EXPLAIN PRAGMA version", "Statement PRAGMA is not allowed"),
        ("EXPLAIN CREATE TABLE explained (a INTEGER)", "EXPLAIN of CREATE is not allowed"),
        ("EXPLAIN EXPLAIN SELECT 1", "EXPLAIN of EXPLAIN is not allowed"),
        ("EXPLAIN (FORMAT JSON) SELECT 1", "EXPLAIN options are not supported"),
    ],
)
def test_explain_of_a_refused_statement_is_refused_alike(root_conn: Any, sql: str, message: str) -> None:
    with pytest.raises(dbapi.Error, match=message), root_conn.cursor() as cur:
        cur.execute(sql)


def test_explain_needs_the_explained_statements_privileges(
    alice: Any, bob: Any, unique_table: Callable[[str], str]
) -> None:
    t = unique_table("payroll")
    execute(alice, f"CREATE TABLE {t} (id INTEGER)")
    for sql in (f"EXPLAIN SELECT * FROM {t}", f"EXPLAIN ANALYZE SELECT * FROM {t}"):
        with (
            pytest.raises(dbapi.Error, match=f"Permission denied: SELECT on main[.]{t}"),
            bob.cursor() as cur,
        ):
            cur.execute(sql)
    with pytest.raises(dbapi.Error, match=f"Permission denied: DELETE on main[.]{t}"), bob.cursor() as cur:
        cur.execute(f"EXPLAIN ANALYZE DELETE FROM {t}")
    columns, _ = _explain(alice, f"EXPLAIN SELECT * FROM {t}")
    assert columns == ["explain_key", "explain_value"]
