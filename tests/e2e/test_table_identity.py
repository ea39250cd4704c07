"""Load history and table-stage files follow the table, not its name.

A table that went (DROP, DROP SCHEMA ... CASCADE, CREATE OR REPLACE, adbc_ingest replace) takes
its history and its stage files along; a renamed table keeps both.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as dbapi
import pyarrow as pa
import pytest

from tests.conftest import connect
from tests.e2e.stage_helpers import execute, put, query
from tests.e2e.test_table_stage_access import user_password
from tests.s3 import make_bucket, s3_client

CSV = "FILE_FORMAT = (TYPE = CSV)"


def _loaded(conn, sql):
    return sum(r["Rows_loaded"] for r in query(conn, sql))


def _names(conn, ref):
    return [r["name"] for r in query(conn, f"LIST {ref}")]


def _stage_dir(server, schema, table):
    return server.config.data_dir / "storage" / "stage" / "table" / schema / table


def test_ingest_replace_starts_a_new_history_and_stage(user, unique_table):
    t = unique_table("ing")
    with user.cursor() as cur:
        cur.adbc_ingest(t, pa.table({"id": pa.array([0], pa.int32())}), mode="create")
    put(user, f"@~/{t}/a.csv", b"1\n")
    put(user, f"@%{t}/b.csv", b"2\n")
    assert _loaded(user, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1
    with user.cursor() as cur:
        cur.adbc_ingest(t, pa.table({"id": pa.array([0], pa.int32())}), mode="replace")
    assert _names(user, f"@%{t}") == []
    assert _loaded(user, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1  # loaded again: a new table


def test_drop_schema_cascade_takes_history_and_stages(server, root_conn, unique_table):
    s = unique_table("sch")
    put(root_conn, f"@~/{s}/a.csv", b"1\n")

    def make():
        execute(root_conn, f"CREATE SCHEMA {s}")
        execute(root_conn, f"CREATE TABLE {s}.t (id INTEGER)")

    make()
    put(root_conn, f"@%{s}.t/staged.csv", b"2\n")
    assert _loaded(root_conn, f"COPY INTO {s}.t FROM @~/{s}/ {CSV}") == 1
    execute(root_conn, f"DROP SCHEMA {s} CASCADE")
    assert not _stage_dir(server, s, "t").exists()
    make()
    assert _names(root_conn, f"@%{s}.t") == []
    assert _loaded(root_conn, f"COPY INTO {s}.t FROM @~/{s}/ {CSV}") == 1


def test_rename_keeps_history_and_moves_stage_files(server, user, unique_table):
    t, u = unique_table("old"), unique_table("new")
    execute(user, f"CREATE TABLE {t} (id INTEGER)")
    put(user, f"@~/{t}/a.csv", b"1\n")
    put(user, f"@%{t}/b.csv", b"2\n")
    put(user, f"@%{t}/sub/c.csv", b"3\n")
    assert _loaded(user, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1
    assert _loaded(user, f"COPY INTO {t} FROM @%{t}/b.csv {CSV}") == 1

    execute(user, f"ALTER TABLE {t} RENAME TO {u}")
    assert _names(user, f"@%{u}") == ["b.csv", "sub/c.csv"]
    assert not _stage_dir(server, "main", t).exists()
    with pytest.raises(dbapi.Error, match=f"Table stage @%{t}: table {t} does not exist"):
        query(user, f"LIST @%{t}")
    # Files loaded before the rename are still loaded; the one never loaded is not.
    assert _loaded(user, f"COPY INTO {u} FROM @~/{t}/ {CSV}") == 0
    assert _loaded(user, f"COPY INTO {u} FROM @%{u} {CSV}") == 1
    assert query(user, f"SELECT id FROM {u} ORDER BY id") == [{"id": 1}, {"id": 2}, {"id": 3}]
    # The old name is free: a new table there has its own (empty) history and stage.
    execute(user, f"CREATE TABLE {t} (id INTEGER)")
    assert _names(user, f"@%{t}") == []
    assert _loaded(user, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1


def test_rename_to_a_name_without_a_stage_is_refused_while_files_would_strand(user, unique_table):
    t = unique_table("strand")
    too_long = "x" * 130  # a valid DuckDB name, but longer than a stage name may be
    execute(user, f"CREATE TABLE {t} (id INTEGER)")
    put(user, f"@%{t}/a.csv", b"1\n")
    with pytest.raises(dbapi.Error, match=f"its table stage @%main[.]{t} has files"):
        execute(user, f"ALTER TABLE {t} RENAME TO {too_long}")
    assert _names(user, f"@%{t}") == ["a.csv"]
    execute(user, f"REMOVE @%{t}")
    execute(user, f"ALTER TABLE {t} RENAME TO {too_long}")
    execute(user, f"DROP TABLE {too_long}")


def test_drop_in_another_schema_leaves_main_table_stage_alone(server, root_conn, unique_table):
    s, t = unique_table("s2"), unique_table("same")
    execute(root_conn, f"CREATE TABLE {t} (id INTEGER)")
    execute(root_conn, f"CREATE SCHEMA {s}")
    execute(root_conn, f"CREATE TABLE {s}.{t} (id INTEGER)")
    put(root_conn, f"@%{t}/main.csv", b"1\n")
    put(root_conn, f"@%{s}.{t}/other.csv", b"2\n")
    root_conn.adbc_current_db_schema = s
    try:
        execute(root_conn, f"DROP TABLE {t}")  # DuckDB drops {s}.{t}
    finally:
        root_conn.adbc_current_db_schema = "main"
    assert _names(root_conn, f"@%{t}") == ["main.csv"]
    assert not _stage_dir(server, s, t).exists()
    execute(root_conn, f"DROP TABLE {t}")
    execute(root_conn, f"DROP SCHEMA {s}")


def test_create_or_replace_clears_history_and_stage(user, unique_table):
    t = unique_table("cor")
    execute(user, f"CREATE TABLE {t} (id INTEGER)")
    put(user, f"@~/{t}/a.csv", b"1\n")
    put(user, f"@%{t}/b.csv", b"2\n")
    assert _loaded(user, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1
    execute(user, f"CREATE OR REPLACE TABLE {t} (id INTEGER)")
    assert _names(user, f"@%{t}") == []
    assert _loaded(user, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1


def test_rolled_back_drop_keeps_the_stage(user, unique_table):
    t, other = unique_table("rb"), unique_table("later")
    execute(user, f"CREATE TABLE {t} (id INTEGER)")
    put(user, f"@%{t}/a.csv", b"1\n")
    execute(user, "BEGIN TRANSACTION")
    execute(user, f"DROP TABLE {t}")
    execute(user, "ROLLBACK")
    execute(user, f"CREATE TABLE {other} (id INTEGER)")  # a later commit runs nothing left over
    assert _names(user, f"@%{t}") == ["a.csv"]
    execute(user, "BEGIN TRANSACTION")
    execute(user, f"DROP TABLE {t}")
    execute(user, "COMMIT")
    with pytest.raises(dbapi.Error, match=f"Table stage @%{t}: table {t} does not exist"):
        query(user, f"LIST @%{t}")
    execute(user, f"CREATE TABLE {t} (id INTEGER)")
    assert _names(user, f"@%{t}") == []


def test_files_uploaded_to_a_table_made_in_the_transaction_stay(server, alice, unique_table):
    t = unique_table("txn")
    with connect(server, user=alice.user_name, password=user_password(alice), autocommit=False) as conn:
        execute(conn, f"CREATE TABLE {t} (id INTEGER)")
        put(conn, f"@%{t}/a.csv", b"1\n")
        conn.commit()
        assert _names(conn, f"@%{t}") == ["a.csv"]


def test_session_schema_decides_table_stage_truncate_and_history(root_conn, unique_table):
    s, t = unique_table("sess"), unique_table("both")
    execute(root_conn, f"CREATE TABLE {t} (id INTEGER)")
    execute(root_conn, f"CREATE SCHEMA {s}")
    execute(root_conn, f"CREATE TABLE {s}.{t} (id INTEGER)")
    put(root_conn, f"@%{s}.{t}/in_s.csv", b"1\n")
    put(root_conn, f"@~/{t}/a.csv", b"1\n")
    assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1  # main.t
    root_conn.adbc_current_db_schema = s
    try:
        assert _names(root_conn, f"@%{t}") == ["in_s.csv"]  # the table a bare name means here
        assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1  # s.t has its own history
        execute(root_conn, f"TRUNCATE {t}")  # s.t
        assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 1
    finally:
        root_conn.adbc_current_db_schema = "main"
    assert _loaded(root_conn, f"COPY INTO {t} FROM @~/{t}/ {CSV}") == 0  # main.t's history is untouched
    execute(root_conn, f"DROP SCHEMA {s} CASCADE")
    execute(root_conn, f"DROP TABLE {t}")


@pytest.mark.s3
def test_rename_moves_table_stage_on_an_s3_storage_root(start_server, moto_s3):
    bucket = make_bucket(moto_s3)
    running = start_server(
        storage_root=f"s3://{bucket}/root",
        storage_endpoint=moto_s3.endpoint,
        storage_access_key_id=moto_s3.access_key,
        storage_secret_access_key=moto_s3.secret_key,
        storage_region=moto_s3.region,
    )
    with connect(running) as conn:
        execute(conn, "CREATE TABLE s3old (id INTEGER)")
        put(conn, "@%s3old/a.csv", b"1\n")
        assert _loaded(conn, f"COPY INTO s3old FROM @%s3old {CSV}") == 1
        execute(conn, "ALTER TABLE s3old RENAME TO s3new")
        assert _names(conn, "@%s3new") == ["a.csv"]
        assert _loaded(conn, f"COPY INTO s3new FROM @%s3new {CSV}") == 0
        keys = s3_client(moto_s3).list_objects_v2(Bucket=bucket, Prefix="root/stage/table/main/")
        assert [o["Key"] for o in keys["Contents"]] == ["root/stage/table/main/s3new/a.csv"]
