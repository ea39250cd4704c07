"""Issue 16 item 6: the session's own user and role, and DuckDB's '?::TYPE' cast, through ADBC."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import connect

IDENTITY = "SELECT current_user, current_user(), session_user, user, current_role, current_role()"


def _one(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_placeholder_cast_without_space(root_conn):
    assert _one(root_conn, "SELECT ?::INTEGER + 1 AS n, ?::VARCHAR AS s", (41, "x")) == [(42, "x")]
    assert _one(root_conn, "SELECT ?::INTEGER[] AS l", ("[1, 2]",)) == [([1, 2],)]


def test_root_is_its_own_user(root_conn):
    (row,) = _one(root_conn, IDENTITY)
    assert row[:4] == ("root", "root", "root", "root")
    assert row[4] == row[5] and row[4] != "duckdb"


def test_made_user_sees_itself_and_its_role(server, root_conn, make_user):
    name, password = make_user()
    role = f"r_{uuid.uuid4().hex[:8]}"
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role}")
        cur.execute(f"GRANT ROLE {role} TO {name}")
    with connect(server, name, password) as conn:
        assert _one(conn, IDENTITY) == [(name, name, name, name, "public", "public")]
        with conn.cursor() as cur:
            cur.execute(f"SET ROLE {role}")
        # The same statement text (one cached plan) answers the new role.
        assert _one(conn, IDENTITY) == [(name, name, name, name, role, role)]
        assert _one(conn, "SELECT current_user = ? AS me", (name,)) == [(True,)]
    # Another session of root running the same text still sees root.
    assert _one(root_conn, IDENTITY)[0][0] == "root"


def test_a_column_named_user_still_wins(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur:
        cur.execute(f'CREATE TABLE {t} ("user" VARCHAR)')
        cur.execute(f"INSERT INTO {t} VALUES ('from the table')")
    assert _one(root_conn, f"SELECT user, current_user FROM {t}") == [("from the table", "root")]


def test_user_sql_cannot_redefine_the_macros(root_conn):
    with pytest.raises(Exception, match="not allowed"):
        _one(root_conn, "CREATE OR REPLACE TEMP MACRO current_user() AS 'someone'")
