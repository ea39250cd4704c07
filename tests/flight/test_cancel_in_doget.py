"""Issue 16 item 7: a prepared query runs in its DoGet, where a client's cancel reaches it.

The Arrow Flight SQL JDBC driver prepares every statement, never cancels a GetFlightInfo call and
cancels the DoGet stream for Statement.cancel() and setQueryTimeout. These tests send JDBC's RPCs
with raw pyarrow.flight (and ADBC, whose cancel is the same gRPC cancel): CreatePreparedStatement
and GetFlightInfo answer at once (the query is only described), the DoGet runs it, and cancelling
that call, its deadline passing or its client going away stops DuckDB. A statement with effects
still runs in GetFlightInfo, fetched or not.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time

import adbc_driver_manager.dbapi as dbapi
import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD, connect
from tests.e2e.stage_helpers import query
from tests.flight.rawclient import RawClient
from tests.long_queries import long_query, wait_running


@pytest.fixture
def raw(server):
    client = RawClient(server.uri, "root", ROOT_PASSWORD)
    yield client
    client.close()


def _prepared_info(raw: RawClient, sql: str) -> flight.FlightInfo:
    """CreatePreparedStatement and GetFlightInfo, each answered well within a deadline a run of
    long_query() (tens of seconds) would pass."""
    quick = flight.FlightCallOptions(headers=raw.options.headers, timeout=10.0)
    request = cmd.pack(cmd.ActionCreatePreparedStatementRequest(query=sql))
    [body] = [
        r.body.to_pybytes()
        for r in raw.client.do_action(flight.Action("CreatePreparedStatement", request), quick)
    ]
    handle = cmd.unpack(body).prepared_statement_handle
    command = cmd.pack(cmd.CommandPreparedStatementQuery(prepared_statement_handle=handle))
    return raw.client.get_flight_info(flight.FlightDescriptor.for_command(command), quick)


def _state_of(root_conn, sql: str, seconds: float = 20.0) -> str:
    """The query log's state for ``sql`` once it has ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = query(root_conn, "SELECT query_text, state FROM QUERY_HISTORY()")
        states = [r["state"] for r in rows if r["query_text"] == sql and r["state"] != "running"]
        if states:
            return str(states[0])
        time.sleep(0.05)
    raise AssertionError(f"{sql!r} did not end")


def test_prepare_and_get_flight_info_only_describe_a_long_query(raw, root_conn):
    sql = long_query("m")
    info = _prepared_info(raw, sql)  # would take minutes if it ran here
    assert info.schema.names == [sql.split()[3]]
    assert str(info.schema.field(0).type) == "int64"
    assert [r for r in query(root_conn, "SHOW PROCESSLIST") if r["query"] == sql] == []
    assert raw.query("SELECT 3 AS three").column("three").to_pylist() == [3]  # nothing holds the session


def test_cancelling_the_doget_stops_the_query(server, root_conn):
    """ADBC's cancel (like JDBC's) cancels the DoGet call that runs the query."""
    sql = long_query("m")
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(sql)  # prepared and announced; the DoGet runs it
        canceller = threading.Thread(target=lambda: (wait_running(root_conn, sql), cur.adbc_cancel()))
        canceller.start()
        try:
            with pytest.raises(dbapi.OperationalError, match="^CANCELLED: "):
                cur.fetchall()
        finally:
            canceller.join(30)
        assert _state_of(root_conn, sql) == "cancelled"
        cur.execute("SELECT 4 AS four")  # the session is free again
        assert cur.fetchall() == [(4,)]


def test_a_client_that_goes_away_mid_query_stops_it(server, raw, root_conn):
    """The client process dies while its DoGet runs the query: the server stops DuckDB."""
    sql = long_query("m")
    info = _prepared_info(raw, sql)
    ticket = base64.b64encode(info.endpoints[0].ticket.ticket).decode()
    script = (
        "import base64, sys, pyarrow.flight as f\n"
        f"c = f.FlightClient({server.uri!r})\n"
        f"o = f.FlightCallOptions(headers=[(b'authorization', {raw.token.encode()!r})])\n"
        f"c.do_get(f.Ticket(base64.b64decode({ticket!r})), o).read_all()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_running(root_conn, sql)
    finally:
        child.kill()
        child.wait(30)
    assert _state_of(root_conn, sql) == "cancelled"
    assert raw.query("SELECT 6 AS six").column("six").to_pylist() == [6]


def test_a_doget_deadline_stops_the_query(raw, root_conn):
    """setQueryTimeout: the call's deadline passes while DuckDB runs."""
    sql = long_query("m")
    info = _prepared_info(raw, sql)
    options = flight.FlightCallOptions(headers=raw.options.headers, timeout=1.0)
    with pytest.raises(flight.FlightTimedOutError, match="Deadline"):
        raw.client.do_get(info.endpoints[0].ticket, options).read_all()
    assert _state_of(root_conn, sql) == "cancelled"
    assert raw.query("SELECT 5 AS five").column("five").to_pylist() == [5]


def test_a_deferred_query_answers_rows_and_its_errors_in_doget(raw, unique_table):
    t = unique_table()
    raw.update(f"CREATE TABLE {t} AS SELECT range AS n, range::VARCHAR AS s FROM range(5)")
    info = _prepared_info(raw, f"SELECT n, s, n AS n FROM {t} ORDER BY n")
    assert info.schema.names == ["n", "s", "n"]  # the stream's names, not a subquery's n_1
    table = raw.fetch(info)
    assert table.schema.names == ["n", "s", "n"]
    assert table.column(0).to_pylist() == [0, 1, 2, 3, 4]
    bad = _prepared_info(raw, f"SELECT s::INTEGER AS i FROM {t} WHERE n = 4 OR s = 'x'")
    raw.update(f"INSERT INTO {t} VALUES (5, 'x')")
    with pytest.raises(flight.FlightServerError, match="Could not convert string 'x' to INT32"):
        raw.fetch(bad)


def test_a_statement_with_effects_runs_in_get_flight_info_without_a_doget(raw, unique_table):
    """DDL must not depend on the client fetching (a driver may cancel the DoGet unsent)."""
    t = unique_table()
    _prepared_info(raw, f"CREATE TABLE {t} (a INTEGER)")  # no DoGet follows
    _prepared_info(raw, f"INSERT INTO {t} VALUES (1), (2)")
    assert raw.query(f"SELECT count(*) AS c FROM {t}").column("c").to_pylist() == [2]
