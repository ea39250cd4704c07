"""``--threads`` bounds every DuckDB instance that does a statement's work, including the private
one that reads staged Parquet for COPY: a node told to use one core must not use them all
(the scale-out benchmark runs two nodes at ``--threads 1`` on two cores)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import connect
from tests.e2e.stage_helpers import put, query


def _parquet(rows: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"i": pa.array(range(rows), pa.int64())}), sink)
    return sink.getvalue()


def test_threads_bounds_the_copy_parquet_reader(start_server):
    running = start_server(threads=1)
    native = running.engine.stages.native_parquet
    assert native is not None
    with native._con.cursor() as cur:  # the reader's own setting: nothing user-visible shows it
        assert cur.execute("SELECT current_setting('threads')").fetchall() == [(1,)]
    with connect(running) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (i BIGINT)")
        assert put(conn, "@~/p/a.parquet", _parquet(1000)) == 200
        [loaded] = query(conn, "COPY INTO t FROM @~/p/ FILE_FORMAT = (TYPE = PARQUET)")
        assert (loaded["File"], loaded["Rows_loaded"]) == ("p/a.parquet", 1000)
        assert query(conn, "SELECT sum(i) AS s FROM t") == [{"s": 499500}]
