"""Parquet COPY on the fast path (whole files to DuckDB as Arrow) and its fallbacks, over ADBC."""

from __future__ import annotations

import io

import adbc_driver_manager.dbapi as dbapi
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.stage_helpers import execute, put, query


def parquet_bytes(table: pa.Table, **options: object) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **options)
    return buf.getvalue()


def mixed_strings(rows: int) -> pa.Table:
    """A low-cardinality string column (stays dictionary-encoded), a unique one (falls back to plain
    pages once its dictionary fills up), nulls and empty strings."""
    ids = np.arange(rows)
    flags = pa.array(["", "A", None, "NN", "R"]).take(pa.array(ids % 5))
    text = pa.array([f"comment number {i:09d} with some padding" for i in range(rows)])
    return pa.table({"id": pa.array(ids, pa.int64()), "flag": flags, "text": text})


def test_dictionary_and_plain_string_columns_load_exactly(user, unique_table):
    t = unique_table("pqs")
    execute(user, f"CREATE TABLE {t} (id BIGINT, flag VARCHAR, text VARCHAR)")
    source = mixed_strings(60_000)
    put(user, "@~/pqs/a.parquet", parquet_bytes(source, row_group_size=25_000))
    [row] = query(user, f"COPY INTO {t} FROM @~/pqs/")
    assert (row["File"], row["Rows_loaded"], row["Errors_seen"]) == ("pqs/a.parquet", 60_000, 0)
    loaded = query(user, f"SELECT * FROM {t} ORDER BY id")
    assert loaded == source.to_pylist()


def test_files_with_different_physical_types_load_in_one_copy(user, unique_table):
    t = unique_table("pqt")
    execute(user, f"CREATE TABLE {t} (id BIGINT, tag VARCHAR)")
    put(
        user,
        "@~/pqt/a.parquet",
        parquet_bytes(pa.table({"id": pa.array([1, 2], pa.int32()), "tag": ["x", "x"]})),
    )
    put(user, "@~/pqt/b.parquet", parquet_bytes(pa.table({"id": pa.array([3], pa.int64()), "tag": ["y"]})))
    put(
        user,
        "@~/pqt/c.parquet",
        parquet_bytes(
            pa.table({"tag": ["z", "z"], "ID": pa.array([4, 5], pa.int16())}), use_dictionary=False
        ),
    )
    rows = query(user, f"COPY INTO {t} FROM @~/pqt/")
    assert [(r["File"], r["Rows_loaded"]) for r in rows] == [
        ("pqt/a.parquet", 2),
        ("pqt/b.parquet", 1),
        ("pqt/c.parquet", 2),
    ]
    assert query(user, f"SELECT id, tag FROM {t} ORDER BY id") == [
        {"id": 1, "tag": "x"},
        {"id": 2, "tag": "x"},
        {"id": 3, "tag": "y"},
        {"id": 4, "tag": "z"},
        {"id": 5, "tag": "z"},
    ]


def test_dictionary_column_cast_error_names_file_and_row(user, unique_table):
    t = unique_table("pqc")
    execute(user, f"CREATE TABLE {t} (n INTEGER)")
    put(user, "@~/pqc/good.parquet", parquet_bytes(pa.table({"n": ["1", "2", "1"]})))
    put(user, "@~/pqc/bad.parquet", parquet_bytes(pa.table({"n": ["1", "2", "two", "2"]})))
    with pytest.raises(
        dbapi.OperationalError,
        match=r"first error at file 'pqc/bad\.parquet', line 3: Invalid value 'two' for column 0 \(n int32\)",
    ):
        query(user, f"COPY INTO {t} FROM @~/pqc/")
    assert query(user, f"SELECT count(*) AS n FROM {t}") == [{"n": 0}]  # nothing half-loaded
    loaded = query(user, f"COPY INTO {t} FROM @~/pqc/good.parquet")
    assert [(r["File"], r["Rows_loaded"]) for r in loaded] == [("pqc/good.parquet", 3)]
    assert query(user, f"SELECT sum(n) AS s FROM {t}") == [{"s": 4}]


def test_float16_column_loads(user, unique_table):
    t = unique_table("pqh")
    execute(user, f"CREATE TABLE {t} (v DOUBLE, s VARCHAR)")
    halves = pa.array(np.array([0.5, 1.25, -2.0], dtype=np.float16))
    put(user, "@~/pqh/a.parquet", parquet_bytes(pa.table({"v": halves, "s": ["a", "a", "b"]})))
    [row] = query(user, f"COPY INTO {t} FROM @~/pqh/")
    assert row["Rows_loaded"] == 3
    assert query(user, f"SELECT v, s FROM {t} ORDER BY v") == [
        {"v": -2.0, "s": "b"},
        {"v": 0.5, "s": "a"},
        {"v": 1.25, "s": "a"},
    ]
