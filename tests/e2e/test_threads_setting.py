"""``--threads`` bounds every DuckDB instance that does a statement's work, including the private
one that reads staged Parquet for COPY: a node told to use one core must not use them all
(the scale-out benchmark runs two nodes at ``--threads 1`` on two cores)."""

from __future__ import annotations

import io
import sys
import threading

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


def _threads_started_during(fn) -> list[str]:
    """Names of the threads started while ``fn`` runs (a profile hook runs first in each new thread)."""
    names: list[str] = []

    def hook(frame, event, arg):  # noqa: ANN001 - sys.setprofile's signature
        sys.setprofile(None)
        names.append(threading.current_thread().name)

    threading.setprofile(hook)
    try:
        fn()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    return names


def _copy_parquet(running) -> list[str]:  # noqa: ANN001
    with connect(running) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (i BIGINT)")
        assert put(conn, "@~/p/a.parquet", _parquet(1000)) == 200

        def copy() -> None:
            [loaded] = query(conn, "COPY INTO t FROM @~/p/ FILE_FORMAT = (TYPE = PARQUET)")
            assert loaded["Rows_loaded"] == 1000

        started = _threads_started_during(copy)
        assert query(conn, "SELECT count(*) AS n FROM t") == [{"n": 1000}]
    return started


def test_one_thread_starts_no_read_ahead_thread(start_server):
    # Reading ahead decodes on a thread of its own beside the insert: a second core for a one-thread node.
    assert "read-ahead" not in _copy_parquet(start_server(threads=1))


def test_more_threads_read_ahead(start_server):
    assert "read-ahead" in _copy_parquet(start_server(threads=2))


def test_one_thread_copies_csv_through_the_single_threaded_parser(start_server):
    # At --threads 1 COPY tells pyarrow's CSV reader to parse on the caller alone (the option itself
    # is checked in tests/stages/test_readers.py); the rows must be the same as with the pool.
    running = start_server(threads=1)
    with connect(running) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE c (i BIGINT, s VARCHAR)")
        body = b"".join(b"%d,v%d\n" % (i, i) for i in range(20000))
        assert put(conn, "@~/c/a.csv", body) == 200
        [loaded] = query(conn, "COPY INTO c FROM @~/c/ FILE_FORMAT = (TYPE = CSV)")
        assert (loaded["File"], loaded["Rows_loaded"], loaded["Errors_seen"]) == ("c/a.csv", 20000, 0)
        assert query(conn, "SELECT sum(i) AS n, max(s) AS m FROM c") == [{"n": 199990000, "m": "v9999"}]
