"""Statements through the real ADBC driver and the raw Flight SQL commands."""

from __future__ import annotations

import threading
import time

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient


def test_select_returns_typed_columns(root_conn):
    with root_conn.cursor() as cur:
        cur.execute("SELECT 42 AS answer, 'hi' AS greeting, 1.5::DOUBLE AS x")
        assert cur.fetchall() == [(42, "hi", 1.5)]
        assert [d[0] for d in cur.description] == ["answer", "greeting", "x"]
        assert cur.description[0][1] == pa.int32()


def test_ddl_and_dml_rowcounts(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INTEGER, b VARCHAR)")
        assert cur.rowcount == 0  # no row count: 0, never -1 (JDBC would run the DDL again)
        cur.execute(f"INSERT INTO {t} VALUES (1, 'x'), (2, 'y'), (3, 'z')")
        assert cur.rowcount == 3
        cur.execute(f"UPDATE {t} SET b = 'q' WHERE a >= 2")
        assert cur.rowcount == 2
        cur.execute(f"SELECT b FROM {t} ORDER BY a")
        assert cur.fetchall() == [("x",), ("q",), ("q",)]


def test_positional_parameters(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INTEGER, b VARCHAR)")
        cur.execute(f"INSERT INTO {t} VALUES (?, ?)", (7, "seven"))
        cur.execute(f"SELECT b FROM {t} WHERE a = ?", (7,))
        assert cur.fetchall() == [("seven",)]
        cur.execute(f"SELECT b FROM {t} WHERE a = $1", (8,))
        assert cur.fetchall() == []


def test_executemany_inserts_every_row(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INTEGER, b VARCHAR)")
        cur.executemany(f"INSERT INTO {t} VALUES (?, ?)", [(i, str(i)) for i in range(50)])
        assert cur.rowcount == 50
        cur.execute(f"SELECT count(*), sum(a) FROM {t}")
        assert cur.fetchall() == [(50, sum(range(50)))]


def test_executescript_runs_all_statements(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur:
        cur.executescript(f"CREATE TABLE {t} (a INTEGER); INSERT INTO {t} VALUES (1), (2);")
    with root_conn.cursor() as cur:
        cur.execute(f"SELECT sum(a) FROM {t}")
        assert cur.fetchall() == [(3,)]


def test_large_result_streams_completely(root_conn):
    with root_conn.cursor() as cur:
        cur.execute("SELECT range AS i, range::VARCHAR AS s FROM range(2000000)")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 2_000_000
    assert pa.compute.sum(table["i"]).as_py() == sum(range(2_000_000))


def test_session_reusable_after_large_result(root_conn):
    with root_conn.cursor() as cur:
        cur.execute("SELECT * FROM range(3000000)")
        assert cur.fetch_arrow_table().num_rows == 3_000_000
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_ddl_takes_effect_without_fetch(server, unique_table):
    """Statements execute in GetFlightInfo: closing the cursor unfetched must not lose DDL."""
    t = unique_table()
    conn = connect(server)
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} AS SELECT 1 AS a")
    cur.close()
    conn.close()
    with connect(server) as conn2, conn2.cursor() as cur2:
        cur2.execute(f"SELECT a FROM {t}")
        assert cur2.fetchall() == [(1,)]


