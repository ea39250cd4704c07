"""Prepared queries: every statement that returns rows reports its schema at prepare time; a query is
described there and runs when fetched (where a cancel reaches it), a read nothing describes (SHOW, a
stage query) runs ahead at prepare, and neither ever answers with stale or foreign data."""

from __future__ import annotations

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pytest

from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient


@pytest.fixture
def raw(server):
    client = RawClient(server.uri, "root", ROOT_PASSWORD)
    yield client
    client.close()


def _schema(prepared) -> pa.Schema | None:
    if not prepared.dataset_schema:
        return None
    return pa.ipc.read_schema(pa.py_buffer(prepared.dataset_schema))


def test_every_row_returning_statement_reports_its_schema(server, raw, unique_table):
    """JDBC classifies a statement without dataset_schema as an update and runs it again."""
    t = unique_table()
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INTEGER, b VARCHAR)")
        cur.execute(f"COPY INTO @~/{t}/ FROM (SELECT 1 AS a, 'x' AS b) FILE_FORMAT = (TYPE = CSV)")
        cur.execute(f"COPY INTO @~/{t}p/ FROM (SELECT 1 AS a, 'x' AS b)")
    expected = {
        f"SELECT $1, $2 FROM @~/{t}/ (FILE_FORMAT => 'CSV')": ["$1", "$2"],
        f"SELECT * FROM @~/{t}p/": ["a", "b"],
        "SHOW TABLES": ["name"],
        f"DESCRIBE {t}": ["column_name", "column_type", "null", "key", "default", "extra"],
        f"SELECT * FROM INFER_SCHEMA(LOCATION => '@~/{t}p/')": [
            "column_name",
            "type",
            "nullable",
            "filenames",
            "order_id",
        ],
        f"SELECT name FROM LIST_STAGE(LOCATION => '@~/{t}/')": ["name"],
        f"SELECT a + 1 AS next FROM {t}": ["next"],
    }
    for sql, names in expected.items():
        prepared = raw.prepare(sql)
        schema = _schema(prepared)
        assert schema is not None, sql
        assert schema.names == names, sql
        assert not prepared.is_update, sql


def test_first_execution_sees_what_other_sessions_changed_after_prepare(server, unique_table):
    t = unique_table()
    with connect(server) as writer, writer.cursor() as w, connect(server) as reader:
        w.execute(f"CREATE TABLE {t} (a INTEGER)")
        w.execute(f"INSERT INTO {t} VALUES (1)")
        cur = reader.cursor()
        cur.adbc_prepare(f"SELECT count(*) FROM {t}")  # runs ahead: count 1
        w.execute(f"INSERT INTO {t} VALUES (2)")
        cur.execute(f"SELECT count(*) FROM {t}")  # the prepared text: its first execution
        assert cur.fetchall() == [(2,)]
        cur.close()


def test_first_execution_after_a_revoke_is_checked_again(server, make_user, unique_table):
    """A grant change between prepare and execution is honoured: the query is checked when it runs."""
    t = unique_table()
    name, password = make_user()
    with connect(server) as root, root.cursor() as r, connect(server, user=name, password=password) as conn:
        r.execute(f"CREATE TABLE {t} (a INTEGER)")
        r.execute(f"INSERT INTO {t} VALUES (7)")
        r.execute(f"GRANT SELECT ON {t} TO {name}")
        cur = conn.cursor()
        cur.adbc_prepare(f"SELECT a FROM {t}")  # allowed, and described
        r.execute(f"REVOKE SELECT ON {t} FROM {name}")
        with pytest.raises(dbapi.ProgrammingError, match=f"Permission denied: SELECT on main.{t}"):
            cur.execute(f"SELECT a FROM {t}")
            cur.fetchall()  # the query runs in its DoGet: the refusal comes with the result
        cur.close()


def test_a_large_result_run_ahead_gives_way_to_other_statements(server):
    """A big result kept from prepare holds the session's cursor; any other statement takes it back."""
    with connect(server) as conn:
        big = conn.cursor()
        big.adbc_prepare("SELECT range AS n, repeat('z', 200) AS pad FROM range(300000)")
        other = conn.cursor()
        other.execute("SELECT 'next statement'")
        assert other.fetchall() == [("next statement",)]
        other.close()
        big.execute("SELECT range AS n, repeat('z', 200) AS pad FROM range(300000)")
        table = big.fetch_arrow_table()
        assert table.num_rows == 300000
        assert table.column("n")[-1].as_py() == 299999
        big.close()


def test_closing_a_prepared_statement_frees_its_kept_result(server, raw):
    prepared = raw.prepare("SELECT range AS n, repeat('z', 200) AS pad FROM range(300000)")
    assert _schema(prepared).names == ["n", "pad"]
    from flight import commands as cmd

    raw.action(
        "ClosePreparedStatement",
        cmd.pack(
            cmd.ActionClosePreparedStatementRequest(
                prepared_statement_handle=prepared.prepared_statement_handle
            )
        ),
    )
    assert raw.query("SELECT 5 AS five").column("five").to_pylist() == [5]


def test_prepare_then_execute_runs_stateful_functions_once(server, unique_table):
    """nextval must not advance at prepare: such queries are described, not run ahead."""
    seq = unique_table("seq")
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SEQUENCE {seq}")
        cur.execute(f"SELECT nextval('{seq}') AS v")
        assert cur.fetchall() == [(1,)]
        cur.execute(f"SELECT nextval('{seq}') AS v")  # re-executed prepared text
        assert cur.fetchall() == [(2,)]
        with connect(server) as other, other.cursor() as cur2:
            cur2.execute(f"SELECT nextval('{seq}') AS w")
            assert cur2.fetchall() == [(3,)]
