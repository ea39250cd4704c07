"""Under a non-default session schema (ADBC's adbc_current_db_schema, i.e. SetSessionOptions),
CREATE OR REPLACE and adbc_ingest act on the table the session means, and its load history and
table stage follow that table, never the same-named table in ``main``."""

from __future__ import annotations

import pyarrow as pa

from tests.e2e.stage_helpers import execute, put, query

CSV = "FILE_FORMAT = (TYPE = CSV)"


def _loaded(conn, sql):
    return sum(r["Rows_loaded"] for r in query(conn, sql))


def _names(conn, ref):
    return [r["name"] for r in query(conn, f"LIST {ref}")]


def _two_loaded_tables(conn, unique_table, prefix):
    """main.t and s.t, each with a staged file and one loaded file in its history."""
    s, t = unique_table(prefix + "s"), unique_table(prefix + "t")
    execute(conn, f"CREATE TABLE {t} (id INTEGER)")
    execute(conn, f"CREATE SCHEMA {s}")
    execute(conn, f"CREATE TABLE {s}.{t} (id INTEGER)")
    put(conn, f"@%{t}/main.csv", b"1\n")
    put(conn, f"@%{s}.{t}/other.csv", b"2\n")
    put(conn, f"@~/{t}/a.csv", b"3\n")
    assert _loaded(conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1
    assert _loaded(conn, f"COPY INTO {s}.{t} FROM @~/{t}/ {CSV}") == 1
    return s, t


def _main_table_untouched(conn, s, t):
    assert _names(conn, f"@%{t}") == ["main.csv"]
    assert _loaded(conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 0  # main.t's history is kept
    execute(conn, f"DROP SCHEMA {s} CASCADE")
    execute(conn, f"DROP TABLE {t}")


def test_create_or_replace_under_the_session_schema_replaces_that_table(root_conn, unique_table):
    s, t = _two_loaded_tables(root_conn, unique_table, "cor")
    root_conn.adbc_current_db_schema = s
    try:
        execute(root_conn, f"CREATE OR REPLACE TABLE {t} (id INTEGER)")  # s.t
        assert _names(root_conn, f"@%{t}") == []
        assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1  # a new table: loads again
    finally:
        root_conn.adbc_current_db_schema = "main"
    assert query(root_conn, f"SELECT id FROM {s}.{t}") == [{"id": 3}]
    _main_table_untouched(root_conn, s, t)


def test_ingest_replace_under_the_session_schema_resets_that_tables_history(root_conn, unique_table):
    s, t = _two_loaded_tables(root_conn, unique_table, "ing")
    root_conn.adbc_current_db_schema = s
    try:
        with root_conn.cursor() as cur:
            cur.adbc_ingest(t, pa.table({"id": pa.array([7], pa.int32())}), mode="replace")
        assert _names(root_conn, f"@%{t}") == []
        assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1  # as CREATE OR REPLACE does
    finally:
        root_conn.adbc_current_db_schema = "main"
    assert query(root_conn, f"SELECT id FROM {s}.{t} ORDER BY id") == [{"id": 3}, {"id": 7}]
    _main_table_untouched(root_conn, s, t)


def test_ingest_create_under_the_session_schema_makes_a_table_with_no_history(root_conn, unique_table):
    s, t = unique_table("crs"), unique_table("crt")
    execute(root_conn, f"CREATE TABLE {t} (id INTEGER)")
    execute(root_conn, f"CREATE SCHEMA {s}")
    put(root_conn, f"@~/{t}/a.csv", b"3\n")
    assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1  # main.t
    root_conn.adbc_current_db_schema = s
    try:
        with root_conn.cursor() as cur:
            cur.adbc_ingest(t, pa.table({"id": pa.array([7], pa.int32())}), mode="create")
        assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1  # s.t's own history
        assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 0
    finally:
        root_conn.adbc_current_db_schema = "main"
    assert query(root_conn, f"SELECT id FROM {s}.{t} ORDER BY id") == [{"id": 3}, {"id": 7}]
    assert query(root_conn, f"SELECT id FROM {t}") == [{"id": 3}]
    execute(root_conn, f"DROP SCHEMA {s} CASCADE")
    execute(root_conn, f"DROP TABLE {t}")
