"""The query log: SHOW PROCESSLIST, KILL QUERY <id> and QUERY_HISTORY(), over ADBC."""

from __future__ import annotations

import threading
import time
import uuid

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.conftest import connect
from tests.e2e.stage_helpers import execute, query
from tests.long_queries import long_query, wait_running


def test_kill_query_cancels_a_running_statement(server, root_conn, user):
    sql = long_query("m")
    outcome: list[BaseException | None] = []

    def run() -> None:
        with connect(server) as conn, conn.cursor() as cur:
            try:
                cur.execute(sql)
                cur.fetchall()
                outcome.append(None)
            except BaseException as exc:  # the assertion below reports it
                outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        row = wait_running(root_conn, sql)
        assert (row["user"], row["state"], row["type"]) == ("root", "running", "Query")
        assert row["time_seconds"] >= 0
        # Another user neither sees nor kills root's query.
        assert [r for r in query(user, "SHOW PROCESSLIST") if r["query"] == sql] == []
        with pytest.raises(dbapi.Error, match=f"No running query with id {row['id']} that you may kill"):
            execute(user, f"KILL QUERY {row['id']}")
        started = time.monotonic()
        execute(root_conn, f"KILL QUERY {row['id']}")
        worker.join(20)
        assert time.monotonic() - started < 20
    finally:
        worker.join(60)
    [error] = outcome
    assert isinstance(error, dbapi.OperationalError)
    assert str(error).startswith("CANCELLED: ")
    assert [r for r in query(root_conn, "SHOW PROCESSLIST") if r["query"] == sql] == []

    [entry] = query(root_conn, f"SELECT * FROM QUERY_HISTORY() WHERE query_id = {row['id']}")
    assert (entry["query_text"], entry["user_name"], entry["state"]) == (sql, "root", "cancelled")
    assert entry["end_time"] is not None and entry["duration_seconds"] > 0
    assert entry["error_message"] == "Query cancelled"
    # Root's statements are not in another user's history; a finished one is gone from the log's running set.
    assert query(user, f"SELECT * FROM QUERY_HISTORY() WHERE query_id = {row['id']}") == []
    with pytest.raises(dbapi.Error, match=f"No running query with id {row['id']} that you may kill"):
        execute(root_conn, f"KILL QUERY {row['id']}")


def test_query_history_shows_own_statements_with_state_and_rows(root_conn, user, unique_table):
    t = unique_table("qh")
    execute(user, f"CREATE TABLE {t} (i INTEGER)")
    execute(user, f"INSERT INTO {t} SELECT * FROM range(5)")
    with pytest.raises(dbapi.Error, match="no_such_table"):
        query(user, "SELECT * FROM no_such_table")
    mine = query(user, "SELECT * FROM QUERY_HISTORY(RESULT_LIMIT => 10)")
    assert {r["user_name"] for r in mine} == {user.user_name}
    assert mine[0]["query_text"] == "SELECT * FROM QUERY_HISTORY(RESULT_LIMIT => 10)"
    assert mine[0]["state"] == "running"  # the history is read while its own statement runs
    by_text = {r["query_text"]: r for r in mine}
    inserted = by_text[f"INSERT INTO {t} SELECT * FROM range(5)"]
    assert (inserted["state"], inserted["rows_produced"]) == ("finished", 5)
    failed = by_text["SELECT * FROM no_such_table"]
    assert failed["state"] == "failed" and "no_such_table" in failed["error_message"]
    # Root sees everyone's statements.
    everyone = query(root_conn, "SELECT user_name, query_text FROM QUERY_HISTORY(RESULT_LIMIT => 1000)")
    assert {"user_name": user.user_name, "query_text": f"CREATE TABLE {t} (i INTEGER)"} in everyone
    # A user's SHOW PROCESSLIST lists only their own running statements (this one).
    assert [(r["user"], r["query"]) for r in query(user, "SHOW PROCESSLIST")] == [
        (user.user_name, "SHOW PROCESSLIST")
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("KILL QUERY abc", "Expected a query id"),
        ("KILL QUERY 'abc'", "KILL QUERY needs a query id \\(a number\\), not 'abc'"),
        ("KILL CONNECTION 1", "KILL CONNECTION is not supported: use KILL QUERY <id>"),
        ("KILL QUERY 1 2", "Unexpected text at the end of the statement: '2'"),
        ("SELECT * FROM QUERY_HISTORY(RESULT_LIMIT => 0)", "RESULT_LIMIT must be a positive number"),
        ("SELECT * FROM QUERY_HISTORY(USER_NAME => 'x')", "Unknown QUERY_HISTORY argument USER_NAME"),
    ],
)
def test_bad_query_log_statements_are_named(root_conn, sql, message):
    with pytest.raises(dbapi.Error, match=message):
        execute(root_conn, sql)


def test_query_history_never_shows_a_password_and_cuts_long_texts(root_conn):
    name = f"u_{uuid.uuid4().hex[:8]}"
    execute(root_conn, f"CREATE USER {name} IDENTIFIED BY 'hunter2-{name}'")
    long_sql = f"SELECT '{'x' * 20_000}' AS {name}"
    query(root_conn, long_sql)
    texts = [
        r["query_text"] for r in query(root_conn, "SELECT query_text FROM QUERY_HISTORY(RESULT_LIMIT => 10)")
    ]
    assert f"CREATE USER {name} IDENTIFIED BY '***'" in texts
    assert not [t for t in texts if "hunter2" in t]
    assert long_sql[:10_000] + "..." in texts
