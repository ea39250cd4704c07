"""Issue 11 item 10: results left waiting for DoGet are capped per user.

Each unfetched result holds memory outside DuckDB's --memory-limit (its read-ahead batches and,
for a large one, DuckDB's streaming state): 40 of them took 3.5 GB at --memory-limit 1GB. Past
the limit the user's oldest unread result is dropped, and a later DoGet for it says why.
"""

from __future__ import annotations

import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.conftest import connect
from tests.flight.sessionhelp import create_user, open_session

DROPPED = r"Too many unread results: this one was dropped unread \(limit 2\)"


def _query(sql: str) -> cmd.CommandStatementQuery:
    return cmd.CommandStatementQuery(query=sql)


def test_oldest_unread_result_is_dropped_past_the_limit(start_server):
    running = start_server(max_unread_results_per_user=2)
    alice_pw = create_user(running, "alice")
    raw = open_session(running)
    alice = open_session(running, "alice", alice_pw)
    alice_waiting = alice.info(_query("SELECT 'alice' AS who"))
    infos = [raw.info(_query(f"SELECT {i} AS a")) for i in range(3)]
    with pytest.raises(flight.FlightServerError, match=DROPPED):
        raw.fetch(infos[0])
    assert [raw.fetch(info).column(0).to_pylist() for info in infos[1:]] == [[1], [2]]
    # Another user's unread result was not touched.
    assert alice.fetch(alice_waiting).column(0).to_pylist() == ["alice"]
    # Fetched results no longer count: two more wait, both fetchable.
    more = [raw.info(_query(f"SELECT {i} AS a")) for i in (3, 4)]
    assert [raw.fetch(info).column(0).to_pylist() for info in more] == [[3], [4]]
    raw.close()
    alice.close()


def test_dropped_large_result_frees_its_session(start_server):
    running = start_server(max_unread_results_per_user=1)
    raw = open_session(running)
    # Large enough to stream: it keeps the session's connection until read or dropped.
    big = raw.info(_query("SELECT i FROM range(5000000) t(i)"))
    other = open_session(running)
    assert other.query("SELECT 7 AS a").column(0).to_pylist() == [7]  # drops `big`
    assert raw.query("SELECT 8 AS a").column(0).to_pylist() == [8]  # not "Session busy"
    with pytest.raises(flight.FlightServerError, match="Too many unread results"):
        raw.fetch(big)
    raw.close()
    other.close()


def test_adbc_cursor_reexecuted_without_fetching_keeps_working(start_server):
    running = start_server(max_unread_results_per_user=2)
    with connect(running) as conn, conn.cursor() as cur:
        for i in range(6):  # ADBC leaves each unfetched result waiting on the server
            cur.execute(f"SELECT {i} AS a")
        assert cur.fetchall() == [(5,)]


def test_cancelled_result_no_longer_counts(start_server):
    running = start_server(max_unread_results_per_user=2)
    raw = open_session(running)
    waiting = [raw.info(_query(f"SELECT {i} AS a")) for i in range(2)]
    request = cmd.CancelFlightInfoRequest(info=waiting[0].serialize())
    raw.action("CancelFlightInfo", request.SerializeToString())
    newer = raw.info(_query("SELECT 6 AS a"))
    assert raw.fetch(waiting[1]).column(0).to_pylist() == [1]  # still there: the cancelled one made room
    assert raw.fetch(newer).column(0).to_pylist() == [6]
    raw.close()
