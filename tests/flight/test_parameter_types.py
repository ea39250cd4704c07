"""Issue 16 item 2: prepared statements declare a bindable Arrow type for every parameter.

The Flight SQL JDBC driver binds into the vectors ``parameter_schema`` declares and cannot write
into a ``null`` one; these tests pin the declared types at the wire level (raw Flight SQL) and that
values bound with those types, or with the types ADBC picks from Python values, arrive intact.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD, connect
from tests.e2e.stage_helpers import put
from tests.flight.rawclient import RawClient

COLUMNS = "i INTEGER, b BIGINT, d DOUBLE, s VARCHAR, ok BOOLEAN, day DATE, ts TIMESTAMP, m DECIMAL(10,2)"
ALL_TYPES = [
    pa.int32(),
    pa.int64(),
    pa.float64(),
    pa.utf8(),
    pa.bool_(),
    pa.date32(),
    pa.timestamp("ms"),
    pa.decimal128(10, 2),
]
ROW = (
    7,
    2**40,
    1.5,
    "seven",
    True,
    dt.date(2024, 2, 29),
    dt.datetime(2024, 3, 1, 12, 30, 5),
    Decimal("12.34"),
)


@pytest.fixture
def raw(server):
    client = RawClient(server.uri, "root", ROOT_PASSWORD)
    yield client
    client.close()


@pytest.fixture
def table(raw, unique_table):
    name = unique_table()
    raw.update(f"CREATE TABLE {name} ({COLUMNS})")
    return name


def declared(raw: RawClient, sql: str) -> list[pa.DataType]:
    prepared = raw.prepare(sql)
    try:
        return [f.type for f in pa.ipc.read_schema(pa.py_buffer(prepared.parameter_schema))]
    finally:
        close = cmd.ActionClosePreparedStatementRequest(
            prepared_statement_handle=prepared.prepared_statement_handle
        )
        raw.action("ClosePreparedStatement", cmd.pack(close))


def test_insert_values_declare_the_target_columns(raw, table):
    assert declared(raw, f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)") == ALL_TYPES
    assert declared(raw, f"INSERT INTO {table} (ts, s, m) VALUES (?, ?, ?)") == [
        pa.timestamp("ms"),
        pa.utf8(),
        pa.decimal128(10, 2),
    ]
    assert declared(raw, f"INSERT INTO {table} (i, s) SELECT ?, ? AS x") == [pa.int32(), pa.utf8()]


def test_update_set_and_comparisons_declare_the_columns(raw, table):
    sql = f"UPDATE {table} AS x SET d = ?, ts = ? WHERE x.i >= ? AND day BETWEEN ? AND ? AND s IN (?, ?)"
    assert declared(raw, sql) == [
        pa.float64(),
        pa.timestamp("ms"),
        pa.int32(),
        pa.date32(),
        pa.date32(),
        pa.utf8(),
        pa.utf8(),
    ]
    assert declared(raw, f"DELETE FROM {table} WHERE ? = ok") == [pa.bool_()]


def test_casts_limits_and_unknown_places(raw, table):
    sql = (
        f"SELECT ?::INTEGER AS a, CAST(? AS DECIMAL(5, 1)) AS b, ? AS c FROM {table} "
        "WHERE b < ? LIMIT ? OFFSET ?"
    )
    assert declared(raw, sql) == [
        pa.int32(),
        pa.decimal128(5, 1),
        pa.utf8(),  # nothing says: a type every client can bind
        pa.int64(),
        pa.int64(),
        pa.int64(),
    ]
    assert declared(raw, "SELECT $2::TIMESTAMP AS t, $1::DATE AS d") == [pa.date32(), pa.timestamp("ms")]
    assert declared(raw, "DELETE FROM no_such_table_here WHERE a = ?") == [pa.utf8()]


def test_a_user_without_access_gets_no_column_types(server, raw, table, make_user):
    name, password = make_user()
    other = RawClient(server.uri, name, password)
    try:
        sql = f"INSERT INTO {table} (i, ts) VALUES (?, ?)"
        assert declared(other, sql) == [pa.utf8(), pa.utf8()]  # the column types are not shown
        raw.update(f"GRANT INSERT ON main.{table} TO '{name}'")
        assert declared(other, sql) == [pa.int32(), pa.timestamp("ms")]
    finally:
        other.close()


def _put(raw: RawClient, command, batch: pa.RecordBatch) -> bytes:
    descriptor = flight.FlightDescriptor.for_command(cmd.pack(command))
    writer, reader = raw.client.do_put(descriptor, batch.schema, raw.options)
    writer.write_batch(batch)
    writer.done_writing()
    answer = reader.read().to_pybytes()
    writer.close()
    return answer


def test_raw_flight_binds_the_declared_types(raw, table):
    sql = f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    prepared = raw.prepare(sql)
    schema = pa.ipc.read_schema(pa.py_buffer(prepared.parameter_schema))
    rows = pa.RecordBatch.from_arrays(
        [pa.array([v], type=t) for v, t in zip(ROW, ALL_TYPES, strict=True)], schema=schema
    )
    update = cmd.CommandPreparedStatementUpdate(prepared_statement_handle=prepared.prepared_statement_handle)
    assert cmd.DoPutUpdateResult.FromString(_put(raw, update, rows)).record_count == 1

    select = raw.prepare(f"SELECT s, m FROM {table} WHERE ts = ? AND i = ?")
    assert pa.ipc.read_schema(pa.py_buffer(select.parameter_schema)).types == [pa.timestamp("ms"), pa.int32()]
    params = pa.record_batch(
        [pa.array([ROW[6]], pa.timestamp("ms")), pa.array([7], pa.int32())], names=["0", "1"]
    )
    query = cmd.CommandPreparedStatementQuery(prepared_statement_handle=select.prepared_statement_handle)
    _put(raw, query, params)
    assert raw.fetch(raw.info(query)).to_pylist() == [{"s": "seven", "m": Decimal("12.34")}]


def test_adbc_binds_python_values_into_typed_parameters(server, table):
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ROW)
        cur.executemany(
            f"INSERT INTO {table} (i, s, ts) VALUES (?, ?, ?)", [(i, str(i), ROW[6]) for i in range(3)]
        )
        assert cur.rowcount == 3
        cur.execute(f"UPDATE {table} SET d = ? WHERE i = ?", (2.5, 1))
        assert cur.rowcount == 1
        cur.execute(f"SELECT * FROM {table} WHERE i = ? AND ts = ?", (7, ROW[6]))
        assert cur.fetchall() == [ROW]
        cur.execute(f"SELECT i, d FROM {table} WHERE s IN (?, ?) ORDER BY i LIMIT ?", ("1", "2", 5))
        assert cur.fetchall() == [(1, 2.5), (2, None)]


def test_stage_queries_type_their_parameters(server, raw):
    # In a stage query $1 is the file's first column; only '?' are parameters.
    with connect(server) as conn:
        put(conn, "@~/param_types.csv", b"1\n2\n3\n")
        sql = "SELECT $1 AS n FROM @~/param_types.csv (FILE_FORMAT => 'CSV') WHERE $1 > ? LIMIT ?"
        assert declared(raw, sql) == [pa.utf8(), pa.int64()]  # a file's column: nothing tells
        with conn.cursor() as cur:
            cur.execute(sql, ("1", 1))
            assert [row[0] for row in cur.fetchall()] in (["2"], ["3"])
