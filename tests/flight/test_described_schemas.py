"""A session keeps the schemas it described for the next prepare of the same query text
(engine/described.py): whatever changes what the text means must show at the next run.

ADBC prepares every ``cursor.execute``; each test runs one text, changes what it refers to, and
runs the same text again on the same connection (the same session).
"""

from __future__ import annotations

import pyarrow as pa

from tests.conftest import connect


def _names(conn, sql: str) -> tuple[list[str], list[tuple]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    return table.schema.names, [tuple(r.values()) for r in table.to_pylist()]


def test_another_connections_alter_table_shows_at_the_next_run(server, unique_table):
    t = unique_table("alt")
    with connect(server) as a, connect(server) as b:
        with a.cursor() as cur:
            cur.execute(f"CREATE TABLE {t} (x INTEGER)")
            cur.execute(f"INSERT INTO {t} VALUES (1)")
        assert _names(a, f"SELECT * FROM {t}") == (["x"], [(1,)])
        assert _names(a, f"SELECT * FROM {t}") == (["x"], [(1,)])
        with b.cursor() as cur:
            cur.execute(f"ALTER TABLE {t} ADD COLUMN y VARCHAR DEFAULT 'new'")
        assert _names(a, f"SELECT * FROM {t}") == (["x", "y"], [(1, "new")])


def test_an_ingest_that_replaces_the_table_shows_at_the_next_run(server, unique_table):
    t = unique_table("rep")
    with connect(server) as a, connect(server) as b:
        with a.cursor() as cur:
            cur.adbc_ingest(t, pa.table({"x": pa.array([1], pa.int32())}), mode="create")
        assert _names(a, f"SELECT * FROM {t}") == (["x"], [(1,)])
        with b.cursor() as cur:
            cur.adbc_ingest(t, pa.table({"k": pa.array(["v"])}), mode="replace")
        assert _names(a, f"SELECT * FROM {t}") == (["k"], [("v",)])


def test_changing_the_current_schema_changes_what_the_name_means(server, unique_table):
    t = unique_table("use")
    s1, s2 = f"{t}_s1", f"{t}_s2"
    with connect(server) as a:
        with a.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {s1}")
            cur.execute(f"CREATE SCHEMA {s2}")
            cur.execute(f"CREATE TABLE {s1}.u AS SELECT 1 AS one")
            cur.execute(f"CREATE TABLE {s2}.u AS SELECT 'two' AS two, 2 AS n")
        try:
            a.adbc_current_db_schema = s1
            assert _names(a, "SELECT * FROM u") == (["one"], [(1,)])
            a.adbc_current_db_schema = s2
            assert _names(a, "SELECT * FROM u") == (["two", "n"], [("two", 2)])
        finally:  # the shared server's schema list stays as other tests expect it
            a.adbc_current_db_schema = "main"
            with a.cursor() as cur:
                cur.execute(f"DROP SCHEMA {s1} CASCADE")
                cur.execute(f"DROP SCHEMA {s2} CASCADE")


def test_a_temporary_table_of_the_same_name_shows_at_the_next_run(server, unique_table):
    t = unique_table("tmp")
    with connect(server) as a:
        with a.cursor() as cur:
            cur.execute(f"CREATE TABLE {t} AS SELECT 1 AS kept")
        assert _names(a, f"SELECT * FROM {t}") == (["kept"], [(1,)])
        with a.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {t} AS SELECT 'shadow' AS temp_col")
        assert _names(a, f"SELECT * FROM {t}") == (["temp_col"], [("shadow",)])
