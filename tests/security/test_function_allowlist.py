"""The function check is a positive list: only reviewed functions reach DuckDB (issue 11, item 4).

SQL held in a string used to reach DuckDB's binder through functions no deny list named
(json_serialize_plan planned the reserved schema and quoted the database file in its error). Every
name a statement calls must now be on engine/allowed_functions.py, which is generated from the
pinned DuckDB by scripts/list_functions.py and reviewed.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import adbc_driver_manager.dbapi as dbapi
import duckdb
import pytest
from sqlglot import exp

from engine.errors import StatementRejected
from engine.sql import allowed_functions, guard
from engine.sql.allowed_functions import ALLOWED_FUNCTIONS, SPECIAL_FORMS, TYPE_NAMES
from tests.conftest import connect

REPO = Path(__file__).resolve().parents[2]


def _refusal(sql: str) -> str:
    with pytest.raises(StatementRejected) as err:
        for tree in guard.validate(sql):
            guard.regenerate(tree)
    return str(err.value)


# -- the list itself ------------------------------------------------------------------------------
def _duckdb_functions(*types: str) -> set[str]:
    con = duckdb.connect(":memory:")
    marks = ", ".join("?" for _ in types)
    rows = con.execute(
        f"SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE function_type IN ({marks})",
        list(types),
    ).fetchall()
    return {name for (name,) in rows}


def test_every_allowed_name_is_a_function_of_the_installed_duckdb() -> None:
    # One list for every supported DuckDB (1.5.5 for the lake extensions, 2.0.x): generated on
    # DUCKDB_VERSION; an older DuckDB may lack some names (harmless in a positive list).
    if duckdb.__version__ != allowed_functions.DUCKDB_VERSION:
        pytest.skip(f"the list is generated on DuckDB {allowed_functions.DUCKDB_VERSION}")
    missing = ALLOWED_FUNCTIONS - _duckdb_functions("scalar", "aggregate", "window", "macro")
    assert not missing, f"allowed but unknown to DuckDB {duckdb.__version__}: {sorted(missing)}"


@functools.cache
def _script_output() -> str:
    """What scripts/list_functions.py prints on this DuckDB (run once for the tests that read it)."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "list_functions.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout


def test_every_function_the_rules_allow_on_this_duckdb_is_on_the_list() -> None:
    # On every supported version, nothing the script would allow is missing from the checked-in list.
    out = _script_output()
    generated = set(re.findall(r'^        "(\w+)",$', out, re.M))
    assert generated and generated <= ALLOWED_FUNCTIONS | SPECIAL_FORMS | TYPE_NAMES


def test_special_forms_and_type_names_are_not_table_functions_or_pragmas() -> None:
    # unnest is both: syntax in a select list, and one of the table functions the guard allows.
    assert (SPECIAL_FORMS | TYPE_NAMES) & _duckdb_functions("table", "table_macro", "pragma") == {"unnest"}
    assert not TYPE_NAMES & _duckdb_functions("scalar", "aggregate", "window", "macro")


def test_checked_in_list_is_what_the_script_generates() -> None:
    if duckdb.__version__ != allowed_functions.DUCKDB_VERSION:
        pytest.skip(f"the list is generated on DuckDB {allowed_functions.DUCKDB_VERSION}")
    # A DuckDB upgrade changes the output: regenerate, review the diff, commit.
    out = _script_output()
    assert out == Path(allowed_functions.__file__).read_text()
    assert allowed_functions.DUCKDB_VERSION == duckdb.__version__