def test_prepare_reports_is_update_and_dataset_schema(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    query = raw.prepare("SELECT 1 AS one, 'x' AS two")
    assert query.HasField("is_update") and query.is_update is False
    schema = pa.ipc.read_schema(pa.py_buffer(query.dataset_schema))
    assert schema.names == ["one", "two"]
    update = raw.prepare("CREATE TABLE never_run_prepared (a INT)")
    assert update.is_update is True
    params = raw.prepare("SELECT ? + 1 AS y")
    assert len(pa.ipc.read_schema(pa.py_buffer(params.parameter_schema))) == 1
    raw.close()


def test_raw_statement_query_and_update(server, unique_table):
    t = unique_table()
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    assert raw.update(f"CREATE TABLE {t} (a INT)") == 0
    assert raw.update(f"INSERT INTO {t} VALUES (1), (2), (3)") == 3
    info = raw.info(cmd.CommandStatementQuery(query=f"SELECT sum(a) AS s FROM {t}"))
    assert info.total_records == 1
    assert raw.fetch(info).to_pylist() == [{"s": 6}]
    raw.close()


def test_ticket_is_single_use_and_bound_to_user(server, make_user):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    info = raw.info(cmd.CommandStatementQuery(query="SELECT 5 AS v"))
    name, password = make_user()
    other = RawClient(server.uri, name, password)
    with pytest.raises(flight.FlightServerError, match="Unknown, expired or already fetched result ticket"):
        other.client.do_get(info.endpoints[0].ticket, other.options).read_all()
    assert raw.fetch(info).to_pylist() == [{"v": 5}]
    with pytest.raises(flight.FlightServerError, match="Unknown, expired or already fetched result ticket"):
        raw.fetch(info)
    raw.close()
    other.close()


def test_bad_sql_gives_clean_message(root_conn):
    with root_conn.cursor() as cur:
        with pytest.raises(
            dbapi.OperationalError, match=r"Cannot parse statement: .*\(line 1, column 7\)"
        ) as err:
            cur.execute("SELEC 1")
    assert "Traceback" not in str(err.value)


def test_missing_table_gives_clean_message(root_conn):
    with root_conn.cursor() as cur:
        with pytest.raises(
            dbapi.OperationalError, match="Table with name no_such_table_here does not exist"
        ) as err:
            cur.execute("SELECT * FROM no_such_table_here")
    assert "Traceback" not in str(err.value)


def test_server_keeps_serving_after_errors(root_conn):
    with root_conn.cursor() as cur:
        for _ in range(3):
            with pytest.raises(dbapi.OperationalError, match="Table with name missing_again does not exist"):
                cur.execute("SELECT * FROM missing_again")
        cur.execute("SELECT 'still here'")
        assert cur.fetchall() == [("still here",)]


def test_cancel_interrupts_running_query(server):
    conn = connect(server)
    cur = conn.cursor()
    started = time.monotonic()
    timer = threading.Timer(0.5, cur.adbc_cancel)
    timer.start()
    with pytest.raises(dbapi.OperationalError, match="^CANCELLED: "):
        cur.execute("SELECT count(*) FROM range(100000000000) a")
        cur.fetchall()
    timer.cancel()
    assert time.monotonic() - started < 20
    # The session still works after the interrupt.
    cur2 = conn.cursor()
    cur2.execute("SELECT 2")
    assert cur2.fetchall() == [(2,)]
    conn.close()


def test_many_clients_at_once(server, unique_table):
    t = unique_table()
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (worker INT, i INT)")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with connect(server) as conn, conn.cursor() as cur:
                for i in range(5):
                    cur.execute(f"INSERT INTO {t} VALUES (?, ?)", (n, i))
                cur.execute(f"SELECT count(*) FROM {t} WHERE worker = ?", (n,))
                assert cur.fetchall() == [(5,)]
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchall() == [(60,)]


def test_temp_tables_are_per_session(server):
    a = connect(server)
    b = connect(server)
    with a.cursor() as cur:
        cur.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
        cur.execute("SELECT x FROM mine")
        assert cur.fetchall() == [(1,)]
    with b.cursor() as cur, pytest.raises(dbapi.Error, match="Table with name mine does not exist"):
        cur.execute("SELECT x FROM mine")
    a.close()
    b.close()


def test_unfetched_results_expire(start_server):
    running = start_server(result_ttl_seconds=1)
    raw = RawClient(running.uri, "root", ROOT_PASSWORD)
    info = raw.info(cmd.CommandStatementQuery(query="SELECT 1 AS a"))
    time.sleep(2.5)  # the reaper runs every second
    with pytest.raises(flight.FlightServerError, match="Unknown, expired or already fetched result ticket"):
        raw.fetch(info)
    assert raw.query("SELECT 2 AS b").to_pylist() == [{"b": 2}]
    raw.close()


def test_large_unfetched_result_frees_the_session(start_server):
    running = start_server(result_ttl_seconds=1)
    raw = RawClient(running.uri, "root", ROOT_PASSWORD)
    raw.info(cmd.CommandStatementQuery(query="SELECT * FROM range(5000000)"))  # streams: holds the session
    time.sleep(2.5)
    assert raw.query("SELECT 3 AS c").to_pylist() == [{"c": 3}]
    raw.close()


def test_repeated_text_sees_the_current_table(root_conn, unique_table):
    # Planned statements are reused by SQL text; binding still happens at run time.
    t = unique_table()
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INTEGER)")
        cur.execute(f"INSERT INTO {t} VALUES (1)")
        cur.execute(f"SELECT * FROM {t}")
        assert [d[0] for d in cur.description] == ["a"]
        assert cur.fetchall() == [(1,)]
        cur.execute(f"DROP TABLE {t}")
        cur.execute(f"CREATE TABLE {t} (b VARCHAR, c INTEGER)")
        cur.execute(f"INSERT INTO {t} VALUES ('x', 2)")
    with root_conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {t}")
        assert [d[0] for d in cur.description] == ["b", "c"]
        assert cur.fetchall() == [("x", 2)]


def test_repeated_refused_text_stays_refused(root_conn):
    for _ in range(3):
        with root_conn.cursor() as cur, pytest.raises(dbapi.Error, match="Function read_csv is not allowed"):
            cur.execute("SELECT * FROM read_csv('/etc/passwd')")


def test_prepared_updates_without_a_row_count_answer_zero(server, unique_table):
    # Issue 16 item 1: JDBC (Avatica) reads record_count -1 as "a result set" and runs DDL again.
    t = unique_table()
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)

    def prepared_update(sql: str) -> int:
        handle = raw.prepare(sql).prepared_statement_handle
        command = cmd.CommandPreparedStatementUpdate(prepared_statement_handle=handle)
        descriptor = flight.FlightDescriptor.for_command(cmd.pack(command))
        writer, reader = raw.client.do_put(descriptor, pa.schema([]), raw.options)
        writer.done_writing()
        count = int(cmd.DoPutUpdateResult.FromString(reader.read().to_pybytes()).record_count)
        writer.close()
        return count

    counts = [
        prepared_update(sql)
        for sql in (f"CREATE TABLE {t} (a INT)", "BEGIN", f"INSERT INTO {t} VALUES (1), (2)", "COMMIT")
    ]
    assert counts == [0, 0, 2, 0]
    assert raw.query(f"SELECT count(*) AS n FROM {t}").to_pylist() == [{"n": 2}]
    raw.close()
