"""Block comments the guard and DuckDB could end in different places are refused (issue 15).

DuckDB's scanner nests block comments; sqlglot's tokenizer nests them too, but not in the same
places ('/*/*' is one opener for sqlglot, two for DuckDB). Text where they could disagree would
hold different statements for the guard and for DuckDB, so any block comment with '/*' inside, and
any block comment that never ends, is refused on every path before a parser sees it.
"""

from __future__ import annotations

import re
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pyarrow.flight as flight
import pytest

from engine.errors import StatementRejected
from engine.sql.statement_bounds import check_comments
from tests.e2e.stage_helpers import query

NESTED = "Nested block comments are not allowed: a '/* ... */' comment contains '/*'"
UNTERMINATED = "Unterminated block comment: a '/*' has no closing '*/'"


def _refused(conn: Any, sql: str, expected: str) -> None:
    with pytest.raises(dbapi.Error, match=re.escape(expected)) as err, conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    assert "Traceback" not in str(err.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 /* /* */ ; SELECT 2 -- */",  # sqlglot and DuckDB both nest: one statement
        "SELECT 1 /*/* */ ; SELECT 2 -- */",  # sqlglot: two statements; DuckDB: one
        "SELECT 1 /* a /* b */ c */",
        "/* /* */ */ LIST @~",  # before a statement the server parses itself
        "SELECT 1 /* x /*/",
    ],
)
def test_nested_block_comments_are_refused_on_every_path(user_conn, raw_root, sql):
    _refused(user_conn, sql, NESTED)
    for call in (raw_root.update, raw_root.query, raw_root.prepare):
        with pytest.raises(flight.FlightServerError, match=re.escape(NESTED)):
            call(sql)


def test_unterminated_block_comment_is_refused(user_conn):
    _refused(user_conn, "SELECT 1 /* never closed", UNTERMINATED)
    _refused(user_conn, "SELECT 1; /* LIST @~", UNTERMINATED)


@pytest.mark.parametrize(
    "sql, rows",
    [
        ("SELECT '/*' AS a /* a comment */", [{"a": "/*"}]),
        ('SELECT 1 AS "/*" -- /* in a line comment', [{"/*": 1}]),
        ("SELECT $$ /* $$ AS a", [{"a": " /* "}]),
        ("SELECT E'\\' /*' AS a", [{"a": "' /*"}]),
        ("SELECT 2 AS a /* one */ /**/ /* * / */", [{"a": 2}]),
        ("SELECT 2 /* a */* 3 AS a", [{"a": 6}]),
    ],
)
def test_comment_markers_in_literals_and_plain_comments_still_run(user_conn, sql, rows):
    assert query(user_conn, sql) == rows


def test_the_scan_is_linear_on_many_comments():
    # 200,000 comments and strings: refused or accepted in one pass, never by backtracking.
    check_comments("SELECT 1 " + "/* c */ 'x' " * 100_000)
    with pytest.raises(StatementRejected, match=re.escape(NESTED)):
        check_comments("SELECT 1 " + "/* c */ 'x' " * 100_000 + "/* /* */")
