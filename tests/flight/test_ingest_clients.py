"""Bulk ingest and the dataframe / SQLAlchemy clients through ADBC."""

from __future__ import annotations

import adbc_driver_manager.dbapi as dbapi
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import sqlalchemy

from tests.conftest import ROOT_PASSWORD, connect


def test_adbc_ingest_all_modes(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur:
        assert cur.adbc_ingest(t, pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), mode="create") == 3
        with pytest.raises(dbapi.Error, match=f"Table already exists: {t}"):
            cur.adbc_ingest(t, pa.table({"a": [9], "b": ["q"]}), mode="create")
    with root_conn.cursor() as cur:
        assert cur.adbc_ingest(t, pa.table({"a": [4], "b": ["w"]}), mode="append") == 1
    with root_conn.cursor() as cur:
        assert cur.adbc_ingest(t, pa.table({"a": [5, 6], "b": ["v", "u"]}), mode="create_append") == 2
    with root_conn.cursor() as cur:
        cur.execute(f"SELECT count(*), sum(a) FROM {t}")
        assert cur.fetchall() == [(6, 21)]
    with root_conn.cursor() as cur:
        assert cur.adbc_ingest(t, pa.table({"c": [1.5]}), mode="replace") == 1
    with root_conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {t}")
        assert cur.fetch_arrow_table().to_pylist() == [{"c": 1.5}]


def test_append_to_missing_table_fails(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur, pytest.raises(dbapi.Error, match=f"Table does not exist: {t}"):
        cur.adbc_ingest(t, pa.table({"a": [1]}), mode="append")


def test_ingest_into_schema_and_temporary(root_conn, unique_table):
    t = unique_table()
    with root_conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS staging")
    with root_conn.cursor() as cur:
        assert cur.adbc_ingest(t, pa.table({"a": [1, 2]}), mode="create", db_schema_name="staging") == 2
    with root_conn.cursor() as cur:
        assert cur.adbc_ingest(t + "_tmp", pa.table({"a": [1]}), mode="create", temporary=True) == 1
    with root_conn.cursor() as cur:
        cur.execute(f"SELECT (SELECT count(*) FROM staging.{t}), (SELECT count(*) FROM {t}_tmp)")
        assert cur.fetchall() == [(2, 1)]


def test_ingest_into_reserved_schema_is_refused(root_conn):
    with (
        root_conn.cursor() as cur,
        pytest.raises(dbapi.Error, match="Name __stageflight is reserved for the server"),
    ):
        cur.adbc_ingest("users", pa.table({"a": [1]}), mode="create", db_schema_name="__stageflight")


def test_ingest_large_table(root_conn, unique_table):
    t = unique_table()
    n = 1_000_000
    data = pa.table({"i": pa.array(range(n), pa.int64()), "s": pa.array([str(i % 97) for i in range(n)])})
    with root_conn.cursor() as cur:
        assert cur.adbc_ingest(t, data, mode="create") == n
    with root_conn.cursor() as cur:
        cur.execute(f"SELECT count(*), sum(i) FROM {t}")
        assert cur.fetchall() == [(n, n * (n - 1) // 2)]


def test_pandas_to_sql_and_read_sql(server, unique_table):
    t = unique_table()
    frame = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [3.5, 19.0, 31.25]})
    with connect(server, autocommit=False) as conn:
        assert frame.to_sql(t, conn, index=False) == 3
        conn.commit()
    with connect(server) as conn:
        back = pd.read_sql(f"SELECT * FROM {t} ORDER BY temp", conn)
    assert back["city"].tolist() == ["Oslo", "Lima", "Pune"]
    assert back["temp"].tolist() == [3.5, 19.0, 31.25]


def test_polars_write_and_read_database(server, unique_table):
    t = unique_table()
    frame = pl.DataFrame({"k": [1, 2, 3], "v": ["a", "b", "c"]})
    with connect(server) as conn:
        frame.write_database(t, connection=conn, engine="adbc")
        back = pl.read_database(f"SELECT * FROM {t} ORDER BY k", connection=conn)
    assert back.equals(frame)


def test_sqlalchemy_through_adbc(server, unique_table):
    t = unique_table()
    host, port = server.config.host, server.port
    engine = sqlalchemy.create_engine(
        f"adbc+flightsql://{host}:{port}?tls=false&username=root&password={ROOT_PASSWORD}"
    )
    with engine.connect() as conn:
        # ADBC describes DDL with an empty column list (not None): SQLAlchemy keeps that result open.
        conn.execute(sqlalchemy.text(f"CREATE TABLE {t} AS SELECT 1 AS a UNION ALL SELECT 2")).close()
        rows = conn.execute(sqlalchemy.text(f"SELECT sum(a) FROM {t}")).fetchall()
        conn.commit()
    assert rows == [(3,)]
    frame = pd.read_sql(f"SELECT a FROM {t} ORDER BY a", engine)
    assert frame["a"].tolist() == [1, 2]
    engine.dispose()
