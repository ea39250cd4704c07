"""One error per RPC, pinned: the gRPC status a Flight client sees and the DB-API class ADBC raises.

flight/errors.py says why client errors travel as they do; these tests keep that promise visible.
"""

from __future__ import annotations

import threading

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient


@pytest.fixture
def raw(server):
    client = RawClient(server.uri, "root", ROOT_PASSWORD)
    yield client
    client.close()


# -- the status each RPC answers (raw pyarrow.flight client) ----------------------------------
def test_get_flight_info_statement_query(raw):
    with pytest.raises(flight.FlightServerError, match="Table with name nowhere_table does not exist"):
        raw.query("SELECT * FROM nowhere_table")


def test_do_action_create_prepared_statement(raw):
    with pytest.raises(flight.FlightServerError, match="Table with name nowhere_table does not exist"):
        raw.prepare("SELECT * FROM nowhere_table")


def test_do_put_statement_update(raw):
    with pytest.raises(flight.FlightServerError, match="Table with name nowhere_table does not exist"):
        raw.update("INSERT INTO nowhere_table VALUES (1)")


def test_do_get_unknown_ticket(raw):
    ticket = flight.Ticket(cmd.pack(cmd.TicketStatementQuery(statement_handle=b"no-such-handle")))
    with pytest.raises(flight.FlightServerError, match="Unknown, expired or already fetched result ticket"):
        raw.client.do_get(ticket, raw.options).read_all()


def test_do_action_unknown_prepared_handle(raw):
    body = cmd.pack(cmd.ActionClosePreparedStatementRequest(prepared_statement_handle=b"x"))
    info_request = cmd.CommandPreparedStatementQuery(prepared_statement_handle=b"no-such-handle")
    raw.action("ClosePreparedStatement", body)  # closing an unknown handle is harmless
    with pytest.raises(flight.FlightServerError, match="Unknown or closed prepared statement handle"):
        raw.info(info_request)


def test_get_flight_info_metadata_command(raw):
    with pytest.raises(flight.FlightServerError, match="Unknown or malformed Flight SQL command"):
        descriptor = flight.FlightDescriptor.for_command(b"\x08\x01garbage")
        raw.client.get_flight_info(descriptor, raw.options)


def test_handshake_wrong_password(server):
    client = flight.FlightClient(server.uri)
    try:
        with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid user name or password"):
            client.authenticate_basic_token(b"root", b"not-the-password")
    finally:
        client.close()


def test_permission_denied_is_unauthorized(server, make_user):
    name, password = make_user()
    client = RawClient(server.uri, name, password)
    try:
        with pytest.raises(flight.FlightUnauthorizedError, match="Permission denied: SHOW USERS requires"):
            client.query("SHOW USERS")
    finally:
        client.close()


# -- the DB-API class ADBC raises for each ---------------------------------------------------
def test_adbc_classes(server, make_user):
    name, password = make_user()
    with connect(server) as conn, conn.cursor() as cur:
        with pytest.raises(dbapi.OperationalError, match="does not exist"):
            cur.execute("SELECT * FROM nowhere_table")
        with pytest.raises(dbapi.OperationalError, match="Stage does not exist: @nowhere_stage"):
            cur.execute("LIST @nowhere_stage")
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
    with connect(server, user=name, password=password) as conn, conn.cursor() as cur:
        denied = r"UNAUTHORIZED: \[FlightSQL\] Permission denied: SHOW USERS"
        with pytest.raises(dbapi.ProgrammingError, match=denied):
            cur.execute("SHOW USERS")
    with pytest.raises(dbapi.ProgrammingError, match="UNAUTHENTICATED: .*Invalid user name or password"):
        connect(server, password="wrong-password")


def test_cancelled_copy_is_reported_as_cancelled(server, unique_table):
    """An interrupt that stops COPY's INSERT is a cancellation, not a load error naming a file."""
    t = unique_table()
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (h VARCHAR)")
        cur.execute(
            f"COPY INTO @~/{t}/ FROM (SELECT range::VARCHAR AS a FROM range(200000)) "
            "FILE_FORMAT = (TYPE = CSV)"
        )
        timer = threading.Timer(1.0, cur.adbc_cancel)
        timer.start()
        try:
            # Hashing 200,000 x ~100 KB takes tens of seconds: the cancel arrives while the INSERT
            # runs. DuckDB sees an interrupt between chunks, so a chunk (2,048 rows) stays short
            # enough to end well within the next statement's wait for the session, even on a busy
            # machine (2 MB rows made one chunk take longer than that wait).
            with pytest.raises(dbapi.OperationalError, match="^CANCELLED: "):
                cur.execute(
                    f"COPY INTO {t} FROM (SELECT md5(repeat($1, 20000)) FROM @~/{t}/) "
                    "FILE_FORMAT = (TYPE = CSV)"
                )
        finally:
            timer.cancel()
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchall() == [(0,)]
        # Not loaded, so not in the load history: the same COPY would load the file now.
        cur.execute(f"SELECT count(*) FROM LIST_STAGE(LOCATION => '@~/{t}/')")
        assert cur.fetchall()[0][0] >= 1


def test_error_mid_stream_keeps_the_message(server):
    """An error that DuckDB raises after the first batches went out still reads as DuckDB wrote it."""
    with connect(server) as conn, conn.cursor() as cur:
        with pytest.raises(dbapi.Error, match="Conversion Error|Could not convert") as raised:
            cur.execute(
                "SELECT CAST(CASE WHEN i < 3000000 THEN i::VARCHAR ELSE 'x' END AS INTEGER) AS v, "
                "repeat('y', 100) AS pad FROM range(3000001) AS r(i)"
            )
            cur.fetch_arrow_table()
        assert "Traceback" not in str(raised.value)
        assert "OSError" not in str(raised.value)
        cur.execute("SELECT 'still serving'")
        assert cur.fetchall() == [("still serving",)]


def test_schema_of_failed_prepare_is_not_left_behind(raw):
    result = raw.prepare("SELECT 42 AS answer")
    assert pa.ipc.read_schema(pa.py_buffer(result.dataset_schema)).names == ["answer"]
