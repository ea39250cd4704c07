"""COPY_HISTORY(...): the files COPY loaded, per table and time, only for tables the caller may see."""

from __future__ import annotations

from datetime import timedelta

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.e2e.stage_helpers import execute, put, query

CSV_HEADER = "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)"


def history(conn, args: str = "") -> list[dict]:
    return query(conn, f"SELECT * FROM COPY_HISTORY({args}) ORDER BY last_load_time, file_name")


def test_copy_history_lists_loads_by_table_and_time(root_conn, user, unique_table):
    first, second = unique_table("ch"), unique_table("ch")
    for t in (first, second):
        execute(root_conn, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    put(root_conn, f"@~/{first}/a.csv", b"id,name\n1,x\n2,y\n")
    put(root_conn, f"@~/{first}/b.csv", b"id,name\n3,z\nnot-a-number,w\n")
    put(root_conn, f"@~/{second}/c.csv", b"id,name\n4,v\n")
    query(root_conn, f"COPY INTO {first} FROM @~/{first}/ FILES = ('a.csv') {CSV_HEADER}")
    query(root_conn, f"COPY INTO {first} FROM @~/{first}/ FILES = ('b.csv') {CSV_HEADER} ON_ERROR = CONTINUE")
    query(root_conn, f"COPY INTO {second} FROM @~/{second}/ {CSV_HEADER}")

    loads = history(root_conn, f"TABLE_NAME => 'main.{first}'")
    assert [
        (r["file_name"].rsplit("/", 1)[-1], r["table_name"], r["row_count"], r["error_count"], r["status"])
        for r in loads
    ] == [
        ("a.csv", f"main.{first}", 2, 0, "Loaded"),
        ("b.csv", f"main.{first}", 1, 1, "Partially loaded"),
    ]
    assert loads[0]["first_error_message"] is None
    assert "not-a-number" in loads[1]["first_error_message"]
    assert {r["user_name"] for r in loads} == {"root"}
    # A table named without its schema is looked up in the current one.
    assert [r["file_name"] for r in history(root_conn, f"TABLE_NAME => '{second}'")] == [
        r["file_name"] for r in history(root_conn, f"TABLE_NAME => 'main.{second}'")
    ]
    assert len(history(root_conn, f"TABLE_NAME => '{second}'")) == 1

    # START_TIME keeps the loads at or after it, END_TIME those before it.
    after_first = (loads[0]["last_load_time"] + timedelta(microseconds=1)).isoformat()
    later = history(root_conn, f"TABLE_NAME => 'main.{first}', START_TIME => '{after_first}'")
    assert [r["file_name"] for r in later] == [loads[1]["file_name"]]
    earlier = history(root_conn, f"TABLE_NAME => 'main.{first}', END_TIME => '{after_first}'")
    assert [r["file_name"] for r in earlier] == [loads[0]["file_name"]]
    assert history(root_conn, f"TABLE_NAME => 'main.{first}', START_TIME => '2999-01-01 00:00:00'") == []
    everything = {r["table_name"] for r in history(root_conn)}
    assert {f"main.{first}", f"main.{second}"} <= everything

    # A user without grants sees nothing of root's tables, by name or in the full list.
    assert history(user, f"TABLE_NAME => 'main.{first}'") == []
    assert not {f"main.{first}", f"main.{second}"} & {r["table_name"] for r in history(user)}
    # A SELECT grant shows the table's loads.
    execute(root_conn, f"GRANT SELECT ON main.{first} TO {user.user_name}")
    assert len(history(user, f"TABLE_NAME => 'main.{first}'")) == 2


def test_copy_history_shows_a_users_own_loads(user, unique_table):
    t = unique_table("own")
    execute(user, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    put(user, f"@~/{t}/a.csv", b"id,name\n1,x\n")
    query(user, f"COPY INTO {t} FROM @~/{t}/ {CSV_HEADER}")
    [row] = history(user, f"TABLE_NAME => 'main.{t}'")
    assert (row["row_count"], row["error_count"], row["status"], row["user_name"]) == (
        1,
        0,
        "Loaded",
        user.user_name,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("LOCATION => '@~'", "Unknown COPY_HISTORY argument LOCATION: use TABLE_NAME, START_TIME or"),
        ("START_TIME => 'yesterday'", "COPY_HISTORY START_TIME must be a timestamp like '2026-12-01 00:00"),
        ("TABLE_NAME => 'a.b.c'", "COPY_HISTORY TABLE_NAME must be 'table' or 'schema.table'"),
        ("TABLE_NAME => now()", "COPY_HISTORY argument TABLE_NAME must be a literal"),
        ("'main.t'", "COPY_HISTORY takes named arguments: NAME => value"),
    ],
)
def test_copy_history_bad_arguments_are_named(root_conn, args, message):
    with pytest.raises(dbapi.Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        history(root_conn, args)


def test_history_from_before_the_new_columns_is_migrated_at_start(tmp_path):
    """A data dir whose load_history lacks the COPY_HISTORY columns gets them at start, idempotently."""
    import duckdb

    from tests.conftest import _start, connect

    def copy_once(running, name: str) -> None:
        with connect(running) as conn:
            put(conn, f"@~/mig/{name}.csv", b"id\n1\n2\n3\n")
            query(conn, f"COPY INTO m FROM @~/mig/ FILES = ('{name}.csv') {CSV_HEADER}")

    running = _start(tmp_path)
    try:
        with connect(running) as conn:
            execute(conn, "CREATE TABLE m (id INTEGER)")
        copy_once(running, "old")
        database = running.engine.config.database_path
    finally:
        running.stop()
    with duckdb.connect(str(database)) as con:  # as a server before the columns existed left it
        for column in ("row_count", "error_count", "first_error", "user_name"):
            con.execute(f"ALTER TABLE __stageflight.load_history DROP COLUMN {column}")
    for _ in range(2):  # the second start finds the columns there already
        running = _start(tmp_path)
        try:
            copy_once(running, "new")
            with connect(running) as conn:
                rows = history(conn, "TABLE_NAME => 'main.m'")
        finally:
            running.stop()
        assert [(r["file_name"].rsplit("/", 1)[-1], r["row_count"], r["user_name"]) for r in rows] == [
            ("old.csv", None, None),  # loaded before: no counts were kept
            ("new.csv", 3, "root"),
        ]


def test_copy_history_follows_a_renamed_table_and_its_stage_files(root_conn, unique_table):
    old, new = unique_table("ren"), unique_table("ren")
    execute(root_conn, f"CREATE TABLE {old} (id INTEGER)")
    put(root_conn, f"@%{old}/a.csv", b"id\n1\n2\n")
    query(root_conn, f"COPY INTO {old} FROM @%{old} {CSV_HEADER}")
    execute(root_conn, f"ALTER TABLE {old} RENAME TO {new}")
    assert history(root_conn, f"TABLE_NAME => 'main.{old}'") == []
    [row] = history(root_conn, f"TABLE_NAME => 'main.{new}'")
    assert (row["table_name"], row["row_count"], row["error_count"], row["user_name"]) == (
        f"main.{new}",
        2,
        0,
        "root",
    )
    assert query(root_conn, f"COPY INTO {new} FROM @%{new} {CSV_HEADER}") == []  # still loaded once
