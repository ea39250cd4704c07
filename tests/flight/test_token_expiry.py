"""Issue 11 item 9: token expiry slides with activity and never interrupts running work.

A token used to die a fixed time after login, and the reaper then closed its session: a COPY
running at that moment was cancelled and its transaction rolled back ("Query cancelled").
"""

from __future__ import annotations

import contextlib
import time

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient
from tests.flight.sessionhelp import begin, commit, open_session, update_in


def test_token_lives_while_the_client_is_active(start_server):
    running = start_server(token_ttl_seconds=1)
    raw = open_session(running)
    for i in range(8):  # 3.2 s of activity, more than three windows
        assert raw.query(f"SELECT {i} AS i").column(0).to_pylist() == [i]
        time.sleep(0.4)
    time.sleep(2.5)  # then silence beyond the window
    with pytest.raises(flight.FlightUnauthenticatedError, match="Token expired"):
        raw.query("SELECT 1 AS one")
    raw.close()


def test_streamed_result_is_not_cut_by_the_idle_window(start_server):
    running = start_server(token_ttl_seconds=1, session_idle_seconds=1)
    rows = 10_000_000  # 80 MB: far more than gRPC buffers, so the stream waits for the reader
    raw = open_session(running)
    info = raw.info(cmd.CommandStatementQuery(query=f"SELECT i FROM range({rows}) t(i)"))
    reader = raw.client.do_get(info.endpoints[0].ticket, raw.options)
    seen = reader.read_chunk().data.num_rows
    time.sleep(2.5)  # the reader pauses longer than both windows
    for chunk in reader:
        seen += chunk.data.num_rows
    assert seen == rows
    # The client was active until the stream ended: the token still works.
    assert raw.query("SELECT 5 AS five").column(0).to_pylist() == [5]
    raw.close()


def test_running_call_is_not_cut_by_the_idle_window(start_server, unique_table):
    running = start_server(token_ttl_seconds=1, session_idle_seconds=1)
    t = unique_table()
    raw = RawClient(running.uri, "root", ROOT_PASSWORD)
    message = cmd.CommandStatementIngest(table=t)
    message.table_definition_options.if_not_exist = cmd.INGEST_NOT_EXIST_CREATE
    message.table_definition_options.if_exists = cmd.INGEST_EXISTS_FAIL
    batch = pa.record_batch({"a": pa.array(range(1000), pa.int64())})
    descriptor = flight.FlightDescriptor.for_command(cmd.pack(message))
    writer, result = raw.client.do_put(descriptor, batch.schema, raw.options)
    writer.write_batch(batch)
    time.sleep(2.5)  # one ingest call, running for longer than the windows
    writer.write_batch(batch)
    writer.done_writing()
    count = cmd.DoPutUpdateResult.FromString(result.read().to_pybytes()).record_count
    writer.close()
    assert count == 2000
    assert raw.query(f"SELECT count(*) AS n FROM {t}").column(0).to_pylist() == [2000]
    raw.close()


def test_absolute_lifetime_waits_for_the_open_transaction(start_server, unique_table):
    running = start_server(token_ttl_seconds=30, token_max_lifetime_seconds=1)
    t = unique_table()
    raw = open_session(running)
    raw.update(f"CREATE TABLE {t} (a INT)")
    tid = begin(raw)
    assert update_in(raw, f"INSERT INTO {t} VALUES (1)", tid) == 1
    time.sleep(2.2)  # past the lifetime, inside the transaction
    assert update_in(raw, f"INSERT INTO {t} VALUES (2)", tid) == 1
    commit(raw, tid)
    # Between transactions the lifetime applies.
    with pytest.raises(flight.FlightUnauthenticatedError, match="Token expired"):
        raw.query("SELECT 1 AS one")
    check = open_session(running)
    assert check.query(f"SELECT a FROM {t} ORDER BY a").column(0).to_pylist() == [1, 2]
    check.close()
    raw.close()


def test_made_up_token_is_invalid_not_expired(server):
    client = flight.FlightClient(server.uri)
    options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer made-up")])
    with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid or expired token"):
        list(client.list_actions(options))
    client.close()


# The server refuses the cursor's and the connection's close (the token is gone), so the ADBC driver
# manager cannot free them: it warns when the connection closes its cursor, and its finaliser retries
# the close and fails again. Both come from adbc_driver_manager's handling of a refused close.
@pytest.mark.filterwarnings("ignore:Failed to close cursor:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_adbc_commit_past_the_lifetime_succeeds_and_the_next_statement_is_refused(start_server, unique_table):
    running = start_server(token_ttl_seconds=30, token_max_lifetime_seconds=1)
    t = unique_table()
    conn = connect(running, autocommit=False)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INT)")
        time.sleep(2.2)  # past the lifetime, inside the transaction
        cur.execute(f"INSERT INTO {t} VALUES (1)")
    conn.commit()  # EndTransaction, then ADBC's BeginTransaction: both pass
    cur = conn.cursor()
    with pytest.raises(dbapi.Error, match="Token expired"):
        cur.execute("SELECT 1")
    for close in (cur.close, conn.close):  # refused as well: the token is gone
        with contextlib.suppress(dbapi.Error):
            close()
    with connect(running) as check, check.cursor() as cur:
        cur.execute(f"SELECT a FROM {t}")
        assert cur.fetchall() == [(1,)]
