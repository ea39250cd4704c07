"""Issue 11 item 8: one user cannot take every session; root always gets in; unused sessions let go."""

from __future__ import annotations

import time

import pyarrow.flight as flight
import pytest

from tests.conftest import connect
from tests.flight.sessionhelp import begin, commit, create_user, open_session, update_in


def test_one_user_cannot_take_every_session(start_server):
    running = start_server(max_sessions=10, max_sessions_per_user=2)
    alice_pw = create_user(running, "alice")
    bob_pw = create_user(running, "bob")
    held = [open_session(running, "alice", alice_pw) for _ in range(2)]
    with pytest.raises(flight.FlightServerError, match=r"Too many sessions for user alice \(limit 2\)"):
        open_session(running, "alice", alice_pw)
    bob = open_session(running, "bob", bob_pw)  # other users are not affected
    roots = [open_session(running) for _ in range(4)]  # root is exempt from the per-user cap
    # Closing a session frees its slot for the same user.
    held[0].action("CloseSession", b"")
    held[0] = open_session(running, "alice", alice_pw)
    assert held[0].query("SELECT 2 AS two").column(0).to_pylist() == [2]
    for raw in [*held, bob, *roots]:
        raw.close()


def test_per_user_default_is_a_fraction_of_the_total(start_server):
    running = start_server(max_sessions=8)  # default per user: max(4, 8 // 4) = 4
    alice_pw = create_user(running, "alice")
    held = [open_session(running, "alice", alice_pw) for _ in range(4)]
    with pytest.raises(flight.FlightServerError, match=r"Too many sessions for user alice \(limit 4\)"):
        open_session(running, "alice", alice_pw)
    for raw in held:
        raw.close()


def test_root_gets_in_when_every_session_is_taken(start_server):
    running = start_server(max_sessions=3, max_sessions_per_user=3)
    alice_pw = create_user(running, "alice")
    bob_pw = create_user(running, "bob")
    held = [open_session(running, "alice", alice_pw) for _ in range(3)]
    with pytest.raises(flight.FlightServerError, match=r"Too many open sessions \(limit 3\)"):
        open_session(running, "bob", bob_pw)
    root = open_session(running)  # the longest-idle session of another user makes room
    assert root.query("SELECT 'in' AS s").column(0).to_pylist() == ["in"]
    assert running.flight_server.registry.count() == 3
    # The two most recently used sessions of alice were left alone.
    for raw in held[1:]:
        assert raw.query("SELECT 3 AS three").column(0).to_pylist() == [3]
    for raw in [*held, root]:
        raw.close()


def test_root_eviction_spares_sessions_with_open_transactions(start_server):
    running = start_server(max_sessions=2, max_sessions_per_user=2)
    alice_pw = create_user(running, "alice")
    in_transaction = open_session(running, "alice", alice_pw)
    tid = begin(in_transaction)  # the longest idle, but its transaction has work in it
    update_in(in_transaction, "CREATE TABLE kept (a INT)", tid)
    idle = open_session(running, "alice", alice_pw)
    root = open_session(running)
    # The idle session without a transaction was closed to let root in ...
    with pytest.raises(flight.FlightServerError, match=r"Too many open sessions \(limit 2\)"):
        idle.query("SELECT 1 AS one")
    # ... and the transaction was not rolled back: its session is still there.
    commit(in_transaction, tid)
    assert root.query("SELECT count(*) AS n FROM kept").column(0).to_pylist() == [0]
    for raw in [in_transaction, idle, root]:
        raw.close()


def _wait_for_sessions(running, wanted: int, seconds: float = 15.0) -> int:
    deadline = time.monotonic() + seconds
    while (count := running.flight_server.registry.count()) != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def test_session_never_used_releases_its_connection_and_resumes(start_server, unique_table):
    running = start_server(unused_session_seconds=1)
    t = unique_table()
    with connect(running) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA analytics")
        cur.execute(f"CREATE TABLE analytics.{t} (a INT)")
    # A used session with an open transaction must survive the same wait.
    worker = open_session(running)
    tid = begin(worker)
    assert update_in(worker, f"INSERT INTO analytics.{t} VALUES (1)", tid) == 1
    # ADBC with autocommit off opens a session (BeginTransaction) at connect time.
    idle = connect(running, autocommit=False)
    idle.adbc_current_db_schema = "analytics"  # session state that must survive the release
    assert running.flight_server.registry.count() == 2
    assert _wait_for_sessions(running, 1) == 1
    commit(worker, tid)  # the used session kept its transaction
    with idle.cursor() as cur:
        cur.execute(f"INSERT INTO {t} VALUES (2)")  # unqualified: the schema came back too
    idle.commit()
    with connect(running) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT a FROM analytics.{t} ORDER BY a")
        assert cur.fetchall() == [(1,), (2,)]
    idle.close()
    worker.close()


def test_root_eviction_prefers_a_session_that_resumes_unchanged(start_server):
    running = start_server(max_sessions=2, max_sessions_per_user=2)
    alice_pw = create_user(running, "alice")
    # ADBC with autocommit off holds a session (an empty transaction) from connect on.
    waiting = connect(running, user="alice", password=alice_pw, autocommit=False)
    worker = open_session(running, "alice", alice_pw)  # has run a statement: closing it loses state
    root = open_session(running)
    root.action("CloseSession", b"")  # root leaves; its slot lets alice's sessions come back
    # The one closed for root was `waiting`, and it resumed with its transaction.
    assert worker.query("SELECT 1 AS one").column(0).to_pylist() == [1]
    with waiting.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchall() == [(2,)]
    waiting.commit()
    waiting.close()
    worker.close()
    root.close()