@pytest.mark.parametrize(
    "name",
    [
        "json_serialize_plan",
        "json_serialize_sql",
        "json_deserialize_sql",
        "json_execute_serialized_sql",
        "query",
        "query_table",
        "read_csv",
        "read_blob",
        "glob",
        "current_setting",
        "getvariable",
        "current_query",
        "list_aggregate",
        "aggregate",
        "to_aggregate_state",
        "finalize",
        "index_key",
        "make_type",
        "write_log",
        "sleep_ms",
        "pg_sleep",
        "pg_get_viewdef",
        "has_table_privilege",
        "in_search_path",
        "stats",
    ],
)
def test_functions_that_take_sql_names_or_settings_are_not_on_the_list(name: str) -> None:
    assert name not in ALLOWED_FUNCTIONS and name not in SPECIAL_FORMS


# -- the guard holds statements to it --------------------------------------------------------------
def test_an_unknown_function_is_refused_though_no_deny_rule_names_it() -> None:
    assert not guard._FILE_FUNC_RE.match("definitely_new_fn") and not guard._DENY_FUNC_RE.match(
        "definitely_new_fn"
    )
    assert _refusal("SELECT definitely_new_fn(1)") == "Function not allowed: definitely_new_fn"
    assert (
        _refusal("SELECT * FROM t WHERE a = definitely_new_fn(1)")
        == "Function not allowed: definitely_new_fn"
    )


def test_regenerated_text_is_held_to_the_list_too() -> None:
    # A tree the parser never produced (a typed node regenerating under another name looks the same).
    tree = exp.select(exp.Anonymous(this="definitely_new_fn", expressions=[exp.Literal.number(1)]))
    with pytest.raises(StatementRejected, match="Function not allowed: definitely_new_fn"):
        guard.regenerate(tree)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT json_serialize_plan('SELECT 1')", "Function not allowed: json_serialize_plan"),
        ("SELECT 'SELECT 1'.json_serialize_plan()", "Function not allowed: json_serialize_plan"),
        ("SELECT \"json_serialize_plan\"('SELECT 1')", "Function not allowed: json_serialize_plan"),
        ("SELECT main.json_serialize_plan('SELECT 1')", "Function not allowed: json_serialize_plan"),
        ("SELECT json_deserialize_sql(NULL)", "Function json_deserialize_sql is not allowed"),
        ("SELECT list_aggregate([1], 'min')", "Function not allowed: list_aggregate"),
        ("SELECT current_query()", "Function not allowed: current_query"),
        ("SELECT index_key({'table': 't'}, 1)", "Function not allowed: index_key"),
        ("SELECT infer_schema(1)", "Function not allowed: infer_schema"),
        ("SELECT nextval('se' || 'q')", "Function nextval needs the sequence name as a string literal"),
    ],
)
def test_sql_in_strings_and_names_in_strings_are_refused(sql: str, message: str) -> None:
    assert _refusal(sql) == message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT CAST(1 AS DECIMAL(10, 2)), 1::VARCHAR, TRY_CAST('x' AS INT), EXTRACT(year FROM current_date)",
        "SELECT CASE WHEN 1 > 0 THEN 1 END, INTERVAL 3 DAY, COALESCE(NULL, 1), NULLIF(1, 2), IF(1 > 0, 1, 2)",
        "SELECT list_transform([1, 2], lambda x: x + 1), {'a': 1}.a, [1, 2][1], struct_pack(a := 1)",
        "SELECT COLUMNS(*) FROM (SELECT 1 AS a, 2 AS b)",
        "SELECT CAST(NULL AS STRUCT(a INT, b MAP(VARCHAR, DECIMAL(3, 1))))",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT sum(n) FROM r",
        "WITH a(x) AS (SELECT 1), b(y) AS MATERIALIZED (SELECT 2) SELECT * FROM a, b",
        "SELECT * FROM (VALUES (1, 2)) AS v(a, b)",
        "CREATE INDEX i ON main.t (a)",
        "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
        "CREATE TABLE t (a INT DEFAULT nextval('seq'), b DECIMAL(18, 3), c STRUCT(x INT), d UNION(n INT))",
        "SELECT x.upper() FROM (SELECT 'a' AS x)",
        "SELECT sum(a) FILTER (WHERE a > 1), row_number() OVER (ORDER BY a) FROM t",
        "SELECT a FROM t GROUP BY GROUPING SETS ((a), ())",
        "SELECT * FROM t PIVOT (sum(a) FOR b IN ('x', 'y'))",
        "SELECT EXISTS (SELECT 1), ARRAY(SELECT 1), unnest([1, 2])",
    ],
)
def test_syntax_and_ordinary_functions_still_pass(sql: str) -> None:
    for tree in guard.validate(sql):
        assert guard.regenerate(tree)


# -- through the real server -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def mallory(server):
    with connect(server) as setup, setup.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS allowlist_mallory IDENTIFIED BY 'mallory-pw'")
    conn = connect(server, user="allowlist_mallory", password="mallory-pw")
    yield conn
    conn.close()


def _server_error(conn, sql: str, expected: str) -> str:
    with pytest.raises(dbapi.Error, match=re.escape(expected)) as err, conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    return str(err.value)


@pytest.mark.parametrize("user", ["mallory", "root"])
def test_json_serialize_plan_attack_is_refused_by_the_server(request, server, user) -> None:
    conn = request.getfixturevalue("mallory") if user == "mallory" else request.getfixturevalue("root_conn")
    db_file = server.engine.config.database_path
    attacks = [
        "SELECT json_serialize_plan('SELECT * FROM __stage' || 'flight.users')",
        f"SELECT json_serialize_plan('SELECT * FROM read_csv(''{db_file}'', columns={{''a'': ''BLOB''}})')",
        f"SELECT json_serialize_plan('SELECT * FROM read_' || 'blob(''{db_file}.wal'')')",
    ]
    for sql in attacks:
        message = _server_error(conn, sql, "Function not allowed: json_serialize_plan")
        assert "Candidate bindings" not in message and "password_hash" not in message


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT 'SELECT 42'.json_serialize_plan()", "Function not allowed: json_serialize_plan"),
        ("SELECT json_deserialize_sql(json_serialize_sql('SELECT 1'))", "is not allowed"),
        ("SELECT * FROM query('SELECT 42')", "Function query is not allowed"),
        ("SELECT list_aggregate([1, 2], 'm' || 'in')", "Function not allowed: list_aggregate"),
        ("SELECT definitely_new_fn(1)", "Function not allowed: definitely_new_fn"),
        ("SELECT nextval('__stage' || 'flight.seq')", "needs the sequence name as a string literal"),
    ],
)
def test_sql_in_a_string_is_refused_by_the_server(mallory, sql, fragment) -> None:
    _server_error(mallory, sql, fragment)


def test_allowed_syntax_gives_its_rows_through_the_server(mallory) -> None:
    with mallory.cursor() as cur:
        cur.execute(
            "SELECT CAST('1.5' AS DECIMAL(4, 2)) AS d, '7'::INTEGER + 1 AS i, "
            "EXTRACT(year FROM DATE '2024-05-06') AS y, "
            "CASE WHEN 2 > 1 THEN 'yes' END AS c, DATE '2024-01-01' + INTERVAL 2 DAY AS dt, "
            "list_transform([1, 2], lambda x: x * 10) AS l, {'k': 3}.k AS s, COALESCE(NULL, 'z') AS z"
        )
        row = cur.fetchall()[0]
    assert [str(row[0]), row[1], row[2], row[3], str(row[4])[:10], row[5], row[6], row[7]] == [
        "1.50",
        8,
        2024,
        "yes",
        "2024-01-03",
        [10, 20],
        3,
        "z",
    ]
    with mallory.cursor() as cur:
        cur.execute("SELECT COLUMNS(*) FROM (SELECT 1 AS a, 2 AS b)")
        assert cur.fetchall() == [(1, 2)]
        cur.execute("WITH r(n) AS (SELECT 1 UNION ALL SELECT 2) SELECT sum(n) FROM r")
        assert cur.fetchall() == [(3,)]
